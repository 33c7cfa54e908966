"""Benchmark a model on a dataset's test set.

    python tools/test.py --cfg X.yaml TEST.MODEL_FILE models/pytorch/pose_coco/pose_resnet_50_256x192.pth
    python tools/test.py --cfg X.yaml TEST.USE_GT_BBOX False   # detected boxes from TEST.COCO_BBOX_FILE
    torchrun --nproc_per_node=4 tools/test.py --cfg X.yaml      # boxes sharded over 4 processes
    python tools/test.py --cfg experiments/nyu/a2j_resnet50_176x176.yaml TEST.MODEL_FILE models/nyu/NYU.pth

Loads TEST.MODEL_FILE (default: this experiment's final_state.pth) strictly,
runs the flip test as configured, writes results/keypoints_<set>_results_0.json
and a PNG of predicted skeletons, and prints the metric table. Depth models
(NYU: A2J, AWR) write results/nyu_<set>_uvd.txt in the released format, per-joint
errors, the success-frame curve and galleries of the best and worst frames,
and report the mean 3D joint error in mm. Under torchrun
each process predicts every WORLD_SIZE-th box; rank 0 gathers them and
evaluates each box once, so the numbers equal a single-process run's.
"""
import argparse
import logging
import os

import _setup  # puts lib/ on the path
import torch

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import TrainContext, validate
from posezoo.datasets import build_dataset
from posezoo.models import build_model, load_checkpoint
from posezoo.utils.distributed import build_test_loader, init_distributed, setup_worker_logging, shutdown_distributed
from posezoo.utils.utils import amp_dtype, configure_backends, model_summary, output_dirs, setup_logging

logger = logging.getLogger("posezoo.test")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TEST.MODEL_FILE m.pth TEST.FLIP_TEST True")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    try:
        return run_test(cfg, args.cfg)
    finally:
        shutdown_distributed()


def run_test(cfg, cfg_path) -> dict:
    """Evaluate; every rank returns the metric table (computed on rank 0)."""
    ctx = init_distributed(cfg.GPUS)
    final_dir, _ = output_dirs(cfg, cfg_path, "test")
    if ctx.is_main:
        setup_logging(final_dir, cfg_path, "test")
    else:
        setup_worker_logging(ctx.rank)
    configure_backends(cfg)
    amp_dtype(cfg.TEST.AMP, "TEST.AMP")
    device = ctx.device

    model = build_model(cfg, is_train=False)
    weights = cfg.TEST.MODEL_FILE or os.path.join(final_dir, "final_state.pth")
    load_checkpoint(model, weights, strict=True)
    logger.info("=> loaded %s; %s", weights, model_summary(model, cfg))
    model = model.to(device)
    if cfg.MODEL.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    if not ctx.distributed and device.type == "cuda" and len(cfg.GPUS) > 1:
        model = torch.nn.DataParallel(model, device_ids=cfg.GPUS)

    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    loader = build_test_loader(cfg, dataset, device)
    boxes = "GT boxes" if cfg.TEST.USE_GT_BBOX else f"detected boxes ({cfg.TEST.COCO_BBOX_FILE})"
    if codec.prediction == "keypoints3d":
        boxes = f"depth frames ({cfg.DATASET.DEPTH_CROP} crops around the given hand centres)"
    shards = f", sharded over {ctx.world_size} processes" if ctx.distributed else ""
    logger.info("=> testing on %d %s of %s, flip test %s%s", len(dataset), boxes, cfg.DATASET.TEST_SET,
                cfg.TEST.FLIP_TEST, shards)
    ctx = TrainContext(cfg, model, codec, codec.loss(cfg).to(device), device=device, output_dir=final_dir)
    name_values, _ = validate(ctx, loader, dataset)
    return name_values


if __name__ == "__main__":
    _setup.run(main)
