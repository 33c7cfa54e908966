"""A network input from a crop: (pixel / 255 - mean) / std per channel, as torchvision's ToTensor +
Normalize compute it for the official code, either in the dataset (the default) or, with
``DATASET.UINT8_INPUTS``, on the model's device from the uint8 crop the DataLoader carries
(``InputNormaliser``: the same float32 values bit for bit, a quarter of the bytes between processes)."""
from __future__ import annotations

import os
from collections.abc import Callable

import cv2
import numpy as np
import torch

# ImageNet statistics (RGB order), the default of DATASET.INPUT_MEAN/INPUT_STD,
# applied to every input as the official ToTensor + Normalize does, whatever
# DATASET.COLOR_RGB says.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def load_mean_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of a bearpaw-style ``mean.pth.tar`` (``{'mean': (3,), 'std':
    (3,)}`` tensors, RGB / 255; bearpaw/pytorch-pose and CC-SSL's ``data/*/``):
    its mean and a std of 1, since their ``color_normalize`` only subtracts
    (Learning-from-Synthetic-Animals ``pose/utils/transforms.py:13-19``). Read
    with ``weights_only=True``: a file holding anything but tensors is refused."""
    if not os.path.isfile(path):
        raise ValueError(f"DATASET.INPUT_MEAN_FILE {path} not found (a mean.pth.tar such as CC-SSL's "
                         f"data/synthetic_animal/<animal>_combineds5r5_texture/mean.pth.tar)")
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # an unsafe pickle or a file that is no torch archive
        raise ValueError(f"DATASET.INPUT_MEAN_FILE {path} cannot be read with torch.load(weights_only=True) "
                         f"({type(err).__name__}); it must hold only a dict of tensors "
                         f"{{'mean': ..., 'std': ...}}") from None
    mean = stats.get("mean") if isinstance(stats, dict) else None
    if mean is None or np.asarray(mean).reshape(-1).shape != (3,):
        raise ValueError(f"DATASET.INPUT_MEAN_FILE {path}: expected a dict with a 3-value 'mean'")
    return np.asarray(mean, np.float32).reshape(3), np.ones(3, np.float32)


def input_normalisation(cfg) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) float32 per channel from DATASET.INPUT_MEAN / INPUT_STD, or
    from DATASET.INPUT_MEAN_FILE when it is set (``load_mean_file``)."""
    if cfg.DATASET.INPUT_MEAN_FILE:
        return load_mean_file(cfg.DATASET.INPUT_MEAN_FILE)
    mean = np.asarray(cfg.DATASET.INPUT_MEAN, dtype=np.float32)
    std = np.asarray(cfg.DATASET.INPUT_STD, dtype=np.float32)
    if mean.shape != (3,) or std.shape != (3,) or not (std > 0).all():
        raise ValueError(f"DATASET.INPUT_MEAN {mean.tolist()} / INPUT_STD {std.tolist()}: expected three values "
                         f"each, std > 0")
    return mean, std


def normalise_pixels(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(pixel / 255 - mean) / std in float32, channel last, as torchvision's
    ToTensor + Normalize compute it."""
    return (pixels.astype(np.float32) / 255.0 - mean) / std


def to_input_tensor(crop: np.ndarray, mean: np.ndarray = MEAN, std: np.ndarray = STD) -> torch.Tensor:
    """HWC uint8 -> CHW float32, (pixel / 255 - mean) / std (ImageNet's by default).
    A uint8 crop goes through a 256-entry table per channel built by the same
    float32 expression (so the values are bit for bit the formula's), one
    cv2.LUT per channel plane written straight into CHW: one pass instead of four
    full-crop float passes and a transposing copy (the data pipeline against the
    official JointsDataset, side by side: docs/speed.md)."""
    if crop.dtype != np.uint8:
        return torch.from_numpy(normalise_pixels(crop, mean, std).transpose(2, 0, 1).copy())
    out = np.empty((crop.shape[2],) + crop.shape[:2], np.float32)
    _lookup_planes(cv2.split(crop), pixel_table(mean, std), out)
    return torch.from_numpy(out)


def pixel_table(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(3, 256) float32: ``normalise_pixels`` of every uint8 level, per channel."""
    return np.ascontiguousarray(normalise_pixels(np.arange(256, dtype=np.uint8)[:, None], mean, std).T)


def _lookup_planes(planes, table: np.ndarray, out: np.ndarray) -> None:
    """``out[c] = table[c][planes[c]]`` for the (h, w) uint8 planes of one crop (cv2.LUT)."""
    for channel, plane in enumerate(planes):
        cv2.LUT(plane, table[channel], dst=out[channel])


def uint8_input_tensor(crop: np.ndarray) -> torch.Tensor:
    """HWC uint8 -> CHW uint8 (``DATASET.UINT8_INPUTS``: normalised later by ``InputNormaliser``)."""
    if crop.dtype != np.uint8:
        raise ValueError(f"DATASET.UINT8_INPUTS needs uint8 crops; this pipeline made {crop.dtype} ones "
                         f"(set DATASET.UINT8_INPUTS False)")
    out = np.empty((crop.shape[2],) + crop.shape[:2], np.uint8)
    cv2.split(crop, list(out))  # deinterleaves into the planes given: 8 us a 256x192 crop, 42 by a transposing copy
    return torch.from_numpy(out)


class InputNormaliser:
    """A batch from ``DATASET.UINT8_INPUTS`` loaders, (N, 3, h, w) uint8, as the float32 inputs the
    dataset would have made itself (``to_input_tensor``): bit for bit, since both are the same
    float32 operations on each of the 256 levels. On the CPU it looks the levels up (cv2.LUT, 55 us a
    256x192 crop against 150 for the arithmetic); on an accelerator it computes them there, so the
    DataLoader and the host-to-device copy move a quarter of the bytes (mmpose 1.x's data
    preprocessor does the same). Float batches pass through unchanged."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.table = pixel_table(mean, std)
        self.mean, self.std = (torch.from_numpy(np.asarray(v, np.float32)).view(1, 3, 1, 1) for v in (mean, std))

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dtype != torch.uint8:
            return inputs
        if inputs.device.type == "cpu":
            pixels = inputs.numpy()
            out = np.empty(pixels.shape, np.float32)
            for crop, dst in zip(pixels, out):
                _lookup_planes(crop, self.table, dst)
            return torch.from_numpy(out)
        return self.arithmetic(inputs)

    def arithmetic(self, inputs: torch.Tensor) -> torch.Tensor:
        """The accelerator path: ``normalise_pixels``'s float32 operations, in its order, on the device."""
        mean, std = self.mean.to(inputs.device), self.std.to(inputs.device)
        return (inputs.float() / 255.0 - mean) / std


def _unchanged(inputs: torch.Tensor) -> torch.Tensor:
    return inputs


def input_normaliser(cfg) -> Callable[[torch.Tensor], torch.Tensor]:
    """What a loop applies to each input batch on its device: the config's ``InputNormaliser``
    (DATASET.INPUT_MEAN / INPUT_STD or INPUT_MEAN_FILE) under ``DATASET.UINT8_INPUTS``, else nothing."""
    return InputNormaliser(*input_normalisation(cfg)) if cfg.DATASET.UINT8_INPUTS else _unchanged
