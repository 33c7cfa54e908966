"""Train a top-down keypoint model from a YAML.

    python tools/train.py --cfg experiments/synthetic/pose_resnet_18_128x96.yaml [KEY VALUE ...]
    python tools/train.py --cfg experiments/nyu/a2j_synthetic.yaml    # 3D hand pose from depth
    torchrun --nproc_per_node=4 tools/train.py --cfg X.yaml          # DistributedDataParallel
    python tools/train.py --cfg X.yaml --resume                       # continue from checkpoint.pth

Every component is picked by name in the YAML (MODEL.NAME, DATASET.DATASET,
MODEL.TARGET_TYPE, LOSS.*). Writes under OUTPUT_DIR/<dataset>/<model>/<cfg stem>/:
the log, TensorBoard events, checkpoint.pth (resumable; the one before it is kept
as checkpoint_prev.pth), model_best.pth and final_state.pth (bare state dicts,
loadable by the official tools too), results/ and a PNG of predicted skeletons.

Under torchrun (WORLD_SIZE > 1) every process trains on its DistributedSampler
share with TRAIN.BATCH_SIZE_PER_GPU images per step (effective batch: world size
x that; TRAIN.LR is used as given). Rank 0 alone logs, validates (on the boxes
gathered from every rank) and writes files.
"""
import argparse
import logging
import os

import _setup  # puts lib/ on the path
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torch.utils.tensorboard import SummaryWriter

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import TrainContext, train_one_epoch, validate
from posezoo.core.schedule import build_scheduler, steps_per_iteration
from posezoo.core.strategy import build_strategy, restore_strategy, strategy_state
from posezoo.datasets import build_dataset
from posezoo.models import build_model, read_checkpoint
from posezoo.models.checkpoint import CheckpointError
from posezoo.utils.collate import packed_collate
from posezoo.utils.normalise import input_normaliser
from posezoo.utils.distributed import (DistContext, barrier, broadcast_buffers, broadcast_object, build_test_loader,
                                       epoch_seed, init_distributed, peer_watch, seed_everything, seed_worker,
                                       setup_worker_logging, shutdown_distributed, unused_parameters)
from posezoo.utils.utils import (amp_dtype, build_optimizer, configure_backends, model_summary, output_dirs,
                                 remove_partial_files, run_lock, save_atomic, setup_logging, unwrap_model)

logger = logging.getLogger("posezoo.train")

CHECKPOINT, PREVIOUS, CORRUPT = "checkpoint.pth", "checkpoint_prev.pth", "checkpoint_corrupt.pth"
RESUME_KEYS = ("epoch", "state_dict", "optimizer", "scheduler", "perf")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TRAIN.END_EPOCH 10 GPUS '(0,1)'")
    parser.add_argument("--resume", action="store_true",
                        help="continue from checkpoint.pth in the output folder (same as AUTO_RESUME True); "
                             "put it before the KEY VALUE overrides")
    return parser.parse_args(argv)


def main(argv=None) -> float:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    try:
        with peer_watch():
            _, perf = train(cfg, args.cfg, resume=args.resume)
    finally:
        shutdown_distributed()
    return perf


