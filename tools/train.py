"""Train a top-down keypoint model from a YAML.

    python tools/train.py --cfg experiments/synthetic/pose_resnet_18_128x96.yaml [KEY VALUE ...]

Every component is picked by name in the YAML (MODEL.NAME, DATASET.DATASET,
MODEL.TARGET_TYPE, LOSS.*). Writes under OUTPUT_DIR/<dataset>/<model>/<cfg stem>/:
the log, TensorBoard events, checkpoint.pth (resumable), model_best.pth and
final_state.pth (bare state dicts, loadable by the official tools too),
results/ and a PNG of predicted skeletons.
"""
import argparse
import logging
import os

import _setup  # puts lib/ on the path
import torch
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import train_one_epoch, validate
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.models import build_model, read_checkpoint
from posezoo.utils.utils import (build_optimizer, configure_backends, model_summary, output_dirs, save_atomic,
                                 select_device, setup_logging, unwrap_model)

logger = logging.getLogger("posezoo.train")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TRAIN.END_EPOCH 10 GPUS '(0,1)'")
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    final_dir, tb_dir = output_dirs(cfg, args.cfg, "train")
    setup_logging(final_dir, args.cfg, "train")
    logger.info("config %s, overrides %s; output in %s", args.cfg, args.opts, final_dir)
    configure_backends(cfg)
    torch.manual_seed(cfg.SEED)
    device = select_device(cfg)

    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True).to(device)
    logger.info(model_summary(model, cfg))
    if device.type == "cuda" and len(cfg.GPUS) > 1:
        model = torch.nn.DataParallel(model, device_ids=cfg.GPUS)
    criterion = build_loss(cfg).to(device)

    train_set = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    valid_set = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    n_gpus = max(1, len(cfg.GPUS)) if device.type == "cuda" else 1
    pin = cfg.PIN_MEMORY and device.type == "cuda"
    train_loader = DataLoader(train_set, batch_size=cfg.TRAIN.BATCH_SIZE_PER_GPU * n_gpus, shuffle=cfg.TRAIN.SHUFFLE,
                              num_workers=cfg.WORKERS, pin_memory=pin, drop_last=False,
                              persistent_workers=cfg.WORKERS > 0)
    valid_loader = DataLoader(valid_set, batch_size=cfg.TEST.BATCH_SIZE_PER_GPU * n_gpus, shuffle=False,
                              num_workers=cfg.WORKERS, pin_memory=pin)

    optimizer = build_optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.TRAIN.LR_STEP, cfg.TRAIN.LR_FACTOR)
    begin_epoch, best_perf, global_step = cfg.TRAIN.BEGIN_EPOCH, 0.0, 0
    checkpoint_file = os.path.join(final_dir, "checkpoint.pth")
    if (cfg.AUTO_RESUME or cfg.TRAIN.RESUME) and os.path.exists(checkpoint_file):
        ckpt = read_checkpoint(checkpoint_file)
        unwrap_model(model).load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        begin_epoch, best_perf, global_step = ckpt["epoch"], ckpt["perf"], ckpt.get("global_step", 0)
        if "torch_rng" in ckpt:
            torch.set_rng_state(ckpt["torch_rng"])
        logger.info("=> resumed from %s at epoch %d (best %.4f)", checkpoint_file, begin_epoch, best_perf)

    writer = SummaryWriter(tb_dir)
    try:
        last_good = checkpoint_file if os.path.exists(checkpoint_file) else ""
        perf = best_perf
        for epoch in range(begin_epoch, cfg.TRAIN.END_EPOCH):
            global_step = train_one_epoch(cfg, train_loader, model, criterion, optimizer, epoch, device, final_dir,
                                          writer, global_step, last_good, train_set, codec)
            scheduler.step()
            writer.add_scalar("lr", optimizer.param_groups[0]["lr"], epoch)
            _, perf = validate(cfg, valid_loader, valid_set, model, codec, device, final_dir, criterion, writer,
                               global_step)
            is_best = perf >= best_perf
            best_perf = max(perf, best_perf)
            state = unwrap_model(model).state_dict()
            if is_best:
                save_atomic(state, os.path.join(final_dir, "model_best.pth"))
            save_atomic({"epoch": epoch + 1, "model": cfg.MODEL.NAME, "state_dict": state, "perf": best_perf,
                         "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "global_step": global_step, "torch_rng": torch.get_rng_state()}, checkpoint_file)
            last_good = checkpoint_file
            logger.info("=> epoch %d: %.4f (best %.4f); saved %s", epoch, perf, best_perf, checkpoint_file)

        final_file = os.path.join(final_dir, "final_state.pth")
        save_atomic(unwrap_model(model).state_dict(), final_file)
        logger.info("=> final model saved to %s", final_file)
    finally:
        writer.close()
    return perf


if __name__ == "__main__":
    _setup.run(main)
