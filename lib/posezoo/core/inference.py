"""The test-time path, one for every codec: the forward (flip test where the
codec has one), the codec's decode with the crop geometry the dataset recorded,
and the per-box arrays the datasets evaluate. ``PoseEstimator`` (``api.py``)
runs the same functions on its own crops."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..codecs.base import last_stage
from ..utils.distributed import is_distributed
from ..utils.normalise import input_normaliser
from ..utils.transforms import PIXEL_STD
from ..utils.utils import AverageMeter, amp_dtype, progress_bar, to_channels_last, to_device


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


def chunked_forward(forward, chunk: int):
    """`forward` itself when `chunk` is 0; otherwise a callable that runs it on
    at most `chunk` crops at a time and concatenates the last stages
    (``TEST.FORWARD_CHUNK``). Per-crop results are those of one big call to
    float rounding: eval-mode layers do not mix the crops of a batch. On a CPU
    small chunks keep each layer's activations in cache and under the
    allocator's mmap threshold (why, and the ratios against the official validate(),
    measured side by side: docs/speed.md)."""
    if chunk <= 0:
        return forward

    def run(inputs: torch.Tensor):
        if not isinstance(inputs, torch.Tensor) or inputs.shape[0] <= chunk:
            return forward(inputs)
        parts = [last_stage(forward(part)) for part in inputs.split(chunk)]
        if not all(isinstance(part, torch.Tensor) for part in parts):
            raise ValueError(f"TEST.FORWARD_CHUNK {chunk}: this model's output is a {type(parts[0]).__name__}, not "
                             f"one tensor per batch; set TEST.FORWARD_CHUNK 0")
        return torch.cat(parts)
    return run


def inference_forward(model: nn.Module, cfg):
    """The test-time forward of `model` under ``TEST.AMP`` and ``TEST.FORWARD_CHUNK``."""
    chunk = int(cfg.TEST.FORWARD_CHUNK)
    if chunk < 0:
        raise ValueError(f"TEST.FORWARD_CHUNK = {chunk}: expected 0 (whole batches) or a positive crop count")
    return chunked_forward(amp_forward(model, amp_dtype(cfg.TEST.AMP, "TEST.AMP")), chunk)


def forward_test(model: nn.Module, inputs: torch.Tensor, codec, flip_pairs: Sequence[Sequence[int]],
                 flip: bool) -> Any:
    """The test-time forward of the last stage: with `flip`, the crops and their
    mirrors go through one forward and the mirrored output is flipped back by
    the codec's rule and averaged in (the flip test of Xiao et al. 2018 / Sun
    et al. 2019; summed for a codec whose ``flip_weight`` is 1, as bearpaw's
    hourglass release does). A codec that merges the mirrored pass itself
    (``decode_flipped``) gets both halves; a list of inputs (one per test scale)
    gives the list of their outputs."""
    if isinstance(inputs, (list, tuple)):  # one input batch per test scale (CORNERNET.TEST_SCALES)
        return [forward_test(model, x, codec, flip_pairs, flip) for x in inputs]
    if not flip:
        return last_stage(model(inputs))
    n = inputs.shape[0]
    both = last_stage(model(torch.cat([inputs, codec.flip_input(inputs, flip_pairs)], dim=0)))
    if codec.decode_flipped:
        return both
    return (both[:n] + codec.flip_back(both[n:], flip_pairs)) * codec.flip_weight


def decode_meta(codec, meta: Mapping[str, Any], inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """What ``codec.decode`` reads: its ``meta_keys`` on the inputs' device, and
    the input batch (the list of them with several test scales)."""
    device = inputs[0].device if isinstance(inputs, (list, tuple)) else inputs.device
    return {**{key: meta[key].to(device) for key in codec.meta_keys}, "inputs": inputs}


def decode_batch(codec, output: Any, meta: Mapping[str, Any], inputs: torch.Tensor) -> torch.Tensor:
    """One batch's decoded joints (N, K, 3): image x, y + score for 2D codecs,
    the frame coordinates themselves for 3D ones; for box codecs (N, D, 6)
    x1, y1, x2, y2, score (-1: no box), class."""
    coords, scores = codec.decode(output, decode_meta(codec, meta, inputs))
    if codec.prediction in ("keypoints2d", "boxes"):
        return torch.cat([coords.to(scores.dtype), scores], dim=2)
    return coords


def crop_boxes(meta: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Per person crop (N, 6): center, scale, area, detection score."""
    center, scale = meta["center"], meta["scale"]
    area = (scale * PIXEL_STD).prod(dim=1, keepdim=True)
    return torch.cat([center, scale, area, meta["score"].reshape(-1, 1).to(center.dtype)], dim=1).numpy()


