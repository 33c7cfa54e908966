"""The training epoch and the test pass (SimpleBaseline/HRNet's
``core/function.py``), device-agnostic: the same code runs on CUDA and CPU."""
from __future__ import annotations

import json
import logging
import os
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..codecs.gaussian import get_max_preds
from ..utils.distributed import broadcast_object, gather_shards, is_distributed, is_main_process
from ..utils.transforms import PIXEL_STD
from ..utils.utils import amp_dtype, to_channels_last
from ..utils.vis import (
    save_batch_heatmaps,
    save_batch_images_with_joints,
    save_gallery,
    save_instance_gallery,
)
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


def _to_device(x, device: torch.device):
    """A tensor, or a dict of tensors (codecs with several targets, e.g. AWR)."""
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def amp_forward(model: nn.Module, dtype: Optional[torch.dtype]):
    """`model` itself when mixed precision is off (the float32 path is untouched);
    otherwise a callable that runs it under torch.autocast to `dtype` and hands
    back float32 outputs, so losses, flip-back and decoding stay float32."""
    if dtype is None:
        return model

    def forward(inputs: torch.Tensor):
        with torch.autocast(inputs.device.type, dtype=dtype):
            outputs = model(inputs)
        return [o.float() for o in outputs] if isinstance(outputs, (list, tuple)) else outputs.float()
    return forward


def train_one_epoch(cfg, loader: DataLoader, model: nn.Module, criterion: nn.Module,
                    optimizer: torch.optim.Optimizer, epoch: int, device: torch.device, output_dir: str,
                    writer=None, global_step: int = 0, last_checkpoint: str = "", dataset=None, codec=None,
                    scaler: Optional[torch.amp.GradScaler] = None) -> int:
    """One pass over `loader`. Returns the updated global step. Raises
    NonFiniteLossError (naming the last good checkpoint) on a NaN/inf loss.
    Accuracy and debug images use the heatmap channels only (every
    ``codec.channels_per_joint``-th one: UDP's offset target interleaves offsets).
    ``TRAIN.AMP`` runs the forward under autocast; fp16 steps through `scaler`
    (one is made when none is passed; pass the run's own to keep and checkpoint
    its scale across epochs)."""
    amp = amp_dtype(cfg.TRAIN.AMP, "TRAIN.AMP")
    if amp == torch.float16 and scaler is None:
        scaler = torch.amp.GradScaler(device.type)
    forward = amp_forward(model, amp)
    step = getattr(codec, "channels_per_joint", 1)
    is_3d = getattr(codec, "is_3d", False)
    model.train()
    losses, accs = AverageMeter(), AverageMeter()
    skipped = 0
    progress = tqdm(loader, desc=f"epoch {epoch}", unit="batch", dynamic_ncols=True, leave=False,
                    disable=not is_main_process())
    for i, (inputs, target, target_weight, meta) in enumerate(progress):
        inputs = to_channels_last(inputs.to(device, non_blocking=True), cfg.MODEL.CHANNELS_LAST)
        target = _to_device(target, device)
        target_weight = target_weight.to(device, non_blocking=True)
        skipped += int((meta["valid"] == 0).sum())

        outputs = forward(inputs)
        loss = _compute_loss(criterion, outputs, target, target_weight)
        if not torch.isfinite(loss):
            where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint yet"
            raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch}, iteration {i}; training stopped "
                                     f"before updating the weights ({where}); try a lower TRAIN.LR")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scale the loss against gradient underflow; skip steps with inf/nan gradients
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        losses.update(loss.item(), inputs.size(0))
        if not is_3d:
            output, target = _last(outputs)[:, ::step], target[:, ::step]
            _, avg_acc, cnt = heatmap_accuracy(output, target)
            accs.update(avg_acc, cnt)
        progress.set_postfix(loss=f"{losses.avg:.3e}", **({} if is_3d else {"acc": f"{accs.avg:.3f}"}))
        if writer is not None:
            writer.add_scalar("train_loss", losses.val, global_step)
            if not is_3d:
                writer.add_scalar("train_acc", accs.val, global_step)
        if i % cfg.PRINT_FREQ == 0:
            logger.info("Epoch [%d][%d/%d] loss %.5f (%.5f)" + ("" if is_3d else " acc %.3f (%.3f)"), epoch, i,
                        len(loader), losses.val, losses.avg, *(() if is_3d else (accs.val, accs.avg)))
            if (cfg.DEBUG.DEBUG or writer is not None) and dataset is not None and not is_3d:
                _save_debug_images(cfg, dataset, inputs, meta, target, output, os.path.join(
                    output_dir, "debug", f"train_{epoch}_{i}"), writer, global_step)
        global_step += 1
    progress.close()
    if skipped:
        logger.warning("epoch %d: %d samples with unreadable images were skipped", epoch, skipped)
    logger.info("Epoch %d done: loss %.5f" + ("" if is_3d else ", heatmap accuracy %.3f"), epoch, losses.avg,
                *(() if is_3d else (accs.avg,)))
    return global_step


