"""The training epoch and the validation pass (SimpleBaseline/HRNet's
``core/function.py``), device-agnostic: the same code runs on CUDA and CPU.
Both take a ``TrainContext``; what a batch's loss is comes from the run's
strategy (``core/strategy.py``), what the outputs mean from the codec
(``codecs/base.py``); the test-time forward and decode are in
``core/inference.py``."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..codecs.gaussian import get_max_preds
from ..utils.distributed import average_gradients, broadcast_object, gather_shards, is_distributed
from ..utils.normalise import input_normaliser
from ..utils.transforms import PIXEL_STD
from ..utils.utils import AverageMeter, amp_dtype, progress_bar, to_channels_last, to_device, write_text_atomic
from ..utils.vis import (
    save_batch_heatmaps,
    save_batch_images_with_joints,
    save_gallery,
    save_instance_gallery,
)
from .evaluate import format_table, instance_oks
from .inference import amp_forward, predict
from .strategy import build_strategy

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops before any update with it."""


@dataclass
class TrainContext:
    """What the training epoch and the validation pass work with. ``dataset``
    is the training set (its skeleton for debug images; None: none drawn);
    ``last_checkpoint`` names the file to go back to after a non-finite loss;
    ``global_step`` counts optimizer steps across epochs (TensorBoard's x axis)
    and is advanced by ``train_one_epoch``. ``scaler`` is the fp16 GradScaler
    (made on first use when ``TRAIN.AMP: fp16`` and none is given; pass the
    run's own to keep and checkpoint its scale). ``strategy`` defaults to
    ``build_strategy(cfg)``."""

    cfg: Any
    model: nn.Module
    codec: Any
    criterion: Optional[nn.Module] = None
    optimizer: Optional[torch.optim.Optimizer] = None
    scaler: Optional[torch.amp.GradScaler] = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    output_dir: str = ""
    writer: Any = None
    dataset: Any = None
    last_checkpoint: str = ""
    global_step: int = 0
    strategy: Any = None
    #: stepped after every optimizer step (``core.schedule.steps_per_iteration``);
    #: None: the caller steps its scheduler per epoch
    iteration_scheduler: Any = None
    #: applied to every input batch on the device (``utils.normalise.input_normaliser``)
    normalise: Any = None

    def __post_init__(self) -> None:
        if self.strategy is None:
            self.strategy = build_strategy(self.cfg)
        if self.normalise is None:
            self.normalise = input_normaliser(self.cfg)

    @property
    def forward(self):
        """The model under ``TRAIN.AMP`` (``core.inference.amp_forward``)."""
        return amp_forward(self.model, amp_dtype(self.cfg.TRAIN.AMP, "TRAIN.AMP"))


def _prepare(ctx: TrainContext, item: Any) -> Any:
    """The datasets' 4-tuple as the strategy's batch dict, on the device."""
    if not (isinstance(item, (list, tuple)) and len(item) == 4):
        return item
    inputs, target, target_weight, meta = item
    inputs = ctx.normalise(inputs.to(ctx.device, non_blocking=True))
    return {"inputs": to_channels_last(inputs, ctx.cfg.MODEL.CHANNELS_LAST),
            "target": to_device(target, ctx.device), "target_weight": target_weight.to(ctx.device, non_blocking=True),
            "meta": meta}


def _optimizer_step(ctx: TrainContext, loss: torch.Tensor) -> None:
    ctx.optimizer.zero_grad(set_to_none=True)
    extra = ctx.strategy.extra_parameters()
    if ctx.scaler is None:
        loss.backward()
        average_gradients(extra)
        ctx.optimizer.step()
    else:  # fp16: scale the loss against gradient underflow; skip steps with inf/nan gradients
        ctx.scaler.scale(loss).backward()
        average_gradients(extra)
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
    if ctx.iteration_scheduler is not None:
        ctx.iteration_scheduler.step()


