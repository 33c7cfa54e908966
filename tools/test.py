"""Benchmark a model on a dataset's test set.

    python tools/test.py --cfg X.yaml TEST.MODEL_FILE models/pytorch/pose_coco/pose_resnet_50_256x192.pth
    python tools/test.py --cfg X.yaml TEST.USE_GT_BBOX False   # detected boxes from TEST.COCO_BBOX_FILE
    torchrun --nproc_per_node=4 tools/test.py --cfg X.yaml      # boxes sharded over 4 processes
    python tools/test.py --cfg experiments/nyu/a2j_resnet50_176x176.yaml TEST.MODEL_FILE models/nyu/NYU.pth
    python tools/test.py --cfg X.yaml --detector-cfg cornernet.yaml --detector-weights det.pth  # own boxes

Loads TEST.MODEL_FILE (default: this experiment's final_state.pth) strictly,
runs the flip test as configured, writes results/keypoints_<set>_<source>_results_0.json
and a PNG of predicted skeletons (predictions_<set>_<source>.png; <source> is gt,
det or cornernet: the boxes tested on), and prints the metric table. Depth models
(NYU: A2J, AWR) write results/nyu_<set>_uvd.txt in the released format, per-joint
errors, the success-frame curve and galleries of the best and worst frames,
and report the mean 3D joint error in mm. With --detector-cfg/--detector-weights
(a CornerNet YAML and checkpoint) the person boxes of the test images come from
that detector: they are written to results/detections_<set>.json (COCO results),
their person box AP is logged, and the test runs on them as TEST.COCO_BBOX_FILE
with TEST.USE_GT_BBOX False. Under torchrun
each process predicts every WORLD_SIZE-th box; rank 0 gathers them and
evaluates each box once, so the numbers equal a single-process run's.
"""
import argparse
import logging
import os

import _setup  # puts lib/ on the path
import torch

from posezoo.codecs import build_codec
from posezoo.config import load_config, update_config
from posezoo.core.function import TrainContext, validate
from posezoo.datasets import build_dataset
from posezoo.models import build_model, load_checkpoint
from posezoo.utils.distributed import (build_test_loader, init_distributed, peer_watch, setup_worker_logging,
                                       shutdown_distributed)
from posezoo.utils.fold_bn import prepare_eval_model
from posezoo.utils.utils import amp_dtype, configure_backends, model_summary, output_dirs, setup_logging

logger = logging.getLogger("posezoo.test")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TEST.MODEL_FILE m.pth TEST.FLIP_TEST True")
    parser.add_argument("--detector-cfg", default="", help="a CornerNet YAML: detect the test set's person boxes")
    parser.add_argument("--detector-weights", default="", help="the detector's checkpoint (loaded strictly)")
    parser.add_argument("--det-score-thr", type=float, default=0.0, help="keep detected persons scoring this or more")
    return parser.parse_args(argv)


def detected_boxes(cfg, cfg_path, args):
    """The config testing on the detector's boxes, written under results/."""
    from pycocotools.coco import COCO

    from posezoo.api import PersonDetector
    from posezoo.datasets.coco_det import bbox_ap, write_results

    if not args.detector_weights:
        raise ValueError("--detector-cfg needs --detector-weights")
    detector = PersonDetector.from_config(args.detector_cfg, args.detector_weights, score_thr=args.det_score_thr)
    root, image_set = cfg.DATASET.ROOT, cfg.DATASET.TEST_SET
    coco = COCO(os.path.join(root, "annotations", f"person_keypoints_{image_set}.json"))
    results = detector.detect_coco_images(coco, os.path.join(root, "images", image_set))
    final_dir, _ = output_dirs(cfg, cfg_path, "test")
    setup_logging(final_dir, cfg_path, "test")  # the box AP below goes to the test's log too
    path = write_results(results, os.path.join(final_dir, "results", f"detections_{image_set}.json"))
    ap = bbox_ap(coco, path if results else [], sorted(coco.getImgIds()), [1])
    logger.info("=> %d detected person boxes in %s; person box AP %.4f, AP .5 %.4f", len(results), path,
                ap["AP"], ap["AP .5"])
    return update_config(cfg, ["TEST.COCO_BBOX_FILE", path, "TEST.USE_GT_BBOX", "False"])


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    if args.detector_cfg:
        cfg = detected_boxes(cfg, args.cfg, args)
    try:
        with peer_watch():
            return run_test(cfg, args.cfg, detector=bool(args.detector_cfg))
    finally:
        shutdown_distributed()


