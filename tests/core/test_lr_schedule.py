"""TRAIN.LR_SCHEDULER (core/schedule.py): MSPN/RSN's per-iteration warmup and
linear decay against the official scheduler, stepped by the training loop."""
import glob
import os

import pytest
import torch
from torch import nn

from conftest import ROOT
from posezoo.config import load_config, update_config
from posezoo.core.function import TrainContext, _optimizer_step
from posezoo.core.schedule import build_scheduler, steps_per_iteration
from posezoo.utils.utils import build_optimizer

# megvii-detection/MSPN lib/utils/solver.py make_optimizer(num_gpu=8) + make_lr_scheduler with
# SOLVER.BASE_LR 5e-4, WARMUP_ITERS 4, WARMUP_FACTOR 0.1, MAX_ITER 12, run under the official
# train.py order (scheduler.step() before each iteration): the lr of iterations 1..12.
OFFICIAL_LRS = [0.0013000000000000002, 0.0022, 0.0031000000000000003, 0.004, 0.0035, 0.003, 0.0025, 0.002,
                0.0015, 0.001, 0.0005, 0.0]

WARMUP = ["TRAIN.LR_SCHEDULER", "warmup_linear", "TRAIN.WARMUP_ITERS", "4", "TRAIN.WARMUP_FACTOR", "0.1",
          "TRAIN.LR", "0.004", "TRAIN.OPTIMIZER", "adam", "TRAIN.WD", "1.0e-5", "TRAIN.ADAM_WEIGHT_DECAY", "True"]


def _cfg(opts):
    return load_config(None, opts)


def test_warmup_linear_equals_the_official_scheduler_step_by_step():
    model = nn.Linear(2, 1)
    cfg = _cfg(WARMUP + ["TRAIN.MAX_ITER", "12"])
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, iters_per_epoch=5)
    ctx = TrainContext(cfg, model, None, optimizer=optimizer, iteration_scheduler=scheduler)
    seen = []
    for _ in OFFICIAL_LRS:  # the training loop's own step
        seen.append(optimizer.param_groups[0]["lr"])
        _optimizer_step(ctx, model(torch.ones(1, 2)).sum())
    assert seen == pytest.approx(OFFICIAL_LRS, rel=1e-12, abs=1e-15)
    # the official Adam: betas, eps and weight decay as make_optimizer builds them
    group = optimizer.param_groups[0]
    assert (group["betas"], group["eps"], group["weight_decay"]) == ((0.9, 0.999), 1e-8, 1e-5)
    assert steps_per_iteration(cfg)


def test_max_iter_defaults_to_the_epochs_times_the_loader_and_resumes():
    cfg = _cfg(WARMUP + ["TRAIN.END_EPOCH", "3"])  # 3 epochs x 4 iterations = the official MAX_ITER 12
    model = nn.Linear(2, 1)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer, iters_per_epoch=4)
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh = build_scheduler(cfg, build_optimizer(cfg, model), iters_per_epoch=4)
    fresh.load_state_dict(state)
    assert fresh.get_last_lr()[0] == pytest.approx(OFFICIAL_LRS[6])


def test_multistep_default_is_per_epoch():
    cfg = _cfg(["TRAIN.LR", "0.01", "TRAIN.LR_STEP", "[2]", "TRAIN.LR_FACTOR", "0.5"])
    optimizer = build_optimizer(cfg, nn.Linear(2, 1))
    scheduler = build_scheduler(cfg, optimizer, iters_per_epoch=7)
    assert not steps_per_iteration(cfg)
    for _ in range(2):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.005)


@pytest.mark.parametrize("opts, message", [
    (["TRAIN.LR_SCHEDULER", "cosine"], "expected one of multistep, warmup_linear"),
    (WARMUP + ["TRAIN.MAX_ITER", "4"], "must be >= 0 and below the total iterations 4"),
    (WARMUP + ["TRAIN.MAX_ITER", "12", "TRAIN.WARMUP_FACTOR", "1.5"], "TRAIN.WARMUP_FACTOR = 1.5"),
])
def test_bad_schedule_is_one_clear_error(opts, message):
    cfg = _cfg(opts)
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        build_scheduler(cfg, build_optimizer(cfg, nn.Linear(2, 1)), iters_per_epoch=3)


def test_official_mspn_rsn_yamls_set_the_official_solver():
    paths = sorted(glob.glob(os.path.join(ROOT, "experiments/coco/mspn/*.yaml"))
                   + glob.glob(os.path.join(ROOT, "experiments/coco/rsn/*.yaml"))
                   + glob.glob(os.path.join(ROOT, "experiments/mpii/mspn/*.yaml")))
    assert len(paths) == 14
    for path in paths:
        t = load_config(path).TRAIN
        max_iter = 28800 if "/mpii/" in path else 96000  # exps/*.mpii and *.coco config.py SOLVER.MAX_ITER
        assert (t.LR_SCHEDULER, t.WARMUP_ITERS, t.WARMUP_FACTOR, t.MAX_ITER) == ("warmup_linear", 2400, 0.1,
                                                                                  max_iter), path
        # BASE_LR 5e-4 x 8 GPUs, Adam with its L2 weight decay 1e-5, 32 crops per GPU
        assert (t.LR, t.OPTIMIZER, t.WD, t.ADAM_WEIGHT_DECAY, t.BATCH_SIZE_PER_GPU) == (0.004, "adam", 1e-5, True,
                                                                                        32), path
        assert len(load_config(path).GPUS) == 8, path


def test_update_config_keeps_the_schedule_keys_typed():
    cfg = update_config(_cfg([]), ["TRAIN.WARMUP_ITERS", "2400", "TRAIN.MAX_ITER", "96000"])
    assert (cfg.TRAIN.WARMUP_ITERS, cfg.TRAIN.MAX_ITER, cfg.TRAIN.LR_SCHEDULER) == (2400, 96000, "multistep")