def find_resume_checkpoint(final_dir: str) -> tuple[dict, str] | None:
    """The newest readable training checkpoint: checkpoint.pth, or, when that is
    missing, truncated or corrupt, checkpoint_prev.pth (with a one-line warning;
    the bad file is moved to checkpoint_corrupt.pth so that the next save does
    not rotate it over the good previous one). None when there is neither; a
    CheckpointError when files exist but none is usable."""
    latest, previous = os.path.join(final_dir, CHECKPOINT), os.path.join(final_dir, PREVIOUS)
    problems = []
    for path in (latest, previous):
        if not os.path.exists(path):
            continue
        try:
            ckpt = read_checkpoint(path)
            missing = [k for k in RESUME_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
            if missing:
                raise CheckpointError(f"{path} is not a training checkpoint (no {', '.join(missing)})")
        except CheckpointError as err:
            problems.append(str(err))
            continue
        if path == previous:
            reason = problems[0] if problems else f"{latest} is missing"
            logger.warning("%s; resuming from the previous checkpoint %s (epoch %d) instead",
                           reason, path, ckpt["epoch"])
            if os.path.exists(latest):
                os.replace(latest, os.path.join(final_dir, CORRUPT))
        return ckpt, path
    if problems:
        raise CheckpointError(f"cannot resume: {'; '.join(problems)}; move the file(s) away to train from scratch")
    return None


def _resume_choice(final_dir: str, ctx: DistContext) -> tuple[dict, str] | None:
    """Rank 0 picks the checkpoint (and reports a bad one); every rank then reads
    that file, so all start from the same state."""
    choice = None
    if ctx.is_main:
        try:
            found = find_resume_checkpoint(final_dir)
            choice = ("ok", found[1]) if found else ("none", "")
        except CheckpointError as err:
            choice = ("error", str(err))
    choice = broadcast_object(choice)
    if choice[0] == "error":
        raise CheckpointError(choice[1])
    if choice[0] == "none":
        return None
    return found if ctx.is_main else (read_checkpoint(choice[1]), choice[1])


def _wrap(model: nn.Module, cfg, ctx: DistContext, sample: torch.Tensor | None = None) -> nn.Module:
    """DDP under torchrun (with SyncBatchNorm when MODEL.SYNC_BN), DataParallel
    over GPUS in one process on several GPUs, else the model itself. A `sample`
    input batch lets DDP learn whether some parameters never get a gradient."""
    if ctx.distributed:
        if cfg.MODEL.SYNC_BN:
            if ctx.device.type != "cuda":
                raise RuntimeError("MODEL.SYNC_BN needs CUDA (torch's SyncBatchNorm has no CPU kernel); "
                                   "set MODEL.SYNC_BN False for a CPU (gloo) run")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        unused = unused_parameters(model, sample) if sample is not None else []
        if unused:
            logger.info("=> %d parameters get no gradient (%s, ...): DDP searches for unused parameters every step",
                        len(unused), unused[0])
        return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
                                       find_unused_parameters=bool(unused))
    if cfg.MODEL.SYNC_BN:
        logger.info("MODEL.SYNC_BN has no effect in a single process (start with torchrun to use it)")
    if ctx.device.type == "cuda" and len(cfg.GPUS) > 1:
        return nn.DataParallel(model, device_ids=cfg.GPUS)
    return model


def _train_loader(cfg, dataset, ctx: DistContext, generator: torch.Generator
                  ) -> tuple[DataLoader, Sampler | None]:
    """Shuffle order and worker seeds come from `generator`, re-seeded every
    epoch; workers are not persistent, so each epoch's augmentation is a
    function of (SEED, epoch, rank) alone and a resumed run replays it exactly.
    The returned sampler (distributed, or a DATASET.MIX batch sampler) gets
    ``set_epoch`` from ``start_epoch``."""
    pin = cfg.PIN_MEMORY and ctx.device.type == "cuda"
    common = {"num_workers": cfg.WORKERS, "pin_memory": pin, "drop_last": False, "generator": generator,
              "worker_init_fn": seed_worker, "collate_fn": packed_collate}
    if hasattr(dataset, "batch_sampler"):  # DATASET.MIX: fixed-composition batches (datasets/mixed.py)
        n_gpus = 1 if ctx.distributed or ctx.device.type != "cuda" else max(1, len(cfg.GPUS))
        batches = dataset.batch_sampler(cfg.TRAIN.BATCH_SIZE_PER_GPU * n_gpus, cfg.TRAIN.SHUFFLE, ctx.rank,
                                        ctx.world_size if ctx.distributed else 1, cfg.SEED)
        del common["drop_last"]
        return DataLoader(dataset, batch_sampler=batches, **common), batches
    if ctx.distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank,
                                     shuffle=cfg.TRAIN.SHUFFLE, seed=cfg.SEED)
        return DataLoader(dataset, batch_size=cfg.TRAIN.BATCH_SIZE_PER_GPU, sampler=sampler, **common), sampler
    n_gpus = max(1, len(cfg.GPUS)) if ctx.device.type == "cuda" else 1
    return DataLoader(dataset, batch_size=cfg.TRAIN.BATCH_SIZE_PER_GPU * n_gpus, shuffle=cfg.TRAIN.SHUFFLE,
                      **common), None