def _metric_text(meters: dict[str, AverageMeter], current: bool) -> str:
    return "".join(f" {name} {m.val:.3f} ({m.avg:.3f})" if current else f", {name} {m.avg:.3f}"
                   for name, m in meters.items())


def train_one_epoch(ctx: TrainContext, loader, epoch: int) -> int:
    """One pass over the loader the strategy picks. Returns (and stores in
    ``ctx.global_step``) the updated global step. Raises NonFiniteLossError
    (naming the last good checkpoint) on a NaN/inf loss. The codec's
    ``train_metrics`` are logged next to the loss, and its ``heatmaps`` drawn in
    the debug images, for batches whose step stored the outputs."""
    cfg, codec = ctx.cfg, ctx.codec
    if amp_dtype(cfg.TRAIN.AMP, "TRAIN.AMP") == torch.float16 and ctx.scaler is None:
        ctx.scaler = torch.amp.GradScaler(ctx.device.type)
    loader = ctx.strategy.before_epoch(ctx, epoch, loader)
    ctx.model.train()
    losses, meters = AverageMeter(), {}
    skipped = 0
    progress = progress_bar(loader, desc=f"epoch {epoch}", unit="batch", leave=False)
    for i, item in enumerate(progress):
        batch = _prepare(ctx, item)
        labelled = isinstance(batch, dict) and "meta" in batch
        if labelled:
            skipped += int((batch["meta"]["valid"] == 0).sum())
        loss = ctx.strategy.step(ctx, batch)
        if not torch.isfinite(loss):
            where = f"the last good checkpoint is {ctx.last_checkpoint}" if ctx.last_checkpoint else "no checkpoint yet"
            bad = non_finite_samples(batch) if labelled else ""
            hint = f"{bad}: fix those samples" if bad else "try a lower TRAIN.LR"
            raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch}, iteration {i}; training stopped "
                                     f"before updating the weights ({where}); {hint}")
        _optimizer_step(ctx, loss)

        outputs = batch.get("outputs") if labelled else None
        losses.update(loss.item(), len(batch["inputs"]) if labelled else 1)
        if outputs is not None:
            for name, value in codec.train_metrics(outputs, batch["target"]).items():
                value, count = value if isinstance(value, tuple) else (value, len(batch["inputs"]))
                meters.setdefault(name, AverageMeter()).update(value, count)
        progress.set_postfix(loss=f"{losses.avg:.3e}", **{name: f"{m.avg:.3f}" for name, m in meters.items()})
        if ctx.writer is not None:
            ctx.writer.add_scalar("train_loss", losses.val, ctx.global_step)
            for name, m in meters.items():
                ctx.writer.add_scalar(f"train_{name}", m.val, ctx.global_step)
        if i % cfg.PRINT_FREQ == 0:
            logger.info("Epoch [%d][%d/%d] loss %.5f (%.5f)%s", epoch, i, len(loader), losses.val, losses.avg,
                        _metric_text(meters, current=True))
            heatmaps = codec.heatmaps(outputs) if outputs is not None else None
            if (cfg.DEBUG.DEBUG or ctx.writer is not None) and ctx.dataset is not None and heatmaps is not None:
                _save_debug_images(cfg, ctx.dataset, batch["inputs"], batch["meta"], codec.heatmaps(batch["target"]),
                                   heatmaps, os.path.join(ctx.output_dir, "debug", f"train_{epoch}_{i}"),
                                   ctx.writer, ctx.global_step)
        ctx.global_step += 1
    progress.close()
    if skipped:
        logger.warning("epoch %d: %d samples with unreadable images were skipped", epoch, skipped)
    logger.info("Epoch %d done: loss %.5f%s", epoch, losses.avg, _metric_text(meters, current=False))
    return ctx.global_step