def _save_debug_images(cfg, dataset, inputs, meta, target, output, prefix: str, writer=None,
                       global_step: int = 0, max_tensorboard: int = 8) -> None:
    """GT and predicted (heatmap argmax) skeletons on the input crops, and GT and
    predicted heatmap sheets: written as ``<prefix>_{gt,pred,hm_gt,hm_pred}.jpg``
    for each official ``DEBUG.SAVE_*`` switch when ``DEBUG.DEBUG`` is on, and
    all four to TensorBoard (``train/<name>``, first `max_tensorboard` crops)
    when a writer is given."""
    inputs, skeleton, rgb = inputs.detach().cpu(), getattr(dataset, "skeleton", []), cfg.DATASET.COLOR_RGB
    target, output = target.detach().float().cpu(), output.detach().float().cpu()
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


def forward_test(model: nn.Module, inputs: torch.Tensor, codec, flip_pairs: Sequence[Sequence[int]],
                 flip: bool) -> torch.Tensor:
    """The test-time forward: with `flip`, the crops and their mirrors go through
    one forward and the mirrored output is flipped back by the codec's rule and
    averaged in (the flip test of Xiao et al. 2018 / Sun et al. 2019)."""
    if not flip:
        return _last(model(inputs))
    n = inputs.shape[0]
    both = _last(model(torch.cat([inputs, inputs.flip(3)], dim=0)))
    return (both[:n] + codec.flip_back(both[n:], flip_pairs)) * 0.5


@torch.no_grad()
def predict(cfg, loader: DataLoader, model: nn.Module, codec, flip_pairs: Sequence[Sequence[int]],
            device: torch.device, criterion: Optional[nn.Module] = None, desc: str = "test"
            ) -> dict[str, np.ndarray]:
    """Run the model over every box: flip test with the image and its mirror in
    one forward, the codec's flip rule, decode on the device. Returns arrays
    ``preds`` (N, K, 3), ``boxes`` (N, 6: center, scale, area, score),
    ``image_ids``, ``valid`` and the mean ``loss`` against the loader's targets."""
    model.eval()
    forward = amp_forward(model, amp_dtype(cfg.TEST.AMP, "TEST.AMP"))
    preds, boxes, image_ids, valid = [], [], [], []
    losses = AverageMeter()
    for inputs, target, target_weight, meta in tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True,
                                                    leave=False, disable=not is_main_process()):
        inputs = to_channels_last(inputs.to(device, non_blocking=True), cfg.MODEL.CHANNELS_LAST)
        n = inputs.shape[0]
        output = forward_test(forward, inputs, codec, flip_pairs, cfg.TEST.FLIP_TEST)
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
        if is_distributed():  # more processes than boxes: this rank's shard is empty
            return _empty_shard(cfg, boxes=True)
        raise ValueError("the test set is empty: no person box to predict")
    return {"preds": np.concatenate(preds).astype(np.float64), "boxes": np.concatenate(boxes).astype(np.float64),
            "image_ids": np.concatenate(image_ids), "valid": np.concatenate(valid).astype(bool),
            "loss": losses.avg}


