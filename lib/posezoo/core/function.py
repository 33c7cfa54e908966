"""The training epoch and the test pass (SimpleBaseline/HRNet's
``core/function.py``), device-agnostic: the same code runs on CUDA and CPU."""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..codecs.gaussian import get_max_preds
from ..utils.transforms import PIXEL_STD
from ..utils.vis import save_batch_heatmaps, save_batch_images_with_joints, save_gallery
from .evaluate import heatmap_accuracy

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stops before any update with it."""


class AverageMeter:
    def __init__(self) -> None:
        self.val = self.sum = self.avg = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / max(self.count, 1)


def _compute_loss(criterion: nn.Module, outputs, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """Multi-stage models (a list of outputs) are supervised at every stage."""
    if isinstance(outputs, (list, tuple)):
        return sum(criterion(o, target, target_weight) for o in outputs)
    return criterion(outputs, target, target_weight)


def _last(outputs) -> torch.Tensor:
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def train_one_epoch(cfg, loader: DataLoader, model: nn.Module, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, epoch: int, device: torch.device, output_dir: str,
                    writer=None, global_step: int = 0, last_checkpoint: str = "", dataset=None, codec=None) -> int:
    """One pass over `loader`. Returns the updated global step. Raises
    NonFiniteLossError (naming the last good checkpoint) on a NaN/inf loss.
    Accuracy and debug images use the heatmap channels only (every
    ``codec.channels_per_joint``-th one: UDP's offset target interleaves offsets)."""
    step = getattr(codec, "channels_per_joint", 1)
    model.train()
    losses, accs = AverageMeter(), AverageMeter()
    skipped = 0
    progress = tqdm(loader, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True, leave=False)
    for i, (inputs, target, target_weight, meta) in enumerate(progress):
        inputs = inputs.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        target_weight = target_weight.to(device, non_blocking=True)
        skipped += int((meta["valid"] == 0).sum())

        outputs = model(inputs)
        loss = _compute_loss(criterion, outputs, target, target_weight)
        if not torch.isfinite(loss):
            where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint yet"
            raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch}, iteration {i}; training stopped "
                                     f"before updating the weights ({where}); try a lower TRAIN.LR")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        output, target = _last(outputs)[:, ::step], target[:, ::step]
        _, avg_acc, cnt = heatmap_accuracy(output, target)
        losses.update(loss.item(), inputs.size(0))
        accs.update(avg_acc, cnt)
        progress.set_postfix(loss=f"{losses.avg:.3e}", acc=f"{accs.avg:.3f}")
        if writer is not None:
            writer.add_scalar("train_loss", losses.val, global_step)
            writer.add_scalar("train_acc", accs.val, global_step)
        if i % cfg.PRINT_FREQ == 0:
            logger.info("Epoch [%d][%d/%d] loss %.5f (%.5f) acc %.3f (%.3f)", epoch, i, len(loader),
                        losses.val, losses.avg, accs.val, accs.avg)
            if cfg.DEBUG.DEBUG and dataset is not None:
                _save_debug_images(cfg, dataset, inputs, meta, target, output, os.path.join(
                    output_dir, "debug", f"train_{epoch}_{i}"))
        global_step += 1
    progress.close()
    if skipped:
        logger.warning("epoch %d: %d samples with unreadable images were skipped", epoch, skipped)
    logger.info("Epoch %d done: loss %.5f, heatmap accuracy %.3f", epoch, losses.avg, accs.avg)
    return global_step


def _save_debug_images(cfg, dataset, inputs, meta, target, output, prefix: str) -> None:
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    inputs, skeleton = inputs.detach().cpu(), getattr(dataset, "skeleton", [])
    if cfg.DEBUG.SAVE_BATCH_IMAGES_GT:
        gt = np.concatenate([meta["joints"][..., :2].numpy(), meta["joints_vis"][..., :1].numpy()], axis=2)
        save_batch_images_with_joints(inputs, gt, prefix + "_gt.jpg", skeleton, dataset.flip_pairs,
                                      rgb=cfg.DATASET.COLOR_RGB)
    if cfg.DEBUG.SAVE_BATCH_IMAGES_PRED:
        coords, maxvals = get_max_preds(output.detach().float().cpu())
        stride = inputs.shape[3] / output.shape[3]
        pred = torch.cat([coords * stride, maxvals], dim=2).numpy()
        save_batch_images_with_joints(inputs, pred, prefix + "_pred.jpg", skeleton, dataset.flip_pairs,
                                      rgb=cfg.DATASET.COLOR_RGB)
    if cfg.DEBUG.SAVE_HEATMAPS_GT:
        save_batch_heatmaps(inputs, target.detach().cpu(), prefix + "_hm_gt.jpg")
    if cfg.DEBUG.SAVE_HEATMAPS_PRED:
        save_batch_heatmaps(inputs, output.detach().float().cpu(), prefix + "_hm_pred.jpg")


