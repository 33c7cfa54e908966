"""The training loop's extension point (core/strategy.py): the default
strategy, choosing one by TRAIN.STRATEGY, and a custom strategy driven by
train_one_epoch (its loader, its loss, its extra parameters)."""
from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import TrainContext, train_one_epoch
from posezoo.core.strategy import SupervisedStrategy, build_strategy, stage_loss
from posezoo.core.loss import JointsMSELoss
from posezoo.utils.registry import UnknownComponentError
from posezoo.utils.utils import build_optimizer

K = 17


def batches(n: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(2, 3, 8, 8, generator=g), torch.rand(2, K, 8, 8, generator=g), torch.ones(2, K, 1),
             {"valid": torch.ones(2)}) for _ in range(n)]


class Shifted(SupervisedStrategy):
    """The supervised loss plus a trainable offset, over the first batch only."""

    def __init__(self):
        self.offset = nn.Parameter(torch.tensor(1.0))
        self.epochs = []

    def before_epoch(self, ctx, epoch, loader):
        self.epochs.append(epoch)
        return loader[:1]

    def step(self, ctx, batch):
        return super().step(ctx, batch) + self.offset ** 2

    def extra_parameters(self):
        return [self.offset]


def test_supervised_is_the_default_and_unknown_names_fail_in_one_line():
    cfg = load_config(None)
    assert cfg.TRAIN.STRATEGY == "supervised" and isinstance(build_strategy(cfg), SupervisedStrategy)
    with pytest.raises(UnknownComponentError, match="TRAIN.STRATEGY = nope is not a posezoo strategy; available: "
                                                    ".*supervised"):
        build_strategy(load_config(None, ["TRAIN.STRATEGY", "nope"]))


def test_a_dotted_strategy_module(tmp_path, monkeypatch):
    (tmp_path / "zz_strategies").mkdir()
    (tmp_path / "zz_strategies" / "__init__.py").write_text("")
    (tmp_path / "zz_strategies" / "mine.py").write_text(
        "from posezoo.core.strategy import SupervisedStrategy\n"
        "class Mine(SupervisedStrategy):\n    pass\n"
        "def get_strategy(cfg):\n    return Mine()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        strategy = build_strategy(load_config(None, ["TRAIN.STRATEGY", "zz_strategies.mine"]))
        assert type(strategy).__name__ == "Mine"
    finally:
        for name in ("zz_strategies", "zz_strategies.mine"):
            sys.modules.pop(name, None)


def test_train_one_epoch_runs_the_strategy():
    cfg = load_config(None, ["PRINT_FREQ", "1000"])
    torch.manual_seed(0)
    model = nn.Conv2d(3, K, 1)
    strategy = Shifted()
    optimizer = build_optimizer(cfg, model, strategy.extra_parameters())
    ctx = TrainContext(cfg, model, build_codec(cfg), JointsMSELoss(), optimizer, global_step=5, strategy=strategy)
    assert train_one_epoch(ctx, batches(3), epoch=2) == 6 == ctx.global_step  # the strategy's one batch
    assert strategy.epochs == [2]
    # Adam's first step moves every parameter with a gradient by lr: the extra one is optimised too
    assert strategy.offset.item() == pytest.approx(1.0 - cfg.TRAIN.LR, abs=1e-7)


def test_supervised_step_equals_the_plain_step():
    """The default strategy inside the loop gives the textbook update."""
    cfg = load_config(None, ["PRINT_FREQ", "1000", "TRAIN.OPTIMIZER", "sgd", "TRAIN.LR", "0.1"])
    torch.manual_seed(0)
    model = nn.Conv2d(3, K, 1)
    plain = nn.Conv2d(3, K, 1)
    plain.load_state_dict(model.state_dict())
    data = batches(2)
    ctx = TrainContext(cfg, model, build_codec(cfg), JointsMSELoss(), build_optimizer(cfg, model))
    train_one_epoch(ctx, data, epoch=0)
    optimizer = build_optimizer(cfg, plain)
    for inputs, target, weight, _ in data:
        loss = JointsMSELoss()(plain(inputs), target, weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.equal(model.weight, plain.weight) and torch.equal(model.bias, plain.bias)


def test_stage_loss_pairs_stages_with_per_stage_targets():
    criterion = JointsMSELoss()
    outputs = [torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)]
    targets = [torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)]
    weight = torch.ones(2, 3, 1)
    paired = criterion(outputs[0], targets[0], weight) + criterion(outputs[1], targets[1], weight)
    assert torch.equal(stage_loss(criterion, outputs, targets, weight), paired)
    shared = criterion(outputs[0], targets[0], weight) + criterion(outputs[1], targets[0], weight)
    assert torch.equal(stage_loss(criterion, outputs, targets[0], weight), shared)
    with pytest.raises(ValueError, match="2 stage outputs but 1 stage targets"):
        stage_loss(criterion, outputs, targets[:1], weight)