def non_finite_samples(batch: dict, limit: int = 3) -> str:
    """Which samples of a batch carry NaN/inf in their inputs, targets or target
    weights, by dataset index and image, e.g. ``non-finite inputs in sample #4
    (img.jpg)``; '' when all are finite. Only called after a non-finite loss,
    so the training step pays nothing for it."""
    meta, found = batch["meta"], []
    for name in ("inputs", "target", "target_weight"):
        value = batch.get(name)
        tensors = list(value.values()) if isinstance(value, dict) else list(value) if isinstance(
            value, (list, tuple)) else [value]
        rows = torch.zeros(len(batch["inputs"]), dtype=torch.bool)
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and len(tensor) == len(rows):
                rows |= ~torch.isfinite(tensor.detach().reshape(len(tensor), -1)).all(dim=1).cpu()
        picked = torch.nonzero(rows).flatten().tolist()
        if picked:
            samples = ", ".join(f"#{int(meta['index'][j])} ({meta['image'][j]})" if "image" in meta
                                else f"#{int(meta['index'][j])}" for j in picked[:limit])
            more = f" and {len(picked) - limit} more" if len(picked) > limit else ""
            found.append(f"non-finite {name} in sample {samples}{more}")
    return "; ".join(found)


def _save_debug_images(cfg, dataset, inputs, meta, target, output, prefix: str, writer=None,
                       global_step: int = 0, max_tensorboard: int = 8) -> None:
    """GT and predicted (heatmap argmax) skeletons on the input crops, and GT and
    predicted heatmap sheets (the sheets alone without ``meta['joints']``): written as ``<prefix>_{gt,pred,hm_gt,hm_pred}.jpg``
    for each official ``DEBUG.SAVE_*`` switch when ``DEBUG.DEBUG`` is on, and
    all four to TensorBoard (``train/<name>``, first `max_tensorboard` crops)
    when a writer is given."""
    inputs, skeleton, rgb = inputs.detach().cpu(), getattr(dataset, "skeleton", []), cfg.DATASET.COLOR_RGB
    target, output = target.detach().float().cpu(), output.detach().float().cpu()
    panels = []
    if "joints" in meta:  # keypoint crops (a detector's samples carry boxes: heatmap sheets only)
        gt = np.concatenate([meta["joints"][..., :2].numpy(), meta["joints_vis"][..., :1].numpy()], axis=2)
        coords, maxvals = get_max_preds(output)
        pred = torch.cat([coords * (inputs.shape[3] / output.shape[3]), maxvals], dim=2).numpy()
        panels = [
            ("gt", cfg.DEBUG.SAVE_BATCH_IMAGES_GT,
             lambda path, n: save_batch_images_with_joints(inputs[:n], gt[:n], path, skeleton, dataset.flip_pairs,
                                                           rgb=rgb)),
            ("pred", cfg.DEBUG.SAVE_BATCH_IMAGES_PRED,
             lambda path, n: save_batch_images_with_joints(inputs[:n], pred[:n], path, skeleton, dataset.flip_pairs,
                                                           rgb=rgb)),
        ]
    panels += [
        ("hm_gt", cfg.DEBUG.SAVE_HEATMAPS_GT, lambda path, n: save_batch_heatmaps(inputs[:n], target[:n], path,
                                                                                   rgb=rgb)),
        ("hm_pred", cfg.DEBUG.SAVE_HEATMAPS_PRED, lambda path, n: save_batch_heatmaps(inputs[:n], output[:n], path,
                                                                                       rgb=rgb)),
    ]
    for name, switch, draw in panels:
        if cfg.DEBUG.DEBUG and switch:
            draw(f"{prefix}_{name}.jpg", len(inputs))
        if writer is not None:
            grid = draw(None, max_tensorboard)
            writer.add_image(f"train/{name}", grid[:, :, ::-1].copy(), global_step, dataformats="HWC")


