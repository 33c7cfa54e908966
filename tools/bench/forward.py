"""Stage 3: the model's forward pass (random weights, eval mode), without and with the flip test; with
--official, the flip-test forward side by side with the official validate()'s."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

from posezoo.config import update_config
from posezoo.core.inference import forward_test, inference_forward
from posezoo.datasets.coco import COCO_FLIP_PAIRS
from posezoo.utils.fold_bn import prepare_eval_model
from posezoo.utils.utils import count_flops, count_parameters, input_shape

from .common import alternate_many, last_output, make_sync, say, side_row, timed
from .official import official_model

# posezoo's test-time options, each measured against the official float32 forward (all float32 but the last)
FORWARD_VARIANTS = (("inference_mode, one batch", []),
                    ("+ MODEL.CHANNELS_LAST", ["MODEL.CHANNELS_LAST", True]),
                    ("+ CHANNELS_LAST + FOLD_BN", ["MODEL.CHANNELS_LAST", True, "MODEL.FOLD_BN", True]),
                    ("+ CHANNELS_LAST + FOLD_BN + FORWARD_CHUNK 8",
                     ["MODEL.CHANNELS_LAST", True, "MODEL.FOLD_BN", True, "TEST.FORWARD_CHUNK", 8]),
                    ("+ CHANNELS_LAST + FOLD_BN + FORWARD_CHUNK 8 + TEST.COMPILE",
                     ["MODEL.CHANNELS_LAST", True, "MODEL.FOLD_BN", True, "TEST.FORWARD_CHUNK", 8, "TEST.COMPILE", True]),
                    ("same as FORWARD_CHUNK 8 + TEST.AMP bf16 (not float32)",
                     ["MODEL.CHANNELS_LAST", True, "MODEL.FOLD_BN", True, "TEST.FORWARD_CHUNK", 8, "TEST.AMP", "bf16"]))


def default_flip_pairs(cfg) -> list:
    """The flip pairs COCODataset would use, without reading the dataset:
    DATASET.FLIP_PAIRS, else COCO's for 17 joints, else none."""
    pairs = cfg.DATASET.FLIP_PAIRS or (COCO_FLIP_PAIRS if cfg.MODEL.NUM_JOINTS == 17 else [])
    return [tuple(pair) for pair in pairs]


def bench_forward(cfg, codec, model, device, n_batches: int, flip_pairs, tag: str = "[3/6]") -> dict:
    batch = cfg.TEST.BATCH_SIZE_PER_GPU
    width, height = cfg.MODEL.IMAGE_SIZE
    sync = make_sync(device)
    warmup = 3 if device.type == "cuda" else 1
    params = count_parameters(model)
    macs = count_flops(model, input_shape(model, cfg))
    x = torch.randn(batch, *input_shape(model, cfg), device=device)

    def plain():
        return last_output(model(x))

    def flipped():
        both = last_output(model(torch.cat([x, x.flip(3)], dim=0)))
        return (both[:batch] + codec.flip_back(both[batch:], flip_pairs)) * 0.5

    out = {"params": params, "gmacs": macs / 1e9}
    with torch.no_grad():
        for key, fn in (("forward_crops_s", plain), ("forward_flip_crops_s", flipped)):
            for _ in range(warmup):
                heatmaps = fn()
            seconds = timed(fn, n_batches, sync)
            out[key] = batch * n_batches / seconds
    out["output_shape"] = tuple(int(v) for v in heatmaps.shape[1:])
    say(f"{tag} forward: batch {batch} x {n_batches}: {out['forward_crops_s']:.1f} crops/s, with flip "
        f"{out['forward_flip_crops_s']:.1f} crops/s; output {out['output_shape']}; "
        f"{params / 1e6:.2f} M params, {macs / 1e9:.3f} GMACs")
    return out


def bench_forward_3d(cfg, codec, model, device, n_batches: int, tag: str = "[1/2]") -> dict:
    """Depth models (A2J, AWR): frames/s of forward + the codec's decode to crop
    joints (no flip test in these models), on random depth crops."""
    batch = cfg.TEST.BATCH_SIZE_PER_GPU
    sync = make_sync(device)
    x = torch.randn(batch, *input_shape(model, cfg), device=device)

    def forward_decode():
        return codec.decode_crop(last_output(model(x)), x)

    with torch.no_grad():
        for _ in range(3 if device.type == "cuda" else 1):
            forward_decode()
        seconds = timed(forward_decode, n_batches, sync)
    out = {"params": count_parameters(model), "gmacs": count_flops(model, input_shape(model, cfg)) / 1e9,
           "forward_crops_s": batch * n_batches / seconds}
    say(f"{tag} forward + decode: batch {batch} x {n_batches}: {out['forward_crops_s']:.1f} frames/s; "
        f"{out['params'] / 1e6:.2f} M params, {out['gmacs']:.3f} GMACs")
    return out