def decode_depth_batch(codec, outputs, inputs: torch.Tensor, crop_to_image_matrix: torch.Tensor,
                       center: torch.Tensor, depth_scale: torch.Tensor) -> torch.Tensor:
    """A batch of depth-model outputs -> (N, K, 3) frame uvd on the inputs' device:
    ``codec.decode`` to crop space (u_c, v_c, dz), then each crop's inverse affine
    (N, 2, 3) and depth scale (``datasets.nyu.crop_to_image``). The one decode of
    ``predict_3d`` and ``PoseEstimator.estimate_depth``."""
    from ..datasets.nyu import crop_to_image

    device = inputs.device
    joints_crop = codec.decode(_last(outputs), inputs).float()
    return crop_to_image(joints_crop, crop_to_image_matrix.to(device), center.to(device), depth_scale.to(device))


@torch.no_grad()
def predict_3d(cfg, loader: DataLoader, model: nn.Module, codec, device: torch.device,
               criterion: Optional[nn.Module] = None, desc: str = "test") -> dict[str, np.ndarray]:
    """Depth crops (NYU): decode to crop space on the device, then back to frame
    uvd with each crop's inverse affine (batched). Returns ``preds`` (N, K, 3)
    frame uvd, ``image_ids`` (frame indices), ``valid``, ``foreground`` and the
    mean ``loss``."""
    model.eval()
    forward = amp_forward(model, amp_dtype(cfg.TEST.AMP, "TEST.AMP"))
    preds, image_ids, valid, foreground = [], [], [], []
    losses = AverageMeter()
    for inputs, target, target_weight, meta in tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True,
                                                    leave=False, disable=not is_main_process()):
        inputs = to_channels_last(inputs.to(device, non_blocking=True), cfg.MODEL.CHANNELS_LAST)
        outputs = forward(inputs)
        if criterion is not None:
            loss = _compute_loss(criterion, outputs, _to_device(target, device), target_weight.to(device))
            losses.update(loss.item(), inputs.shape[0])
        uvd = decode_depth_batch(codec, outputs, inputs, meta["crop_to_image"], meta["center"], meta["depth_scale"])
        preds.append(uvd.cpu().numpy())
        image_ids.append(meta["image_id"].numpy())
        valid.append(meta["valid"].numpy())
        foreground.append(meta["foreground"].numpy())
    if not preds:
        if is_distributed():
            return {**_empty_shard(cfg, boxes=False), "foreground": np.zeros(0, bool)}
        raise ValueError("the test set is empty: no frame to predict")
    return {"preds": np.concatenate(preds).astype(np.float64), "boxes": None,
            "image_ids": np.concatenate(image_ids), "valid": np.concatenate(valid).astype(bool),
            "foreground": np.concatenate(foreground).astype(bool), "loss": losses.avg}