def start_epoch(seed: int, epoch: int, rank: int, generator: torch.Generator,
                sampler: Sampler | None = None) -> None:
    """Restart every RNG from (SEED, epoch, rank): torch, numpy and random in
    this process (augmentation with WORKERS 0) and the loader's generator
    (shuffle order, worker seeds). What an epoch draws then does not depend on
    what ran before it, so resuming at an epoch boundary replays it exactly."""
    value = epoch_seed(seed, epoch, rank)
    seed_everything(value)
    generator.manual_seed(value)
    if sampler is not None:
        sampler.set_epoch(epoch)


def _save_checkpoint(state: dict, final_dir: str) -> str:
    """The new checkpoint is written beside checkpoint.pth; once it is complete,
    checkpoint.pth becomes checkpoint_prev.pth and the new one takes its place.
    A crash or a full disk during the write leaves checkpoint.pth as it was (and
    at worst a temporary file, removed by the next run), a crash between the
    two renames leaves checkpoint_prev.pth, which resuming falls back to."""
    latest = os.path.join(final_dir, CHECKPOINT)

    def rotate() -> None:
        if os.path.exists(latest):
            os.replace(latest, os.path.join(final_dir, PREVIOUS))
    save_atomic(state, latest, before_replace=rotate)
    return latest


def train(cfg, cfg_path: str | None, resume: bool = False) -> tuple[nn.Module, float]:
    """The whole run; returns the (wrapped) model and the last validation metric.
    The output folder is locked for the run (a second run on it is refused)."""
    ctx = init_distributed(cfg.GPUS)
    final_dir, tb_dir = output_dirs(cfg, cfg_path, "train")
    with run_lock(final_dir, "train"):
        return _train(cfg, cfg_path, resume, ctx, final_dir, tb_dir)


