"""Benchmark a model on a dataset's test set.

    python tools/test.py --cfg X.yaml TEST.MODEL_FILE models/pytorch/pose_coco/pose_resnet_50_256x192.pth
    python tools/test.py --cfg X.yaml TEST.USE_GT_BBOX False   # detected boxes from TEST.COCO_BBOX_FILE

Loads TEST.MODEL_FILE (default: this experiment's final_state.pth) strictly,
runs the flip test as configured, writes results/keypoints_<set>_results_0.json
and a PNG of predicted skeletons, and prints the metric table.
"""
import argparse
import logging
import os

import _setup  # puts lib/ on the path
import torch
from torch.utils.data import DataLoader

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import validate
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.models import build_model, load_checkpoint
from posezoo.utils.utils import configure_backends, model_summary, output_dirs, select_device, setup_logging

logger = logging.getLogger("posezoo.test")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TEST.MODEL_FILE m.pth TEST.FLIP_TEST True")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    final_dir, _ = output_dirs(cfg, args.cfg, "test")
    setup_logging(final_dir, args.cfg, "test")
    configure_backends(cfg)
    device = select_device(cfg)

    model = build_model(cfg, is_train=False)
    weights = cfg.TEST.MODEL_FILE or os.path.join(final_dir, "final_state.pth")
    load_checkpoint(model, weights, strict=True)
    logger.info("=> loaded %s; %s", weights, model_summary(model, cfg))
    model = model.to(device)
    if device.type == "cuda" and len(cfg.GPUS) > 1:
        model = torch.nn.DataParallel(model, device_ids=cfg.GPUS)

    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    n_gpus = max(1, len(cfg.GPUS)) if device.type == "cuda" else 1
    loader = DataLoader(dataset, batch_size=cfg.TEST.BATCH_SIZE_PER_GPU * n_gpus, shuffle=False,
                        num_workers=cfg.WORKERS, pin_memory=cfg.PIN_MEMORY and device.type == "cuda")
    boxes = "GT boxes" if cfg.TEST.USE_GT_BBOX else f"detected boxes ({cfg.TEST.COCO_BBOX_FILE})"
    logger.info("=> testing on %d %s of %s, flip test %s", len(dataset), boxes, cfg.DATASET.TEST_SET,
                cfg.TEST.FLIP_TEST)
    name_values, _ = validate(cfg, loader, dataset, model, codec, device, final_dir, build_loss(cfg).to(device))
    return name_values


if __name__ == "__main__":
    _setup.run(main)
