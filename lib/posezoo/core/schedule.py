"""Learning-rate schedules built from the config (``TRAIN.LR_SCHEDULER``).

- ``multistep`` (default): x ``TRAIN.LR_FACTOR`` at the epochs in
  ``TRAIN.LR_STEP``, stepped once per epoch (SimpleBaseline/HRNet).
- ``warmup_linear``: MSPN/RSN's per-iteration schedule (megvii-detection/MSPN
  ``lib/utils/solver.py:22-31`` ``make_lr_scheduler``, identical in
  caiyuanhao1998/RSN): the factor rises linearly from ``TRAIN.WARMUP_FACTOR`` to
  1 over ``TRAIN.WARMUP_ITERS`` iterations, then falls linearly to 0 at
  ``TRAIN.MAX_ITER`` (0: ``TRAIN.END_EPOCH`` x iterations per epoch). The
  official loop calls ``scheduler.step()`` before each iteration's forward
  (``exps/*/train.py``), so iteration i (1-based) trains with ``factor(i)``;
  here the scheduler is stepped after each optimizer step with ``factor(j + 1)``
  for the 0-based step j, the same sequence. Beyond MAX_ITER the factor stays 0
  (the official loop stops there). The official ``SOLVER.GAMMA`` and
  ``WARMUP_METHOD`` are never read by that scheduler, so they have no key here.
"""
from __future__ import annotations

import torch

SCHEDULERS = ("multistep", "warmup_linear")


def warmup_linear_factor(iteration: int, warmup_iters: int, warmup_factor: float, max_iter: int) -> float:
    """The official ``lr_lambda`` of ``make_lr_scheduler`` at 1-based `iteration`,
    floored at 0."""
    if iteration < warmup_iters:
        return warmup_factor + (1 - warmup_factor) * iteration / warmup_iters
    return max(0.0, 1 - (iteration - warmup_iters) / (max_iter - warmup_iters))


def steps_per_iteration(cfg) -> bool:
    """Whether the run's scheduler is stepped after every optimizer step (True)
    or once per epoch."""
    return _name(cfg) == "warmup_linear"


def _name(cfg) -> str:
    name = str(cfg.TRAIN.LR_SCHEDULER).lower()
    if name not in SCHEDULERS:
        raise ValueError(f"TRAIN.LR_SCHEDULER = {cfg.TRAIN.LR_SCHEDULER!r}: expected one of {', '.join(SCHEDULERS)}")
    return name


def build_scheduler(cfg, optimizer: torch.optim.Optimizer, iters_per_epoch: int
                    ) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler of ``TRAIN.LR_SCHEDULER`` on `optimizer`; `iters_per_epoch`
    (the training loader's length) sets the default ``TRAIN.MAX_ITER``."""
    if _name(cfg) == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.TRAIN.LR_STEP, cfg.TRAIN.LR_FACTOR)
    warmup, factor = int(cfg.TRAIN.WARMUP_ITERS), float(cfg.TRAIN.WARMUP_FACTOR)
    max_iter = int(cfg.TRAIN.MAX_ITER) or int(cfg.TRAIN.END_EPOCH) * int(iters_per_epoch)
    if warmup < 0 or max_iter <= warmup:
        raise ValueError(f"TRAIN.LR_SCHEDULER warmup_linear: TRAIN.WARMUP_ITERS = {warmup} must be >= 0 and below "
                         f"the total iterations {max_iter} (TRAIN.MAX_ITER, or TRAIN.END_EPOCH x {iters_per_epoch} "
                         f"iterations per epoch when it is 0)")
    if not 0 <= factor <= 1:
        raise ValueError(f"TRAIN.WARMUP_FACTOR = {factor}: expected a value in [0, 1]")

    def lr_lambda(step: int) -> float:
        return warmup_linear_factor(step + 1, warmup, factor, max_iter)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