def validate(ctx: TrainContext, loader: DataLoader, dataset, gallery: bool = True) -> tuple[dict, float]:
    """Predict (``core.inference.predict``), evaluate with the dataset's metric,
    log the table, write the galleries. Returns (stats by name, main metric).
    Distributed (torchrun): each rank predicts its shard of `loader` (a
    posezoo.utils.distributed.ShardedSampler), rank 0 gathers the shards and
    evaluates every box once, and every rank returns rank 0's result."""
    cfg, writer, output_dir = ctx.cfg, ctx.writer, ctx.output_dir
    out = predict(cfg, loader, ctx.model, ctx.codec, dataset.flip_pairs, ctx.device, ctx.criterion)
    if "foreground" in out and not out["foreground"].all():
        logger.warning("%d frames have no depth within the crop's range around the hand centre",
                       (~out["foreground"]).sum())
    if is_distributed():
        out = gather_shards(_with_dataset_index(out, loader))
        if out is None:  # not rank 0: rank 0 evaluates and shares the result
            return broadcast_object(None)
    keep = out["valid"]
    boxes = out["boxes"][keep] if out["boxes"] is not None else None
    name_values, perf = dataset.evaluate(out["preds"][keep], boxes, out["image_ids"][keep], output_dir)
    logger.info("\n%s", format_table(name_values, cfg.MODEL.NAME))
    write_metrics(output_dir, dataset, name_values, out)
    if writer is not None:
        writer.add_scalar("valid_loss", out["loss"], ctx.global_step)
        for name, value in name_values.items():
            writer.add_scalar(f"valid/{name}", value, ctx.global_step)
    if gallery:
        _write_galleries(ctx, dataset, out, keep)
    return broadcast_object((name_values, perf))


def skipped_summary(dataset, out: dict) -> dict:
    """What an evaluation left out and why: boxes whose image could not be read
    (``DATASET.SKIP_CORRUPT_IMAGES``; their image ids) and boxes the dataset
    dropped while loading (w or h <= 0, or outside their image: the shared
    ``usable_boxes`` rule)."""
    unreadable = np.unique(out["image_ids"][~out["valid"]]).tolist()
    return {"unreadable_image_boxes": int((~out["valid"]).sum()), "unreadable_image_ids": unreadable,
            "unusable_boxes": int(getattr(dataset, "skipped_boxes", 0))}


def write_metrics(output_dir: str, dataset, name_values: dict, out: dict) -> str:
    """``results/metrics_<set>.json``: the metric table, the number of boxes
    predicted and evaluated, and the ``skipped`` summary; the summary is also
    logged as one line after the table when anything was skipped."""
    skipped = skipped_summary(dataset, out)
    if skipped["unreadable_image_boxes"] or skipped["unusable_boxes"]:
        logger.warning("=> skipped: %d boxes of %d unreadable images (DATASET.SKIP_CORRUPT_IMAGES; image ids %s) "
                       "and %d boxes with w or h <= 0 or outside their image; the metrics leave them out",
                       skipped["unreadable_image_boxes"], len(skipped["unreadable_image_ids"]),
                       skipped["unreadable_image_ids"][:10], skipped["unusable_boxes"])
    path = os.path.join(output_dir, "results", f"metrics_{dataset.image_set}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {"metrics": {k: float(v) for k, v in name_values.items()}, "boxes": int(len(out["valid"])),
              "evaluated": int(out["valid"].sum()), "skipped": skipped}
    write_text_atomic(path, json.dumps(record, indent=1))
    return path


def _write_galleries(ctx: TrainContext, dataset, out: dict, keep: np.ndarray) -> None:
    """Person boxes: predicted skeletons on the first images and the best and
    worst instances; depth frames and detectors' whole images (no person
    boxes): the dataset draws its own sheets (best and worst frames, detected
    boxes)."""
    writer, global_step, output_dir = ctx.writer, ctx.global_step, ctx.output_dir
    if out["boxes"] is None:
        sheets = dataset.write_gallery(out["preds"][keep], out["image_ids"][keep], os.path.join(output_dir, "gallery"))
        for name, image in sheets.items():
            if writer is not None:
                writer.add_image(f"gallery/{name}", image[:, :, ::-1].copy(), global_step, dataformats="HWC")
        logger.info("=> %s drawn in %s", ", ".join(sheets) or "nothing", os.path.join(output_dir, "gallery"))
        return
    path = os.path.join(output_dir, f"predictions_{dataset.image_set}.png")
    image = _write_gallery(dataset, out, path)
    if writer is not None and image is not None:
        writer.add_image("predictions", image[:, :, ::-1].copy(), global_step, dataformats="HWC")
    logger.info("=> predicted skeletons drawn in %s", path)
    _write_best_worst(dataset, out, os.path.join(output_dir, "gallery"), writer, global_step)


