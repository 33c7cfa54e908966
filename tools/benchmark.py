"""Throughput of every stage of the pipeline for one experiment, in one process.

    python tools/benchmark.py --cfg experiments/synthetic/pose_resnet_18_128x96.yaml
    python tools/benchmark.py --cfg X.yaml --device cuda --iters 400 --num-dets 100000 DATASET.ROOT /fast/disk/coco
    python tools/benchmark.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml --stages forward
    python tools/benchmark.py --cfg X.yaml --stages none --decoders 10000
    python tools/benchmark.py --cfg X.yaml --stages evaluate --decoders 5000 --official /path/to/checkouts
    python tools/benchmark.py --cfg X.yaml --stages none --scaling 1000,10000,100000 \\
        --scaling-dets 1000,10000,100000,200000

For the model, codec and dataset named in the YAML (after the KEY VALUE
overrides) it measures, in this order (--stages picks some of the first six):

1. data:     dataset[i] with is_train True (read + augment + warp + encode) and
             False (read + warp + encode), crops/s, in the main process; the
             only stage that needs the dataset on disk;
2. encode:   codec.encode vs its per-joint loop reference (encode_reference:
             tests/oracles/reference*.py), on the same random joints, checked
             identical before timing (UDP's offset reference loops over every
             pixel: it runs on the first 1/50 of the sets only);
3. forward:  crops/s of the model (random weights, eval mode, no_grad) at
             batch TEST.BATCH_SIZE_PER_GPU, without and with the flip test
             (image + mirror in one forward, flipped back and averaged, as
             core/function.predict does); parameters and GMACs. The flip pairs
             are the dataset's after the data stage, else DATASET.FLIP_PAIRS or
             COCO's for 17 joints (what COCODataset would use), else none;
4. decode:   codec.decode on the device vs its numpy loop reference
             (decode_reference) on the same heatmaps of the model's output
             shape, checked within 1e-3 px (and the scores) before timing;
5. evaluate: on >= --num-dets generated detections of a generated COCO person
             set (written to a temporary folder and loaded by the real
             COCODataset with detected boxes): rescoring + OKS-NMS alone,
             then the whole COCODataset.evaluate (rescoring, NMS, results JSON,
             COCOeval), detections/s; and posezoo.nms.oks_nms vs the loop
             reference on the same per-image groups, checked identical;
6. memory:   peak CUDA memory allocated (on CUDA) and the peak RSS of the process;
7. decoders  (opt-in, --decoders N): every codec, whatever the YAML says
             (gaussian + post-process, DARK blur 11, LPN soft-argmax beta 160,
             UDP gaussian + post-process, UDP offset KPD 4), decodes N crops of
             17 x 64x48 heatmaps (offset: 51 channels) on the device in chunks of
             --decode-batch, and its loop reference decodes the first
             min(N, --decoders-ref) of them (timed, reported per crop); the two
             are checked within 1e-3 px before the vectorised decoder is timed.
             It runs after the memory stage, which therefore does not include it.
8. scaling   (opt-in, --scaling N1,N2,... and/or --scaling-dets D1,D2,...):
             every decoder of stage 7 on N1, N2, ... crops (cycled from a
             pool of 2048), and the evaluation (rescoring + OKS-NMS, then the
             whole COCODataset.evaluate) on generated sets of D1, D2, ...
             detections; microseconds per item for each size, so that a
             non-linear step shows as a growing row (tools/bench/scaling.py).

--official DIR (or $POSEZOO_OFFICIAL): DIR holds official checkouts named
like their repositories (deep-high-resolution-net.pytorch, DarkPose,
UDP-Pose, lpn-pytorch; see tools/bench/official.py), imported at run time.
The decoders stage then decodes the same N crops with the official decode
(HRNet get_final_preds, DarkPose's DARK, UDP-Pose's gaussian and offset,
LPN's soft-argmax) and with posezoo, --reps times each in turn, and the
evaluate stage runs HRNet's oks_nms and COCODataset.evaluate against
posezoo's on the same detections; the forward stage (CPU; float32 but the AMP row) runs the
official network (pose_resnet, pose_hrnet: HRNet's; lpn: lpn-pytorch's, from
the checkout's copy of the same experiments/ YAML) as validate() does against
posezoo's flip-test forward plain, with MODEL.CHANNELS_LAST and with
MODEL.FOLD_BN (+ TEST.FORWARD_CHUNK 8, + TEST.COMPILE, + TEST.AMP bf16), on the same random
weights and batch; the data stage runs the official COCODataset (its
augmentation from the checkout's YAML, torchvision's ToTensor + Normalize
re-expressed) and posezoo's on the same DATASET.ROOT through DataLoaders
with each --workers count, epochs of 12 x --iters samples; outputs must agree (1e-3 px, identical
keeps, identical COCOeval stats), and a table gives both rates (fastest and
median run) and their ratio. An absent checkout is named in one line and
that row uses posezoo's loop reference instead, labelled as not official.

Decode inputs are Gaussian blobs plus uniform noise, some peaks near or over
the border, ~5 % of the maps entirely negative (offset outputs: such a blob
as the classification map, (joint - pixel) / KPD plus noise as the offsets).
Pure noise is no test input: there the Taylor steps of DARK and UDP are
ill-conditioned and float rounding alone separates the batched decoders from
the loops (on random^8 maps with these boxes: DARK 3e-3 px, UDP 0.8 px).

--side-by-side [PATH] (with --official DIR, no --cfg): every row of the README's side-by-side table
from one run, in a fixed order (tools/bench/side_by_side.py): the five decoders on --decoders crops
(default 5000), OKS-NMS and the whole evaluate on --num-dets detections (default 65000, TEST.COCOEVAL
faster_coco_eval), the flip-test forwards of PoseResNet-50, HRNet-W32 (eager and TEST.COMPILE) and
LPN-50 with MODEL.CHANNELS_LAST + MODEL.FOLD_BN + TEST.FORWARD_CHUNK 8, and the w32 COCO data loaders
(epochs of 12 x --iters samples, default 128, each --workers count) on --data-root (default: the shared
COCO samples linked into a temporary COCO layout). It writes the markdown table with the machine,
threads, load, date and command to PATH (default output/benchmark/side_by_side.md) and the rows as
JSON next to it:

    python tools/benchmark.py --side-by-side --official /path/to/checkouts

--iters N scales stages 1-4: N samples per transform, 20 N joint sets for
encode, max(2, N / 25) forward batches, max(3, N / 10) vectorised and
max(1, N / 100) reference decode passes. Missing synthetic data is generated
on first use (DATASET.ROOT can be pointed elsewhere with an override).
"""
from __future__ import annotations

