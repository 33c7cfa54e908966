"""Datasets by name: ``DATASET.DATASET`` is a module here (or a dotted import
path) exposing ``get_dataset(cfg, image_set, is_train, codec)``."""
from __future__ import annotations

from ..utils.registry import available, resolve

__all__ = ["build_dataset", "available_datasets"]


def available_datasets() -> list[str]:
    return available("datasets", "get_dataset")


def build_dataset(cfg, image_set: str, is_train: bool, codec):
    module = resolve("datasets", cfg.DATASET.DATASET, "get_dataset", "DATASET.DATASET")
    return module.get_dataset(cfg, image_set, is_train, codec)
