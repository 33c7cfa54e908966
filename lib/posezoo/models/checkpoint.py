"""Loading weights: official checkpoints unchanged, with loud failures.

The official tools load with ``strict=False``, which silently loads nothing from a
``module.``-prefixed file and silently keeps a random head when NUM_JOINTS differs.
Here every mismatch is an error that lists what did not match.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from collections import OrderedDict
from typing import Iterable, Mapping, Union

import torch
from torch import nn

logger = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")
# DataParallel/DDP, and princeton's hourglass Trainer around DataParallel
WRAPPER_PREFIXES = ("model.module.", "module.")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


def read_checkpoint(path: str) -> dict:
    """``torch.load(path, weights_only=True)`` on CPU, with a one-line error."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
        refused = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)", text)
        if refused:
            raise CheckpointError(f"refusing {path}: it holds the Python object {refused.group(1)}, not only tensors "
                                  f"(loaded with weights_only=True); load it with torch.load(..., "
                                  f"weights_only=False) yourself only if you trust its source") from None
        if "Weights only load failed" in text:
            raise CheckpointError(f"refusing {path}: it holds Python objects besides tensors (loaded with "
                                  f"weights_only=True)") from None
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch file or corrupt") from None
    except Exception as err:  # truncated zip archives and I/O errors come in many types
        raise CheckpointError(f"cannot read checkpoint {path}: truncated or not a PyTorch file "
                              f"({type(err).__name__})") from None


def unwrap_state_dict(obj: Mapping, source: str = "checkpoint") -> "OrderedDict[str, torch.Tensor]":
    """The bare state dict inside `obj`: accepts a bare dict, ``{'state_dict': ...}``,
    ``{'model': ...}``, DataParallel/DDP ``module.`` prefixes and the
    ``model.module.`` prefix of princeton's hourglass checkpoints."""
    for key in WRAPPER_KEYS:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source} holds no state dict (expected tensors by name, "
                              f"or one under {', '.join(WRAPPER_KEYS)})")
    for prefix in WRAPPER_PREFIXES:
        if obj and all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
            break
    return OrderedDict(obj)


# mmpose 1.x's own upgrade of 0.x files (BasePoseEstimator._load_state_dict_pre_hook,
# mmpose/models/pose_estimators/base.py:213-245): 'keypoint_head' became 'head', and
# the data preprocessor's mean/std buffers are not weights.
MMPOSE_0X_HEAD, MMPOSE_HEAD = "keypoint_head.", "head."
MMPOSE_PREPROCESSOR_KEYS = ("data_preprocessor.mean", "data_preprocessor.std")


def mmpose_upgrade(state: StateDict, own: Iterable[str]) -> "OrderedDict[str, torch.Tensor]":
    """An mmpose-0.x state dict in mmpose 1.x's names, as mmpose 1.x itself
    loads it (``base.py:213-245``): for a model with a ``head.`` and no
    ``keypoint_head.`` (``MODEL.EXTRA.LAYOUT mmpose``), ``keypoint_head.*`` keys
    become ``head.*`` and ``data_preprocessor.mean/std`` are dropped. Any other
    model or state dict comes back unchanged."""
    own = list(own)
    if not any(k.startswith(MMPOSE_HEAD) for k in own) or any(k.startswith(MMPOSE_0X_HEAD) for k in own):
        return OrderedDict(state)
    return OrderedDict((MMPOSE_HEAD + k[len(MMPOSE_0X_HEAD):] if k.startswith(MMPOSE_0X_HEAD) else k, v)
                       for k, v in state.items() if k not in MMPOSE_PREPROCESSOR_KEYS)


def _layout_hint(own: Iterable[str], state: StateDict) -> str:
    """What to set when the file is the other layout of the same net: mmpose's
    trees put the net under ``backbone.`` (and its head under ``head.`` /
    ``keypoint_head.``), the official ones do not."""
    own_mm = any(k.startswith("backbone.") for k in own)
    file_mm = any(k.startswith("backbone.") for k in state)
    if file_mm and not own_mm:
        return "it is in mmpose's layout (backbone.*, head.*): set MODEL.EXTRA.LAYOUT mmpose"
    if own_mm and not file_mm:
        return "it is not in mmpose's layout (no backbone.* keys): set MODEL.EXTRA.LAYOUT official"
    return "is it a checkpoint for another architecture or config?"


def _mismatch_report(model: nn.Module, state: StateDict, ignore: Iterable[str] = ()) -> tuple[list, list, list]:
    own = model.state_dict()
    ignore = tuple(ignore)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(ignore)]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    return missing, unexpected, shapes


def _summary(names: list, limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_checkpoint(model: nn.Module, path: Union[str, Mapping], strict: bool = True) -> nn.Module:
    """Load a checkpoint file (or an in-memory state dict) into `model`.
    mmpose-0.x files are read in mmpose 1.x's names first (:func:`mmpose_upgrade`).

    With ``strict=True`` every key and shape must match; otherwise the error lists
    the missing and unexpected keys and the shape differences. With ``strict=False``
    missing/unexpected keys are logged, but shape differences are still an error.
    """
    source = path if isinstance(path, str) else "state dict"
    obj = read_checkpoint(path) if isinstance(path, str) else path
    state = mmpose_upgrade(unwrap_state_dict(obj, source), model.state_dict())
    missing, unexpected, shapes = _mismatch_report(model, state)
    # Files saved before PyTorch 0.4.1 lack BatchNorm's step counter; it is unused.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    name = type(model).__name__
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys: {_summary(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys: {_summary(unexpected)}")
        if shapes:
            parts.append(f"shape differs for {_summary(shapes, 3)}")
        raise CheckpointError(f"{source} does not fit {name} ({'; '.join(parts)}); "
                              f"{_layout_hint(model.state_dict(), state)}")
    if missing or unexpected:
        logger.warning("%s: %d keys missing, %d unexpected (strict=False)", source, len(missing), len(unexpected))
    model.load_state_dict(state, strict=False)  # everything was checked above
    return model


def load_pretrained_backbone(model: nn.Module, path: str, ignore_prefixes: Iterable[str] = ("fc.",)) -> list[str]:
    """ImageNet initialisation: load the matching keys of a classification
    checkpoint, ignoring `ignore_prefixes` (the classifier). Returns the loaded keys.
    Fails if the file matches nothing or a matching key has another shape."""
    state = unwrap_state_dict(read_checkpoint(path), path)
    missing, unexpected, shapes = _mismatch_report(model, state, ignore_prefixes)
    if shapes:
        raise CheckpointError(f"pretrained file {path} does not fit {type(model).__name__}: {_summary(shapes, 3)}")
    if unexpected:
        raise CheckpointError(f"pretrained file {path} has keys the model lacks: {_summary(unexpected)}")
    loaded = [k for k in state if k in model.state_dict()]
    if not loaded:
        raise CheckpointError(f"pretrained file {path} shares no key with {type(model).__name__}")
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    logger.info("=> loaded %d tensors from %s (%d model keys left at their init)", len(loaded), path, len(missing))
    return loaded