def run_test(cfg, cfg_path, detector: bool = False) -> dict:
    """Evaluate; every rank returns the metric table (computed on rank 0).
    `detector`: the boxes came from --detector-cfg (named ``cornernet``)."""
    dist = init_distributed(cfg.GPUS)
    final_dir, _ = output_dirs(cfg, cfg_path, "test")
    if dist.is_main:
        setup_logging(final_dir, cfg_path, "test")
    else:
        setup_worker_logging(dist.rank)
    configure_backends(cfg)
    amp_dtype(cfg.TEST.AMP, "TEST.AMP")
    device = dist.device

    model = build_model(cfg, is_train=False)
    weights = cfg.TEST.MODEL_FILE or os.path.join(final_dir, "final_state.pth")
    load_checkpoint(model, weights, strict=True)
    logger.info("=> loaded %s; %s", weights, model_summary(model, cfg))
    model = prepare_eval_model(cfg, model, device)
    if not dist.distributed and device.type == "cuda" and len(cfg.GPUS) > 1:
        if cfg.TEST.COMPILE:
            raise ValueError("TEST.COMPILE with several GPUS: DataParallel replicas cannot share one compiled "
                             "model; run one process per GPU (torchrun) or set TEST.COMPILE False")
        model = torch.nn.DataParallel(model, device_ids=cfg.GPUS)

    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    loader = build_test_loader(cfg, dataset, device)
    boxes = "GT boxes" if cfg.TEST.USE_GT_BBOX else f"detected boxes ({cfg.TEST.COCO_BBOX_FILE})"
    box_source = "gt" if cfg.TEST.USE_GT_BBOX else ("cornernet" if detector else "det")
    boxes = getattr(dataset, "input_description", boxes)  # depth frames have no boxes
    shards = f", sharded over {dist.world_size} processes" if dist.distributed else ""
    logger.info("=> testing on %d %s of %s, flip test %s%s", len(dataset), boxes, cfg.DATASET.TEST_SET,
                cfg.TEST.FLIP_TEST, shards)
    ctx = TrainContext(cfg, model, codec, codec.loss(cfg).to(device), device=device, output_dir=final_dir)
    name_values, _ = validate(ctx, loader, dataset)
    if dist.is_main and codec.prediction == "keypoints2d":
        name_by_box_source(final_dir, cfg.DATASET.TEST_SET, box_source)
    return name_values


def name_by_box_source(final_dir: str, image_set: str, source: str) -> list[str]:
    """Tests on GT, detected and CornerNet boxes share one output folder, so the
    test's results file, skeleton PNG and gallery get the box source in their
    names (``results/keypoints_<set>_<source>_results_0.json``,
    ``predictions_<set>_<source>.png``, ``gallery/{best,worst}_<set>_<source>.png``
    and ``gallery/<set>_<source>.json``) and no test overwrites another's."""
    moves = [(os.path.join("results", f"keypoints_{image_set}_results_0.json"),
              os.path.join("results", f"keypoints_{image_set}_{source}_results_0.json")),
             (f"predictions_{image_set}.png", f"predictions_{image_set}_{source}.png")]
    moves += [(os.path.join("gallery", f"{name}_{image_set}.{ext}"), os.path.join("gallery", f"{name}_{image_set}_"
                                                                                  f"{source}.{ext}"))
              for name, ext in (("best", "png"), ("worst", "png"))]
    moves.append((os.path.join("gallery", f"{image_set}.json"), os.path.join("gallery", f"{image_set}_{source}.json")))
    done = []
    for old, new in moves:
        if os.path.exists(os.path.join(final_dir, old)):
            os.replace(os.path.join(final_dir, old), os.path.join(final_dir, new))
            done.append(new)
    logger.info("=> test outputs named by box source '%s': %s", source, ", ".join(done))
    return done


if __name__ == "__main__":
    _setup.run(main)