@torch.no_grad()
def predict(cfg, loader: DataLoader, model: nn.Module, codec, flip_pairs: Sequence[Sequence[int]],
            device: torch.device, criterion: Optional[nn.Module] = None, desc: str = "test"
            ) -> dict[str, np.ndarray]:
    """Run the model over every box: flip test with the image and its mirror in
    one forward, the codec's flip rule, decode on the device. Returns arrays
    ``preds`` (N, K, 3), ``boxes`` (N, 6: center, scale, area, score),
    ``image_ids``, ``valid`` and the mean ``loss`` against the loader's targets."""
    model.eval()
    preds, boxes, image_ids, valid = [], [], [], []
    losses = AverageMeter()
    for inputs, target, target_weight, meta in tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True,
                                                    leave=False):
        inputs = inputs.to(device, non_blocking=True)
        n = inputs.shape[0]
        if cfg.TEST.FLIP_TEST:
            both = _last(model(torch.cat([inputs, inputs.flip(3)], dim=0)))
            output = (both[:n] + codec.flip_back(both[n:], flip_pairs)) * 0.5
        else:
            output = _last(model(inputs))
        if criterion is not None:
            loss = criterion(output, target.to(device), target_weight.to(device))
            losses.update(loss.item(), n)
        center, scale = meta["center"], meta["scale"]
        coords, maxvals = codec.decode(output, center.to(device), scale.to(device))
        preds.append(torch.cat([coords.to(maxvals.dtype), maxvals], dim=2).cpu().numpy())
        area = (scale * PIXEL_STD).prod(dim=1, keepdim=True)
        boxes.append(torch.cat([center, scale, area, meta["score"].reshape(-1, 1).to(center.dtype)],
                               dim=1).numpy())
        image_ids.append(meta["image_id"].numpy())
        valid.append(meta["valid"].numpy())
    if not preds:
        raise ValueError("the test set is empty: no person box to predict")
    return {"preds": np.concatenate(preds).astype(np.float64), "boxes": np.concatenate(boxes).astype(np.float64),
            "image_ids": np.concatenate(image_ids), "valid": np.concatenate(valid).astype(bool),
            "loss": losses.avg}


def format_table(name_values: dict, model_name: str) -> str:
    """HRNet's markdown results table."""
    names = list(name_values)
    header = "| Arch | " + " | ".join(names) + " |"
    rule = "|---" * (len(names) + 1) + "|"
    row = f"| {model_name} | " + " | ".join(f"{v:.3f}" for v in name_values.values()) + " |"
    return "\n".join([header, rule, row])


def validate(cfg, loader: DataLoader, dataset, model: nn.Module, codec, device: torch.device, output_dir: str,
             criterion: Optional[nn.Module] = None, writer=None, global_step: int = 0,
             gallery: bool = True) -> tuple[dict, float]:
    """Predict, evaluate with the dataset's metric, log the table, write a
    gallery PNG of predicted skeletons. Returns (stats by name, main metric)."""
    out = predict(cfg, loader, model, codec, dataset.flip_pairs, device, criterion)
    if not out["valid"].all():
        logger.warning("%d boxes with unreadable images were left out of the evaluation", (~out["valid"]).sum())
    keep = out["valid"]
    name_values, perf = dataset.evaluate(out["preds"][keep], out["boxes"][keep], out["image_ids"][keep],
                                         output_dir)
    logger.info("\n%s", format_table(name_values, cfg.MODEL.NAME))
    if writer is not None:
        writer.add_scalar("valid_loss", out["loss"], global_step)
        for name, value in name_values.items():
            writer.add_scalar(f"valid/{name}", value, global_step)
    if gallery:
        path = os.path.join(output_dir, f"predictions_{dataset.image_set}.png")
        image = _write_gallery(dataset, out, path)
        if writer is not None and image is not None:
            writer.add_image("predictions", image[:, :, ::-1].copy(), global_step, dataformats="HWC")
        logger.info("=> predicted skeletons drawn in %s", path)
    return name_values, perf


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
