"""Codecs by name: ``MODEL.TARGET_TYPE`` is a module here (or a dotted import
path) exposing ``get_codec(cfg)``. A codec encodes joints into training targets,
decodes network outputs into image coordinates (batched, on the output's device,
never modifying its input) and owns its flip-test rule."""
from __future__ import annotations

from ..utils.registry import available, resolve

__all__ = ["build_codec", "available_codecs"]


def available_codecs() -> list[str]:
    return available("codecs", "get_codec")


def build_codec(cfg):
    return resolve("codecs", cfg.MODEL.TARGET_TYPE, "get_codec", "MODEL.TARGET_TYPE").get_codec(cfg)