def _with_dataset_index(out: dict, loader: DataLoader) -> dict:
    """`out` plus the dataset index of each row (``index``), read from the
    loader's sampler, whose order the rows follow, so that any predict function
    can be gathered: rank 0 sorts the shards back into dataset order."""
    if "index" in out:
        return out
    index = np.fromiter(iter(loader.sampler), dtype=np.int64)
    if len(index) != len(out["preds"]):
        raise RuntimeError(f"{len(out['preds'])} predictions for {len(index)} sampled boxes; a distributed test "
                           f"needs a loader without drop_last")
    return {**out, "index": index}


def _write_gallery(dataset, out: dict, path: str, max_images: int = 8) -> Optional[np.ndarray]:
    """Predicted skeletons (box score x keypoint score > 0.2) on the first val images."""
    ids = list(dict.fromkeys(out["image_ids"].tolist()))[:max_images]
    images, keypoints = [], []
    for image_id in ids:
        rows = np.flatnonzero((out["image_ids"] == image_id) & out["valid"] & (out["boxes"][:, 5] > 0.5))
        if not len(rows):
            continue
        images.append(dataset.image_path(image_id))
        keypoints.append(out["preds"][rows])
    if not images:
        return None
    return save_gallery(images, keypoints, path, dataset.skeleton, dataset.flip_pairs, max_images=max_images)


def _write_best_worst(dataset, out: dict, folder: str, writer=None, global_step: int = 0, count: int = 8
                      ) -> dict | None:
    """The `count` best and worst instances, ranked by OKS against the ground
    truth when the dataset has it and by predicted score (box score x mean
    keypoint score) otherwise, drawn over the region each was cropped from:
    ``best_<set>.png``, ``worst_<set>.png`` and ``<set>.json`` (the ranking)
    under `folder`, and ``gallery/best`` / ``gallery/worst`` in TensorBoard."""
    rows = np.flatnonzero(out["valid"])
    if not len(rows):
        return None
    preds, boxes, image_ids = out["preds"][rows], out["boxes"][rows], out["image_ids"][rows]
    scores = preds[:, :, 2].mean(axis=1) * boxes[:, 5]
    measured = instance_oks(dataset, preds, image_ids)
    metric, value = ("oks", measured[0]) if measured is not None else ("score", scores)
    order = np.lexsort((-scores, -value))  # best first, ties by predicted score
    size = boxes[:, 2:4] * PIXEL_STD
    regions = np.concatenate([boxes[:, 0:2] - size / 2, size], axis=1)
    ranking = {"metric": metric}
    for name, picked in (("best", order[:count]), ("worst", order[::-1][:count])):
        path = os.path.join(folder, f"{name}_{dataset.image_set}.png")
        grid = save_instance_gallery(
            [dataset.image_path(i) for i in image_ids[picked]], preds[picked], regions[picked], path,
            dataset.skeleton, dataset.flip_pairs, gt_keypoints=None if measured is None else measured[1][picked],
            captions=[f"{metric} {v:.3f}" for v in value[picked]])
        if writer is not None:
            writer.add_image(f"gallery/{name}", grid[:, :, ::-1].copy(), global_step, dataformats="HWC")
        ranking[name] = [{"image_id": int(image_ids[i]), "index": int(rows[i]), metric: float(value[i]),
                          "score": float(scores[i])} for i in picked]
    write_text_atomic(os.path.join(folder, f"{dataset.image_set}.json"), json.dumps(ranking, indent=1))
    logger.info("=> best and worst %d instances by %s drawn in %s", count, metric, folder)
    return ranking
