"""Datasets by name: ``DATASET.DATASET`` is a module here (or a dotted import
path) exposing ``get_dataset(cfg, image_set, is_train, codec)``, and
``keypoint_info(cfg) -> KeypointInfo`` (joint names, flip pairs, skeleton, OKS
sigmas) for the API and the visualiser, which never look at dataset names.
A sample is ``(inputs, target, target_weight, meta)``; ``inputs`` is the
normalised float32 crop, or with ``DATASET.UINT8_INPUTS`` the uint8 one (the
dataset then sets ``uint8_inputs = True``; the loops normalise it on the
device, ``utils/normalise.py``)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..utils.registry import available, resolve

__all__ = ["KeypointInfo", "available_datasets", "build_dataset", "keypoint_info"]

Pairs = list[tuple[int, int]]


@dataclass(frozen=True)
class KeypointInfo:
    """A keypoint set's metadata: 0-based pairs; ``sigmas`` as COCOeval uses
    them (None where the dataset has no OKS metric)."""

    joint_names: tuple[str, ...] = ()
    flip_pairs: Pairs = ()
    skeleton: Pairs = ()
    sigmas: Optional[np.ndarray] = None


def as_pairs(pairs) -> Pairs:
    return [(int(a), int(b)) for a, b in pairs]


def available_datasets() -> list[str]:
    return available("datasets", "get_dataset")


def keypoint_info(cfg) -> KeypointInfo:
    """The keypoint metadata of ``DATASET.DATASET`` (its module's
    ``keypoint_info(cfg)``; none for a module without one), with
    ``DATASET.FLIP_PAIRS`` overriding the flip pairs."""
    module = resolve("datasets", cfg.DATASET.DATASET, "get_dataset", "DATASET.DATASET")
    info = module.keypoint_info(cfg) if hasattr(module, "keypoint_info") else KeypointInfo()
    info = replace(info, flip_pairs=as_pairs(cfg.DATASET.FLIP_PAIRS or info.flip_pairs),
                   skeleton=as_pairs(info.skeleton))
    return info


def build_dataset(cfg, image_set: str, is_train: bool, codec):
    """``DATASET.DATASET``'s ``get_dataset``; a training set is the mix of
    ``DATASET.MIX`` when that is set (``datasets/mixed.py``)."""
    if is_train and cfg.DATASET.MIX:
        from .mixed import build_mix
        return build_mix(cfg, image_set, is_train, codec)
    module = resolve("datasets", cfg.DATASET.DATASET, "get_dataset", "DATASET.DATASET")
    dataset = module.get_dataset(cfg, image_set, is_train, codec)
    if cfg.DATASET.UINT8_INPUTS and not getattr(dataset, "uint8_inputs", False):
        raise ValueError(f"DATASET.UINT8_INPUTS True: dataset {cfg.DATASET.DATASET} makes its inputs itself "
                         f"(not uint8 crops); set DATASET.UINT8_INPUTS False")
    return dataset