@torch.inference_mode()
def predict(cfg, loader: DataLoader, model: nn.Module, codec, flip_pairs: Sequence[Sequence[int]],
            device: torch.device, criterion: Optional[nn.Module] = None, desc: str = "test"
            ) -> dict[str, np.ndarray]:
    """Run the model over every crop: flip test (where the codec has one) with
    the image and its mirror in one forward, decode on the device, all under
    torch.inference_mode (no autograd version counters or views recorded;
    HRNet's ``function.py`` validate uses no_grad and two forwards). Returns
    arrays ``preds`` (N, K, 3: image x, y, score for 2D codecs, frame uvd for
    3D ones; per image (N, D, 6) detections for box codecs), ``boxes`` (N, 6: center, scale, area, score; None for crops that
    are not person boxes), ``image_ids``, ``valid``, ``foreground`` where the
    dataset records it, and the mean ``loss`` of the last stage against the
    loader's targets."""
    model.eval()
    forward = inference_forward(model, cfg)
    flip = codec.flip_test(cfg)
    person_boxes = codec.prediction == "keypoints2d"
    columns: dict[str, list] = {"preds": [], "boxes": [], "image_ids": [], "valid": [], "foreground": []}
    losses = AverageMeter()
    normalise = input_normaliser(cfg)
    for inputs, target, target_weight, meta in progress_bar(loader, desc=desc, unit="batch", leave=False):
        inputs = to_device(inputs, device)
        if isinstance(inputs, torch.Tensor):  # a list: several test scales, from datasets that normalise
            inputs = normalise(inputs)
        inputs = to_channels_last(inputs, cfg.MODEL.CHANNELS_LAST)
        output = forward_test(forward, inputs, codec, flip_pairs, flip)
        if criterion is not None and not (isinstance(target, dict) and not target):  # detectors: no test target
            # the last stage's output against the last stage's target (one target per stage: a list)
            loss = criterion(output, last_stage(to_device(target, device)), target_weight.to(device))
            losses.update(loss.item(), inputs.shape[0])
        columns["preds"].append(decode_batch(codec, output, meta, inputs).cpu().numpy())
        if person_boxes:
            columns["boxes"].append(crop_boxes(meta))
        # copies: a worker's batch holds its small tensors in one block (utils/collate.py), kept alive by a view
        columns["image_ids"].append(meta["image_id"].numpy().copy())
        columns["valid"].append(meta["valid"].numpy().copy())
        if "foreground" in meta:
            columns["foreground"].append(meta["foreground"].numpy().copy())
    if not columns["preds"]:
        if is_distributed():  # more processes than boxes: this rank's shard is empty
            return empty_shard(cfg, person_boxes)
        raise ValueError(f"the test set is empty: no {'person box' if person_boxes else 'frame'} to predict")
    out = {"preds": np.concatenate(columns["preds"]).astype(np.float64),
           "boxes": np.concatenate(columns["boxes"]).astype(np.float64) if person_boxes else None,
           "image_ids": np.concatenate(columns["image_ids"]), "valid": np.concatenate(columns["valid"]).astype(bool),
           "loss": losses.avg}
    if columns["foreground"]:
        out["foreground"] = np.concatenate(columns["foreground"]).astype(bool)
    return out


def empty_shard(cfg, person_boxes: bool) -> dict:
    """What a rank with no crop to predict contributes to the gather."""
    out = {"preds": np.zeros((0, cfg.MODEL.NUM_JOINTS, 3)), "boxes": np.zeros((0, 6)) if person_boxes else None,
           "image_ids": np.zeros(0, np.int64), "valid": np.zeros(0, bool), "loss": 0.0}
    return out if person_boxes else {**out, "foreground": np.zeros(0, bool)}
