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

Optionally, ``state_dict() -> dict`` and ``load_state_dict(state)``: what the
strategy learns (the discriminator's weights) travels in ``checkpoint.pth``
under ``"strategy"``, so a resumed run continues with it (``strategy_state`` /
``restore_strategy``; a strategy without them has no state to keep); and
``to(device)``, which ``build_strategy(cfg, device)`` calls so that what the
strategy trains sits on the run's device before the optimizer (and a resumed
optimizer's moments) refer to it.

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

from ..utils.registry import UnknownComponentError, build_from_table

ADAPTATION_MODULE = "posezoo.core.adaptation"


def stage_loss(criterion: nn.Module, outputs: Any, target: Any, target_weight: torch.Tensor) -> torch.Tensor:
    """The criterion at every stage of a multi-stage model (a list of outputs),
    summed: intermediate supervision. A list target pairs stage i with entry i
    (one target per stage); any other target supervises every stage. A
    criterion with ``all_stages = True`` (CornerNet's, whose official loss
    averages over the stacks; the Megvii loss, weighted per output) gets the whole list instead."""
    if not isinstance(outputs, (list, tuple)) or getattr(criterion, "all_stages", False):
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

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, but the checkpoint has {sorted(state)}")

    def to(self, device: torch.device) -> "SupervisedStrategy":
        return self


def strategy_state(strategy) -> dict:
    """What ``checkpoint.pth`` keeps of the strategy (module docstring)."""
    return strategy.state_dict() if hasattr(strategy, "state_dict") else {}


def restore_strategy(strategy, state: dict) -> None:
    """Give a resumed strategy back what it learned; a checkpoint from a run
    with another strategy is refused in one line rather than half-loaded."""
    if hasattr(strategy, "load_state_dict"):
        strategy.load_state_dict(state)
    elif state:
        raise ValueError(f"the checkpoint carries strategy state {sorted(state)}, "
                         f"but {type(strategy).__name__} has no load_state_dict")


STRATEGIES = {"supervised": lambda cfg: SupervisedStrategy()}


def build_strategy(cfg, device: torch.device | None = None):
    """The strategy ``TRAIN.STRATEGY`` names (module docstring), moved to
    ``device`` when given and the strategy has ``to``."""
    strategy = _strategy_by_name(cfg)
    if device is not None and hasattr(strategy, "to"):
        strategy = strategy.to(device)
    return strategy


def _strategy_by_name(cfg):
    name = cfg.TRAIN.STRATEGY
    strategy = build_from_table(STRATEGIES, name, "TRAIN.STRATEGY", "get_strategy", cfg)
    if strategy is not None:
        return strategy
    known = dict(STRATEGIES)
    if importlib.util.find_spec(ADAPTATION_MODULE) is not None:
        known.update(getattr(importlib.import_module(ADAPTATION_MODULE), "STRATEGIES", {}))
    if name not in known:
        raise UnknownComponentError(f"TRAIN.STRATEGY = {name} is not a posezoo strategy; "
                                    f"available: {', '.join(sorted(known))}")
    return known[name](cfg)
