"""The training loop's one extension point: how a batch becomes a loss.

``train_one_epoch`` (``core/function.py``) owns everything every run shares:
the finite-loss check, backward and the optimizer step (through the fp16
GradScaler), the loss and metric logs, debug images. What differs between ways
of training lives in a strategy chosen by ``TRAIN.STRATEGY``
(``build_strategy``). A strategy is any object with these three methods:

- ``before_epoch(ctx, epoch, loader) -> loader``: the loader the epoch
  iterates (the default returns `loader`; a pseudo-label round re-labels and
  returns another one). Called once per epoch, before the first step.
- ``step(ctx, batch) -> torch.Tensor``: the scalar loss of one batch, with its
  graph; the loop checks it is finite, backpropagates and steps. A loader item
  that is the datasets' ``(inputs, target, target_weight, meta)`` arrives as the
  dict ``{"inputs", "target", "target_weight", "meta"}`` with the first three
  on ``ctx.device`` (``meta`` stays on the CPU); any other item arrives as the
  loader yields it. The step may store the model's output for
  ``batch["inputs"]`` under ``batch["outputs"]``: the loop then logs
  ``ctx.codec.train_metrics`` on it and draws the debug images.
- ``extra_parameters() -> list[nn.Parameter]``: parameters the strategy trains
  besides the model's (a domain discriminator's); the optimizer gets them too.

``ctx`` is the run's ``core.function.TrainContext`` (cfg, model, codec,
criterion, optimizer, device, ...). ``supervised`` (the default) is one loss
on labelled crops; ``core/adaptation.py`` adds the domain-adaptation strategies
(its ``STRATEGIES`` table); a dotted ``TRAIN.STRATEGY`` names a user's module
exposing ``get_strategy(cfg)``.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import torch
from torch import nn

from ..utils.registry import UnknownComponentError, import_dotted

ADAPTATION_MODULE = "posezoo.core.adaptation"


def stage_loss(criterion: nn.Module, outputs: Any, target: Any, target_weight: torch.Tensor) -> torch.Tensor:
    """The criterion at every stage of a multi-stage model (a list of outputs),
    summed: intermediate supervision. A list target pairs stage i with entry i
    (one target per stage); any other target supervises every stage."""
    if not isinstance(outputs, (list, tuple)):
        return criterion(outputs, target, target_weight)
    if isinstance(target, (list, tuple)):
        if len(target) != len(outputs):
            raise ValueError(f"{len(outputs)} stage outputs but {len(target)} stage targets")
        return sum(criterion(o, t, target_weight) for o, t in zip(outputs, target))
    return sum(criterion(o, target, target_weight) for o in outputs)


class SupervisedStrategy:
    """One loss on labelled crops: the model's output against the codec's
    target at every stage (``stage_loss``), as the official training loops do."""

    def before_epoch(self, ctx, epoch: int, loader):
        return loader

    def step(self, ctx, batch: dict) -> torch.Tensor:
        batch["outputs"] = ctx.forward(batch["inputs"])
        return stage_loss(ctx.criterion, batch["outputs"], batch["target"], batch["target_weight"])

    def extra_parameters(self) -> list[nn.Parameter]:
        return []


STRATEGIES = {"supervised": lambda cfg: SupervisedStrategy()}


def build_strategy(cfg):
    """The strategy ``TRAIN.STRATEGY`` names (module docstring)."""
    name = cfg.TRAIN.STRATEGY
    if name in STRATEGIES:
        return STRATEGIES[name](cfg)
    if "." in name:
        module = import_dotted(name, "TRAIN.STRATEGY")
        if not hasattr(module, "get_strategy"):
            raise UnknownComponentError(f"TRAIN.STRATEGY = {name}: module has no get_strategy(cfg)")
        return module.get_strategy(cfg)
    known = dict(STRATEGIES)
    if importlib.util.find_spec(ADAPTATION_MODULE) is not None:
        known.update(getattr(importlib.import_module(ADAPTATION_MODULE), "STRATEGIES", {}))
    if name not in known:
        raise UnknownComponentError(f"TRAIN.STRATEGY = {name} is not a posezoo strategy; "
                                    f"available: {', '.join(sorted(known))}")
    return known[name](cfg)