import argparse
import os
import time

import _setup  # puts lib/ on the path
import numpy as np
import torch

from bench.common import say
from bench.data import bench_data, bench_data_official
from bench.decode import bench_decode
from bench.decoders import (DECODERS_REF_CROPS, bench_decoders, bench_decoders_official, decoder_codecs,
                            selected_codecs)
from bench.encode import bench_encode
from bench.evaluate import bench_evaluate
from bench.forward import bench_forward, bench_forward_3d, bench_forward_official, default_flip_pairs
from bench.inputs import output_shape
from bench.memory import peak_memory
from bench.scaling import parse_sizes, scaling_decode, scaling_evaluate
from bench.side_by_side import (DEFAULT_DATA_ITERS, DEFAULT_DECODERS, DEFAULT_NUM_DETS, DEFAULT_OUTPUT,
                                run_side_by_side)
from bench.official import ENV, official_dir
from bench.tables import decoders_table, side_by_side_table, summary_table
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.models import build_model
from posezoo.utils.utils import configure_backends, select_device

STAGES = ("data", "encode", "forward", "decode", "evaluate", "memory")


def parse_stages(text: str) -> list:
    """``--stages`` value -> the chosen stages in pipeline order; 'none' = no stage."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return []
    unknown = [name for name in names if name not in STAGES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown stage(s) {', '.join(unknown) or repr(text)}; "
                                         f"choose from {','.join(STAGES)} (comma-separated) or none")
    return [name for name in STAGES if name in names]


def _sizes(text: str) -> list:
    try:
        return parse_sizes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "DATASET.ROOT /tmp/synthetic", cfg_required=False)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where the model forward and decode run (default: cuda if available, else cpu)")
    parser.add_argument("--stages", type=parse_stages, default=list(STAGES), metavar="LIST",
                        help=f"comma-separated stages to run, from {','.join(STAGES)} (default: all), or none "
                             "(e.g. with --decoders); only data needs the dataset on disk")
    parser.add_argument("--iters", type=int, default=None,
                        help=f"scales the work of stages 1-4 (default 100; --side-by-side: {DEFAULT_DATA_ITERS})")
    parser.add_argument("--num-dets", type=int, default=None,
                        help="at least this many generated detections for the evaluation stage (default 50000; "
                             f"--side-by-side: {DEFAULT_NUM_DETS})")
    parser.add_argument("--decode-batch", type=int, default=1024,
                        help="heatmaps per decode call, in the decode and decoders stages (default 1024)")
    parser.add_argument("--decoders", type=int, default=0, metavar="N",
                        help="also run every codec's decoder on N crops of 17 x 64x48 heatmaps against its loop "
                             "reference (default 0: skip)")
    parser.add_argument("--decoders-ref", type=int, default=DECODERS_REF_CROPS, metavar="M",
                        help=f"crops the loop references decode in the decoders stage: the first min(N, M) "
                             f"(default {DECODERS_REF_CROPS})")
    parser.add_argument("--decoder-names", type=lambda text: [v for v in text.split(",") if v], default=None,
                        metavar="LIST", help="only these decoders in the decoders stage (e.g. gaussian,dark; default: "
                                             "all of " + ", ".join(decoder_codecs()) + ")")
    parser.add_argument("--official", default=None, metavar="DIR",
                        help=f"a folder of official checkouts (deep-high-resolution-net.pytorch, DarkPose, UDP-Pose, "
                             f"lpn-pytorch; default ${ENV}): the forward, encode, decoders and evaluate stages also run side by side "
                             "with the official code, alternating --reps runs each")
    parser.add_argument("--reps", type=int, default=3,
                        help="alternating runs of each side in the side-by-side comparisons (default 3)")
    parser.add_argument("--workers", type=lambda text: [int(v) for v in text.split(",")], default=[0, 2],
                        metavar="LIST", help="DataLoader workers of the side-by-side data runs (--official; "
                                             "default 0,2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's choice); 1 is steadier on a busy machine")
    parser.add_argument("--scaling", type=_sizes, default=[], metavar="N1,N2",
                        help="time every decoder on each number of crops (e.g. 1000,10000,100000): us per crop")
    parser.add_argument("--scaling-dets", type=_sizes, default=[], metavar="D1,D2",
                        help="time the evaluation on generated sets of each number of detections "
                             "(e.g. 1000,10000,100000,200000): us per detection")
    parser.add_argument("--side-by-side", nargs="?", const=DEFAULT_OUTPUT, default=None, metavar="PATH",
                        help="run every row of the README's side-by-side table in one run (needs --official, "
                             f"no --cfg) and write the markdown table to PATH (default {DEFAULT_OUTPUT})")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="--side-by-side: a COCO layout (train2017, val2017) for the data rows (default: the "
                             "shared COCO samples linked into a temporary folder)")
    args = parser.parse_args(argv)
    side = args.side_by_side is not None
    if side and (args.cfg or args.opts):
        parser.error("--side-by-side runs its own fixed experiments: drop --cfg and the KEY VALUE overrides")
    if not side and not args.cfg:
        parser.error("the following arguments are required: --cfg (or --side-by-side)")
    if args.iters is None:
        args.iters = DEFAULT_DATA_ITERS if side else 100
    if args.num_dets is None:
        args.num_dets = DEFAULT_NUM_DETS if side else 50000
    if side and not args.decoders:
        args.decoders = DEFAULT_DECODERS
    for name in ("iters", "num_dets", "decode_batch", "decoders_ref", "threads", "reps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.decoders < 0:
        parser.error("--decoders must be at least 0")
    if args.decoder_names is not None:
        try:
            selected_codecs(args.decoder_names)
        except ValueError as err:
            parser.error(str(err))
    if not side and not args.stages and not args.decoders and not args.scaling and not args.scaling_dets:
        parser.error("--stages none and no --decoders or --scaling: nothing to run")
    try:
        args.official = official_dir(args.official)
    except ValueError as err:
        parser.error(str(err))
    if side and args.device == "cuda":
        parser.error("--side-by-side compares with the official code on the CPU: drop --device cuda")
    if side and args.official is None:
        parser.error(f"--side-by-side needs --official DIR (or ${ENV}): a folder of the official checkouts")
    if args.data_root is not None and not os.path.isdir(args.data_root):
        parser.error(f"--data-root {args.data_root!r} is not a directory (a COCO layout with train2017 and val2017)")
    return args


def choose_device(cfg, requested) -> torch.device:
    if requested is None:
        return select_device(cfg)
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda, but CUDA is not available in this PyTorch build / machine")
        return torch.device("cuda", cfg.GPUS[0] if cfg.GPUS else 0)
    return torch.device("cpu")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.side_by_side is not None:
        if args.threads:
            torch.set_num_threads(args.threads)
        return run_side_by_side(args, argv)
    cfg = load_config(args.cfg, args.opts)
    configure_backends(cfg)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(cfg.SEED)
    rng = np.random.default_rng(cfg.SEED)
    device = choose_device(cfg, args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    width, height = cfg.MODEL.IMAGE_SIZE
    stages = list(args.stages)
    codec = build_codec(cfg)
    if codec.prediction == "keypoints3d":  # 3D models: forward (+ decode for depth crops) and memory only
        stages = [s for s in stages if s in ("forward", "memory")]
    model = build_model(cfg, is_train=False).to(device).eval() if "forward" in stages else None
    run = stages + (["decoders"] if args.decoders else [])
    run += ["scaling"] if args.scaling or args.scaling_dets else []
    tags = {name: f"[{i}/{len(run)}]" for i, name in enumerate(run, 1)}

    where = (f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
             else f"cpu ({torch.get_num_threads()} threads, {os.cpu_count()} cores)")
    say("posezoo benchmark")
    say(f"  config   {args.cfg}  overrides {' '.join(map(str, args.opts)) or '-'}")
    say(f"  device   {where}, torch {torch.__version__}, numpy {np.__version__}")
    say(f"  model    {cfg.MODEL.NAME}, input {width}x{height} (w x h), heatmap "
        f"{cfg.MODEL.HEATMAP_SIZE[0]}x{cfg.MODEL.HEATMAP_SIZE[1]}, {cfg.MODEL.NUM_JOINTS} joints")
    say(f"  codec    {cfg.MODEL.TARGET_TYPE} ({type(codec).__name__}), dataset {cfg.DATASET.DATASET} at "
        f"{cfg.DATASET.ROOT} ({cfg.DATASET.TRAIN_SET} / {cfg.DATASET.TEST_SET})")
    say(f"  stages   {', '.join(run)}")
    say(f"  work     --iters {args.iters}, --num-dets {args.num_dets}, --decode-batch {args.decode_batch}"
        + (f", --decoders {args.decoders}, --decoders-ref {args.decoders_ref}" if args.decoders else ""))
    say(f"  official {args.official}, --reps {args.reps} (forward, encode, decoders, evaluate side by side)" if args.official
        else f"  official - (no --official DIR or ${ENV}: loop references only)")

    results = {"device": str(device), "torch": torch.__version__, "model": cfg.MODEL.NAME,
               "input_size": [width, height], "batch": cfg.TEST.BATCH_SIZE_PER_GPU, "stages": run}
    start = time.perf_counter()
    flip_pairs = default_flip_pairs(cfg)
    if "data" in stages:
        data = bench_data(cfg, codec, args.iters, tags["data"])
        flip_pairs = data.pop("_test_set").flip_pairs
        data.pop("_train_set")
        results.update(data)
        if args.official:
            results["data_side_by_side"] = bench_data_official(cfg, codec, args.cfg, args.official, 12 * args.iters,
                                                               args.reps, args.workers, tags["data"])
    if "encode" in stages:
        n = 20 * args.iters
        results.update(bench_encode(cfg, codec, n, rng, tags["encode"], args.official, args.reps), encode_items=n)
    shape = output_shape(cfg, codec)
    if "forward" in stages and codec.input_kind == "depth":
        results.update(bench_forward_3d(cfg, codec, model, device, max(2, args.iters // 25), tags["forward"]))
    elif "forward" in stages:
        forward = bench_forward(cfg, codec, model, device, max(2, args.iters // 25), flip_pairs, tags["forward"])
        results.update(forward)
        shape = forward["output_shape"]
        if args.official:
            results["forward_side_by_side"] = bench_forward_official(cfg, codec, model.cpu(), args.cfg, args.official,
                                                                     args.reps, flip_pairs, tags["forward"])
    if "decode" in stages:
        results.update(bench_decode(cfg, codec, device, shape, args.decode_batch, args.iters, rng, tags["decode"]))
    if "evaluate" in stages:
        results.update(bench_evaluate(cfg, codec, args.num_dets, rng, tags["evaluate"], args.official, args.reps))
    if "memory" in stages:
        results.update(peak_memory(device, tags["memory"]))
    if args.decoders and args.official:
        results["decoders"] = bench_decoders_official(device, args.decoders, args.decode_batch, args.official,
                                                      args.reps, rng, tags["decoders"], args.decoder_names)
    elif args.decoders:
        results["decoders"] = bench_decoders(device, args.decoders, args.decode_batch, args.decoders_ref, rng,
                                             tags["decoders"], args.decoder_names)
    if args.scaling:
        results["scaling_decode"] = scaling_decode(device, args.scaling, args.decode_batch, rng)
    if args.scaling_dets:
        results["scaling_evaluate"] = scaling_evaluate(cfg, codec, args.scaling_dets, rng)
    results["total_s"] = time.perf_counter() - start
    say("")
    table = summary_table(results)
    tables = [table] if table else []
    if args.decoders and not args.official:
        tables.append(decoders_table(results["decoders"], device))
    if args.official:
        tables.append(side_by_side_table(results, device, args.reps))
    say("\n\n".join(t for t in tables if t))
    say(f"total {results['total_s']:.1f} s")
    return results


if __name__ == "__main__":
    _setup.run(main)