def _train(cfg, cfg_path: str | None, resume: bool, ctx: DistContext, final_dir: str, tb_dir: str
           ) -> tuple[nn.Module, float]:
    if ctx.is_main:
        setup_logging(final_dir, cfg_path, "train")
        logger.info("config %s; output in %s", cfg_path, final_dir)
        remove_partial_files(final_dir)
    else:
        setup_worker_logging(ctx.rank)
    configure_backends(cfg)
    amp = amp_dtype(cfg.TRAIN.AMP, "TRAIN.AMP")
    amp_dtype(cfg.TEST.AMP, "TEST.AMP")
    if ctx.distributed:
        logger.info("=> DistributedDataParallel: %d processes on %s, %d images per process and step "
                    "(effective batch %d); TRAIN.LR %g is used as given", ctx.world_size, ctx.device,
                    cfg.TRAIN.BATCH_SIZE_PER_GPU, cfg.TRAIN.BATCH_SIZE_PER_GPU * ctx.world_size, cfg.TRAIN.LR)
    torch.manual_seed(cfg.SEED)  # the same initial weights on every rank
    device = ctx.device

    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True).to(device)
    if ctx.is_main:
        logger.info(model_summary(model, cfg))
    resumed = _resume_choice(final_dir, ctx) if (resume or cfg.AUTO_RESUME or cfg.TRAIN.RESUME) else None
    if resume and not resumed:
        logger.warning("--resume: no %s or %s in %s; training from scratch", CHECKPOINT, PREVIOUS, final_dir)
    if resumed:
        model.load_state_dict(resumed[0]["state_dict"])
    if cfg.MODEL.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    train_set = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    valid_set = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    sample = input_normaliser(cfg)(train_set[0][0][None].to(device)) if ctx.distributed else None
    model = _wrap(model, cfg, ctx, sample)
    eval_model = model.module if isinstance(model, DistributedDataParallel) else model
    criterion = codec.loss(cfg).to(device)
    strategy = build_strategy(cfg, device)
    if resumed:  # before the optimizer: it holds the strategy's parameters as they will train
        restore_strategy(strategy, resumed[0].get("strategy", {}))
    generator = torch.Generator()
    train_loader, train_sampler = _train_loader(cfg, train_set, ctx, generator)
    valid_loader = build_test_loader(cfg, valid_set, device)

    optimizer = build_optimizer(cfg, model, strategy.extra_parameters())
    scheduler = build_scheduler(cfg, optimizer, len(train_loader))
    per_iteration = steps_per_iteration(cfg)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    # -inf: the first validated epoch is always the best so far, whatever the sign of the metric
    begin_epoch, best_perf, global_step = cfg.TRAIN.BEGIN_EPOCH, -float("inf"), 0
    if resumed:
        ckpt, path = resumed
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        begin_epoch, best_perf, global_step = ckpt["epoch"], ckpt["perf"], ckpt.get("global_step", 0)
        if ckpt.get("seed", cfg.SEED) != cfg.SEED:
            logger.warning("resuming a run started with SEED %s under SEED %s: the remaining epochs are shuffled "
                           "and augmented differently from the original run", ckpt["seed"], cfg.SEED)
        if ckpt.get("world_size", ctx.world_size) != ctx.world_size:
            logger.warning("resuming a run of %d processes with %d: the effective batch size changes",
                           ckpt["world_size"], ctx.world_size)
        logger.info("=> resumed from %s at epoch %d (best %.4f)", path, begin_epoch, best_perf)

    checkpoint_file = os.path.join(final_dir, CHECKPOINT)
    writer = SummaryWriter(tb_dir, purge_step=global_step if resumed else None) if ctx.is_main else None
    run = TrainContext(cfg, model, codec, criterion, optimizer, scaler, device, final_dir, writer,
                       train_set if ctx.is_main else None, global_step=global_step, strategy=strategy,
                       iteration_scheduler=scheduler if per_iteration else None)
    valid = TrainContext(cfg, eval_model, codec, criterion, device=device, output_dir=final_dir, writer=writer,
                         strategy=strategy)
    try:
        run.last_checkpoint = checkpoint_file if os.path.exists(checkpoint_file) else ""
        perf = best_perf
        for epoch in range(begin_epoch, cfg.TRAIN.END_EPOCH):
            start_epoch(cfg.SEED, epoch, ctx.rank, generator, train_sampler)
            global_step = valid.global_step = train_one_epoch(run, train_loader, epoch)
            if not per_iteration:
                scheduler.step()
            broadcast_buffers(eval_model)
            if writer is not None:
                writer.add_scalar("lr", optimizer.param_groups[0]["lr"], epoch)
            _, perf = validate(valid, valid_loader, valid_set)
            if ctx.is_main:
                is_best = perf >= best_perf
                best_perf = max(perf, best_perf)
                state = unwrap_model(model).state_dict()
                if is_best:
                    save_atomic(state, os.path.join(final_dir, "model_best.pth"))
                checkpoint = {"epoch": epoch + 1, "model": cfg.MODEL.NAME, "state_dict": state, "perf": best_perf,
                              "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                              "global_step": global_step, "seed": cfg.SEED, "world_size": ctx.world_size,
                              "strategy": strategy_state(strategy)}
                if scaler is not None:
                    checkpoint["scaler"] = scaler.state_dict()
                run.last_checkpoint = _save_checkpoint(checkpoint, final_dir)
                logger.info("=> epoch %d: %.4f (best %.4f); saved %s", epoch, perf, best_perf, run.last_checkpoint)
            else:
                best_perf = max(perf, best_perf)

        if ctx.is_main:
            final_file = os.path.join(final_dir, "final_state.pth")
            save_atomic(unwrap_model(model).state_dict(), final_file)
            logger.info("=> final model saved to %s", final_file)
        barrier()  # the files exist for every rank from here on
    finally:
        if writer is not None:
            writer.close()
    return model, perf


if __name__ == "__main__":
    _setup.run(main)
