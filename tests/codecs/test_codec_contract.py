"""Every registered codec against the contract of the ``posezoo.codecs``
package docstring: its prediction kind, encode's dtypes and shapes, decode's
shapes and devices (and that it leaves its input alone), the flip rule, the
loss it names, its training metrics and heatmaps."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from posezoo.codecs import available_codecs, build_codec
from posezoo.codecs.base import PREDICTIONS, Codec, DepthCropCodec, last_stage
from posezoo.config import load_config

K, N = 5, 3
SMALL_2D = ["MODEL.NUM_JOINTS", str(K), "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]",
            "MODEL.SIGMA", "1"]
DEPTH = ["MODEL.NUM_JOINTS", str(K), "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[16, 16]"]
# one or more configs per codec module: a new codec adds its own row here
CONFIGS = {
    "gaussian": [SMALL_2D],
    "dark": [SMALL_2D + ["MODEL.TARGET_TYPE", "dark"]],
    "hourglass": [SMALL_2D + ["TEST.HEATMAP_DECODE", "bearpaw"], SMALL_2D + ["TEST.HEATMAP_DECODE", "princeton"]],
    "soft_argmax": [SMALL_2D + ["MODEL.TARGET_TYPE", "soft_argmax"]],
    "udp": [SMALL_2D + ["MODEL.TARGET_TYPE", "udp"], SMALL_2D + ["MODEL.TARGET_TYPE", "offset"]],
    "megvii": [SMALL_2D + ["MODEL.TARGET_TYPE", "megvii", "MODEL.TARGET_KERNELS", "[7, 5]", "TEST.BLUR_KERNEL", "3"]],
    "a2j": [DEPTH + ["MODEL.TARGET_TYPE", "a2j"]],
    "awr": [DEPTH + ["MODEL.TARGET_TYPE", "awr", "MODEL.EXTRA", json.dumps({"DOWNSAMPLE": 2})]],
    "volumetric": [SMALL_2D + ["MODEL.TARGET_TYPE", "volumetric", "VOLUMETRIC.RES_Z", "[1, 4]"],
                   SMALL_2D + ["MODEL.TARGET_TYPE", "volumetric", "VOLUMETRIC.RES_Z", "[2, 8]",
                               "VOLUMETRIC.SOFT_ARGMAX", "true"]],
    "lifting": [["MODEL.NUM_JOINTS", str(K), "MODEL.TARGET_TYPE", "lifting"],
                ["MODEL.NUM_JOINTS", str(K), "MODEL.TARGET_TYPE", "lifting", "LIFTING.DEPTH_INPUT", "ranks"]],
}
# codecs predicting boxes (their encode takes boxes and classes): tested by test_box_codec_follows_the_contract
BOX_CONFIGS = {"cornernet": ["MODEL.TARGET_TYPE", "cornernet", "MODEL.IMAGE_SIZE", "[63, 63]",
                             "MODEL.EXTRA", json.dumps({"NUM_CLASSES": 2, "VARIANT": "hourglass104"})]}
CASES = [(name, i) for name in sorted(CONFIGS) for i in range(len(CONFIGS[name]))]


def test_every_codec_has_a_contract_config():
    assert sorted(list(CONFIGS) + list(BOX_CONFIGS)) == available_codecs()


def _rgb_3d(codec) -> bool:
    """RGB crops predicting camera-space 3D (the volumetric codec): 2D-crop meta plus the camera."""
    return codec.prediction == "keypoints3d" and codec.input_kind == "image"


def _lifting(codec) -> bool:
    """Joint vectors in, root-relative camera mm out (the lifting codec): no image, no crop."""
    return codec.input_kind == "keypoints"


def _sample(codec, rng):
    """One encode's arguments: crop joints and visibility (2D), crop joints with a root-relative depth in mm
    and visibility (RGB 3D), camera-space joints in mm and visibility (lifting), or crop joints and the
    depth crop (depth 3D)."""
    if _lifting(codec):
        return rng.uniform(-800, 800, (K, 3)) + [0.0, 0.0, 4000.0], np.ones((K, 1), np.float32)
    if _rgb_3d(codec):
        joints = np.concatenate([rng.uniform(4, 28, (K, 2)), rng.uniform(-800, 800, (K, 1))], 1).astype(np.float32)
        return joints, np.ones((K, 3), np.float32)
    if codec.prediction == "keypoints3d":
        joints = np.concatenate([rng.uniform(4, 28, (K, 2)), rng.uniform(-0.5, 0.5, (K, 1))], 1).astype(np.float32)
        return joints, rng.uniform(-1, 1, (1, 32, 32)).astype(np.float32)
    joints = np.concatenate([rng.uniform(4, 28, (K, 2)), np.zeros((K, 1))], 1).astype(np.float32)
    return joints, np.ones((K, 3), np.float32)


def _stack(targets):
    if isinstance(targets[0], list):  # one target per model output (multi-stage codecs)
        return [_stack([t[i] for t in targets]) for i in range(len(targets[0]))]
    if isinstance(targets[0], dict):
        return {k: torch.from_numpy(np.stack([t[k] for t in targets])) for k in targets[0]}
    return torch.from_numpy(np.stack(targets))


def _output(codec, target, rng):
    """A plausible network output for the codec: a noisy copy of the 2D target,
    or random tensors of the depth model's output layout."""
    if isinstance(target, list):
        return [_output(codec, t, rng) for t in target]
    if _rgb_3d(codec):  # a noisy copy of the volume target
        return target["volume"] + 0.01 * torch.from_numpy(rng.standard_normal(tuple(target["volume"].shape))
                                                          .astype(np.float32))
    if codec.prediction == "keypoints2d" or _lifting(codec):
        return target + 0.01 * torch.from_numpy(rng.standard_normal(tuple(target.shape)).astype(np.float32))
    if isinstance(target, dict):  # AWR: the dense layout
        return torch.from_numpy(rng.standard_normal(tuple(target["dense"].shape)).astype(np.float32))
    a = len(codec.anchors)
    return {name: torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
            for name, shape in (("logits", (N, a, K)), ("offsets", (N, a, K, 2)), ("depth", (N, a, K)))}