def random_eval_state(model: torch.nn.Module, seed: int) -> dict:
    """`model`'s state dict with every float tensor redrawn from a seeded generator, BatchNorm statistics
    included (running var U(0.5, 1.5), mean N(0, 0.1^2)) so that eval BatchNorms are not the identity."""
    g = torch.Generator().manual_seed(seed)
    norm_weights = {f"{name}.weight" for name, m in model.named_modules()
                    if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm))}
    state = {}
    for key, value in model.state_dict().items():
        if not value.is_floating_point():
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = torch.rand(value.shape, generator=g) + 0.5
        elif value.dim() <= 1 or key in norm_weights:
            base = 1.0 if key in norm_weights else 0.0
            state[key] = base + 0.1 * torch.randn(value.shape, generator=g)
        else:
            state[key] = torch.randn(value.shape, generator=g) / np.sqrt(value[0].numel())
    return state


def bench_forward_official(cfg, codec, model, cfg_path: str, root: str, reps: int, flip_pairs,
                           tag: str = "[3/6]", variants=FORWARD_VARIANTS) -> list[dict]:
    """The flip-test forward of a batch of TEST.BATCH_SIZE_PER_GPU crops on the CPU, float32, same random
    weights: the official validate() (HRNet lib/core/function.py:116-145, LPN's is the same: no_grad,
    model(input) then model(input.flip(3)), numpy flip_back, SHIFT_HEATMAP, average) against posezoo's
    forward_test (image and mirror in one batch, inference_mode) under each of `variants` ((name, overrides)
    pairs; default FORWARD_VARIANTS), all alternating `reps` rounds; rows for the side-by-side table, [] when
    no official model is there."""
    official, info = official_model(root, cfg_path, cfg.MODEL.NAME)
    if official is None:
        say(f"{tag} forward side by side: {info}")
        return []
    state = random_eval_state(model, cfg.SEED)
    official.load_state_dict(state, strict=True)
    model.load_state_dict(state, strict=True)
    batch = cfg.TEST.BATCH_SIZE_PER_GPU
    x = torch.randn(batch, *input_shape(model, cfg), generator=torch.Generator().manual_seed(cfg.SEED))
    pairs = [list(pair) for pair in flip_pairs]

    def validate_forward():
        with torch.no_grad():
            output = last_output(official(x))
            flipped = last_output(official(x.flip(3)))
            flipped = torch.from_numpy(info["flip_back"](flipped.cpu().numpy(), pairs).copy())
            if info["shift"]:
                flipped[:, :, :, 1:] = flipped.clone()[:, :, :, 0:-1]
            return (output + flipped) * 0.5

    def posezoo_forward(opts):
        vcfg = update_config(cfg, opts)
        net = prepare_eval_model(vcfg, copy.deepcopy(model), "cpu")
        inputs = x.contiguous(memory_format=torch.channels_last) if vcfg.MODEL.CHANNELS_LAST else x

        forward = inference_forward(net, vcfg)

        def run():
            with torch.inference_mode():
                return forward_test(forward, inputs, codec, pairs, True)
        return run

    fns = {"official": validate_forward, **{name: posezoo_forward(opts) for name, opts in variants}}
    for name, fn in fns.items():  # warm-up: first-call allocations and kernel choice (TEST.COMPILE: the compile)
        start = time.perf_counter()
        fn()
        if "TEST.COMPILE" in name:
            say(f"{tag} forward side by side, {name}: first call (compile) {time.perf_counter() - start:.1f} s")
    times, first = alternate_many(fns, reps)
    scale = max(1.0, first["official"].abs().max().item())
    rows = []
    for name, _ in variants:
        diff = (first[name] - first["official"]).abs().max().item()
        check = f"max diff {diff:.1e} (|output| <= {scale:.2g})" + ("" if diff <= 1e-5 * scale else ", over 1e-5")
        rows.append(side_row(f"forward+flip {cfg.MODEL.NAME}, {name}", info["label"], True, batch,
                             times["official"], times[name], check, unit="crops/s"))
        say(f"{tag} forward side by side, {name}: official {rows[-1]['ref_rate']:.1f} crops/s, posezoo "
            f"{rows[-1]['rate']:.1f} crops/s (x{rows[-1]['speedup']:.2f} / x{rows[-1]['median_speedup']:.2f}), {check}")
    return rows
