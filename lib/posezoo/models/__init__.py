"""Models by name: ``MODEL.NAME`` is a module here (or a dotted import path)
exposing ``get_pose_net(cfg, is_train)``."""
from __future__ import annotations

from torch import nn

from ..utils.registry import available, resolve
from .checkpoint import CheckpointError, load_checkpoint, load_pretrained_backbone, read_checkpoint

__all__ = ["build_model", "load_checkpoint", "load_pretrained_backbone", "read_checkpoint",
           "CheckpointError", "available_models"]


def available_models() -> list[str]:
    return available("models", "get_pose_net")


def build_model(cfg, is_train: bool = False) -> nn.Module:
    """The model named by ``cfg.MODEL.NAME``; ImageNet init when training with
    ``MODEL.INIT_WEIGHTS`` (the model's own ``get_pose_net`` decides how)."""
    module = resolve("models", cfg.MODEL.NAME, "get_pose_net", "MODEL.NAME")
    return module.get_pose_net(cfg, is_train)