def _meta(codec, inputs):
    if _lifting(codec):
        return {"inputs": inputs}
    if _rgb_3d(codec):
        return {"inputs": inputs, "center": torch.tensor([[16.0, 16.0]]).repeat(N, 1),
                "scale": torch.tensor([[0.2, 0.2]]).repeat(N, 1),
                "root_cam": torch.tensor([[10.0, -20.0, 4000.0]]).repeat(N, 1),
                "focal": torch.tensor([[1100.0, 1100.0]]).repeat(N, 1),
                "princpt": torch.tensor([[16.0, 16.0]]).repeat(N, 1)}
    if codec.prediction == "keypoints3d":
        crop_to_image = torch.tensor([[2.0, 0.0, 10.0], [0.0, 2.0, 20.0]], dtype=torch.float64).repeat(N, 1, 1)
        return {"inputs": inputs, "crop_to_image": crop_to_image,
                "center": torch.tensor([[40.0, 50.0, 600.0]], dtype=torch.float64).repeat(N, 1),
                "depth_scale": torch.full((N,), 150.0, dtype=torch.float64)}
    return {"inputs": inputs, "center": torch.tensor([[16.0, 16.0]]).repeat(N, 1),
            "scale": torch.tensor([[0.2, 0.2]]).repeat(N, 1)}


def _clone(x):
    if isinstance(x, list):
        return [_clone(v) for v in x]
    return {k: v.clone() for k, v in x.items()} if isinstance(x, dict) else x.clone()