def _empty_shard(cfg, boxes: bool) -> dict:
    """What a rank with no box to predict contributes to the gather."""
    return {"preds": np.zeros((0, cfg.MODEL.NUM_JOINTS, 3)), "boxes": np.zeros((0, 6)) if boxes else None,
            "image_ids": np.zeros(0, np.int64), "valid": np.zeros(0, bool), "loss": 0.0}


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
    gallery PNG of predicted skeletons. Returns (stats by name, main metric).
    Distributed (torchrun): each rank predicts its shard of `loader` (a
    posezoo.utils.distributed.ShardedSampler), rank 0 gathers the shards and
    evaluates every box once, and every rank returns rank 0's result."""
    if getattr(codec, "is_3d", False):
        out = predict_3d(cfg, loader, model, codec, device, criterion)
        if not out["foreground"].all():
            logger.warning("%d frames have no depth within the crop's range around the hand centre",
                           (~out["foreground"]).sum())
    else:
        out = predict(cfg, loader, model, codec, dataset.flip_pairs, device, criterion)
    if is_distributed():
        out = gather_shards(_with_dataset_index(out, loader))
        if out is None:  # not rank 0: rank 0 evaluates and shares the result
            return broadcast_object(None)
    if not out["valid"].all():
        logger.warning("%d boxes with unreadable images were left out of the evaluation", (~out["valid"]).sum())
    keep = out["valid"]
    boxes = out["boxes"][keep] if out["boxes"] is not None else None
    name_values, perf = dataset.evaluate(out["preds"][keep], boxes, out["image_ids"][keep], output_dir)
    logger.info("\n%s", format_table(name_values, cfg.MODEL.NAME))
    if writer is not None:
        writer.add_scalar("valid_loss", out["loss"], global_step)
        for name, value in name_values.items():
            writer.add_scalar(f"valid/{name}", value, global_step)
    if gallery and out["boxes"] is None:  # depth frames: the dataset draws its best and worst frames
        for name, image in dataset.write_gallery(out["preds"][keep], out["image_ids"][keep],
                                                 os.path.join(output_dir, "gallery")).items():
            if writer is not None:
                writer.add_image(f"gallery/{name}", image[:, :, ::-1].copy(), global_step, dataformats="HWC")
        logger.info("=> best and worst frames drawn in %s", os.path.join(output_dir, "gallery"))
    if gallery and out["boxes"] is not None:
        path = os.path.join(output_dir, f"predictions_{dataset.image_set}.png")
        image = _write_gallery(dataset, out, path)
        if writer is not None and image is not None:
            writer.add_image("predictions", image[:, :, ::-1].copy(), global_step, dataformats="HWC")
        logger.info("=> predicted skeletons drawn in %s", path)
        _write_best_worst(dataset, out, os.path.join(output_dir, "gallery"), writer, global_step)
    return broadcast_object((name_values, perf))


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


def instance_oks(dataset, preds: np.ndarray, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per predicted instance, its best OKS against the labelled people of its
    image (COCOeval's per-pair OKS: mean over the GT's labelled joints of
    exp(-d^2 / (2 area (2 sigma)^2))) and that person's GT keypoints (N, K, 3);
    0 and zeros for an image without labelled people. None when the dataset
    has no COCO ground truth (``dataset.coco`` and ``dataset.sigmas``)."""
    coco, sigmas = getattr(dataset, "coco", None), getattr(dataset, "sigmas", None)
    if coco is None or sigmas is None:
        return None
    num_joints = preds.shape[1]
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2
    categories = getattr(dataset, "category_ids", {getattr(dataset, "category_id", 1)})
    oks, matched = np.zeros(len(preds)), np.zeros((len(preds), num_joints, 3))
    for image_id in np.unique(image_ids):
        anns = [a for a in coco.imgToAnns.get(int(image_id), []) if a.get("category_id") in categories
                and not a.get("iscrowd", 0) and len(a.get("keypoints", [])) == 3 * num_joints]
        gt = np.asarray([a["keypoints"] for a in anns], dtype=np.float64).reshape(-1, num_joints, 3)
        labelled = gt[:, :, 2] > 0
        keep = labelled.any(axis=1)
        if not keep.any():
            continue
        gt, labelled = gt[keep], labelled[keep]
        area = np.asarray([a.get("area", 0.0) for a in anns], dtype=np.float64)[keep]
        rows = np.flatnonzero(image_ids == image_id)
        d2 = ((preds[rows, None, :, :2] - gt[None, :, :, :2]) ** 2).sum(axis=3)
        e = d2 / variances / (area[None, :, None] + np.spacing(1)) / 2
        pair = (np.exp(-e) * labelled).sum(axis=2) / labelled.sum(axis=1)
        best = pair.argmax(axis=1)
        oks[rows] = pair[np.arange(len(rows)), best]
        matched[rows] = gt[best]
    return oks, matched


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
    with open(os.path.join(folder, f"{dataset.image_set}.json"), "w") as f:
        json.dump(ranking, f, indent=1)
    logger.info("=> best and worst %d instances by %s drawn in %s", count, metric, folder)
    return ranking