def _equal(a, b):
    if isinstance(a, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return all(torch.equal(a[k], b[k]) for k in a) if isinstance(a, dict) else torch.equal(a, b)


@pytest.mark.parametrize("name, index", CASES)
def test_codec_follows_the_contract(name, index):
    cfg = load_config(None, CONFIGS[name][index])
    codec = build_codec(cfg)
    rng = np.random.default_rng(0)
    assert isinstance(codec, Codec) and codec.prediction in PREDICTIONS
    assert isinstance(codec.channels_per_joint, int) and codec.channels_per_joint >= 1

    samples = [_sample(codec, rng) for _ in range(N)]
    encoded = [codec.encode(*s) for s in samples]
    for target, weight in encoded:
        entries = list(target) if isinstance(target, list) else [target]  # one per stage
        arrays = [a for e in entries for a in (e.values() if isinstance(e, dict) else [e])]
        assert all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in arrays)
        assert weight.dtype == np.float32 and weight.shape == (K, 1)
    target, weight = _stack([t for t, _ in encoded]), torch.from_numpy(np.stack([w for _, w in encoded]))
    if codec.prediction == "keypoints2d":
        assert last_stage(target).shape[1] == K * codec.channels_per_joint

    output = _output(codec, target, rng)
    assert codec.input_kind in ("image", "depth", "keypoints")
    assert (codec.input_kind == "depth") == isinstance(codec, DepthCropCodec)
    depth_input = codec.input_kind == "depth"
    inputs = torch.from_numpy(np.stack([s[1] for s in samples])) if depth_input else torch.zeros(N, 3, 32, 32)
    if _lifting(codec):
        inputs = torch.from_numpy(np.stack([codec.make_input(s[0][:, :2], s[0][:, 2] - s[0][0, 2])
                                            for s in samples]))
    meta = _meta(codec, inputs)
    assert set(codec.meta_keys) <= set(meta)
    before, meta_before = _clone(output), _clone(meta)
    coords, scores = codec.decode(output, meta)
    assert _equal(output, before) and _equal(meta, meta_before), "decode modified its input"
    dim = 3 if codec.prediction == "keypoints3d" else 2
    assert coords.shape == (N, K, dim) and scores.shape == (N, K, 1)
    assert coords.device == scores.device == inputs.device and coords.is_floating_point()
    assert torch.isfinite(coords).all()
    again, _ = codec.decode(output, meta)
    assert torch.equal(again, coords)
    if codec.prediction == "keypoints2d" and codec.channels_per_joint == 1:
        # the noisy copy of a heatmap target decodes near the joints (UDP's offset disks of radius KPD
        # cover half of an 8x8 map, too coarse for this check; test_codec_udp checks that decode)
        joints = torch.from_numpy(np.stack([s[0][:, :2] for s in samples])).double()
        # crops of scale 0.2 (40 px) around (16, 16) map 32 crop px onto 40 image px
        image = (joints - 16) * 40 / 32 + 16
        assert (coords.double() - image).abs().max() < 5

    if codec.supports_flip:
        flipped = last_stage(output)
        assert codec.flip_back(flipped, [(0, 1)]).shape == flipped.shape

    criterion = codec.loss(cfg)
    assert isinstance(criterion, nn.Module)
    value = criterion(output, target, weight)
    assert value.dim() == 0 and torch.isfinite(value)

    metrics = codec.train_metrics(output, target)
    assert isinstance(metrics, dict)
    for metric in metrics.values():
        assert isinstance(metric, (float, tuple))
    heatmaps = codec.heatmaps(output)
    if heatmaps is None:
        assert codec.prediction != "keypoints2d"
    else:
        assert heatmaps.shape[:2] == (N, K) and heatmaps.dim() == 4
        assert metrics, "a codec with heatmaps logs their accuracy"


@pytest.mark.parametrize("name", sorted(BOX_CONFIGS))
def test_box_codec_follows_the_contract(name):
    """A box codec's decode of the logits of its own target gives the encoded
    boxes back, in image pixels through ``crop_to_image``, with (N, M, 2) scores and classes."""
    cfg = load_config(None, BOX_CONFIGS[name])
    codec = build_codec(cfg)
    assert isinstance(codec, Codec) and codec.prediction == "boxes"
    boxes = np.array([[[4.0, 8.0, 40.0, 52.0]], [[20.0, 12.0, 60.0, 30.0]]], np.float32)
    encoded = [codec.encode(b, [1]) for b in boxes]
    target = {k: torch.from_numpy(np.stack([t[k] for t, _ in encoded])) for k in encoded[0][0]}
    h, w = target["tl_heat"].shape[-2:]
    logits = {k: torch.where(target[k] == 1, 10.0, -10.0) for k in ("tl_heat", "br_heat")}
    off = {}
    for corner in ("tl", "br"):  # the offset target placed at its corner's cell
        maps = torch.zeros(2, 2, h * w)
        maps.scatter_(2, target[f"{corner}_ind"][:, None, :1].expand(-1, 2, -1), target[f"{corner}_off"][:, :1, :]
                      .transpose(1, 2))
        off[f"{corner}_off"] = maps.reshape(2, 2, h, w)
    output = [dict(logits, tl_tag=torch.zeros(2, 1, h, w), br_tag=torch.zeros(2, 1, h, w), **off)]
    stride = cfg.MODEL.IMAGE_SIZE[0] / w
    meta = {"crop_to_image": torch.tensor([[stride, 0.0, 0.0], [0.0, stride, 0.0]]).repeat(2, 1, 1),
            "image_size": torch.tensor([[64.0, 64.0]]).repeat(2, 1)}
    before = _clone(output[0])
    coords, scores = codec.decode(output, meta)
    assert _equal(output[0], before), "decode modified its input"
    assert coords.shape[0] == 2 and coords.shape[2] == 4 and scores.shape == coords.shape[:2] + (2,)
    assert set(scores[..., 1][scores[..., 0] > -1].tolist()) <= set(range(codec.num_classes))
    best = scores[..., 0].argmax(1)
    found = coords[torch.arange(2), best]
    assert (found - torch.from_numpy(boxes[:, 0])).abs().max() < 0.5  # input pixels: stride x grid = 63 / 16 x 16
    criterion = codec.loss(cfg)
    value = criterion(output, target, torch.from_numpy(np.stack([m for _, m in encoded])))
    assert value.dim() == 0 and torch.isfinite(value)
    assert codec.heatmaps(output).shape == (2, 2, h, w)
