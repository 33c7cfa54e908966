"""JointsMSELoss / OHKM: equal to the official per-joint loops; selection by config."""
import pytest
import torch
from torch import nn

from posezoo.config import load_config
from posezoo.codecs.gaussian import heatmap_accuracy
from posezoo.core.loss import JointsMSELoss, JointsOHKMMSELoss, build_loss
from posezoo.utils.registry import UnknownComponentError


def official_mse(output, target, weight, use_target_weight=True):
    criterion = nn.MSELoss(reduction="mean")
    n, k = output.shape[:2]
    pred, gt = output.reshape(n, k, -1).split(1, 1), target.reshape(n, k, -1).split(1, 1)
    loss = 0
    for j in range(k):
        p, g = pred[j].squeeze(), gt[j].squeeze()
        if use_target_weight:
            loss = loss + 0.5 * criterion(p.mul(weight[:, j]), g.mul(weight[:, j]))
        else:
            loss = loss + 0.5 * criterion(p, g)
    return loss / k


def official_ohkm(output, target, weight, topk):
    criterion = nn.MSELoss(reduction="none")
    n, k = output.shape[:2]
    pred, gt = output.reshape(n, k, -1).split(1, 1), target.reshape(n, k, -1).split(1, 1)
    per = torch.cat([(0.5 * criterion(pred[j].squeeze().mul(weight[:, j]),
                                      gt[j].squeeze().mul(weight[:, j]))).mean(dim=1, keepdim=True)
                     for j in range(k)], dim=1)
    total = 0
    for i in range(n):
        _, idx = torch.topk(per[i], k=topk, dim=0, sorted=False)
        total = total + torch.gather(per[i], 0, idx).sum() / topk
    return total / n


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(4, 17, 16, 12, generator=g), torch.rand(4, 17, 16, 12, generator=g),
            (torch.rand(4, 17, 1, generator=g) > 0.3).float())


def test_mse_equals_official(batch):
    out, tgt, w = batch
    assert torch.allclose(JointsMSELoss(True)(out, tgt, w), official_mse(out, tgt, w), rtol=1e-6)
    assert torch.allclose(JointsMSELoss(False)(out, tgt, w), official_mse(out, tgt, w, False), rtol=1e-6)


def test_ohkm_equals_official(batch):
    out, tgt, w = batch
    assert torch.allclose(JointsOHKMMSELoss(True, 8)(out, tgt, w), official_ohkm(out, tgt, w, 8), rtol=1e-6)


def test_loss_selection_by_config():
    assert isinstance(build_loss(load_config(None)), JointsMSELoss)
    ohkm = build_loss(load_config(None, ["LOSS.USE_OHKM", "True", "LOSS.TOPK", "6"]))
    assert isinstance(ohkm, JointsOHKMMSELoss) and ohkm.topk == 6
    with pytest.raises(UnknownComponentError, match="JointsMSELoss"):
        build_loss(load_config(None, ["LOSS.NAME", "NoSuchLoss"]))


def test_heatmap_accuracy_counts_hits():
    target = torch.zeros(2, 3, 16, 16)
    output = torch.zeros(2, 3, 16, 16)
    target[:, 0, 5, 5] = 1
    output[:, 0, 5, 5] = 1  # hit
    target[:, 1, 8, 8] = 1
    output[:, 1, 2, 14] = 1  # miss
    # joint 2 unlabelled (all-zero target) -> -1, excluded
    per_joint, avg, cnt = heatmap_accuracy(output, target)
    assert per_joint.tolist() == [1.0, 0.0, -1.0] and avg == pytest.approx(0.5) and cnt == 2


def test_optimizers_follow_the_config():
    from posezoo.utils.utils import build_optimizer

    model = nn.Linear(3, 2)
    adam = build_optimizer(load_config(None, ["TRAIN.OPTIMIZER", "adam", "TRAIN.WD", "0.1"]), model)
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["weight_decay"] == 0.0  # ignored, as officially
    adam_wd = build_optimizer(load_config(None, ["TRAIN.WD", "0.1", "TRAIN.ADAM_WEIGHT_DECAY", "True"]), model)
    assert adam_wd.defaults["weight_decay"] == pytest.approx(0.1)
    sgd = build_optimizer(load_config(None, ["TRAIN.OPTIMIZER", "sgd", "TRAIN.MOMENTUM", "0.8"]), model)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == pytest.approx(0.8)
    rms = build_optimizer(load_config(None, ["TRAIN.OPTIMIZER", "rmsprop", "TRAIN.MOMENTUM", "0.0",
                                             "TRAIN.WD", "0.0", "TRAIN.LR", "2.5e-4"]), model)
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["lr"] == pytest.approx(2.5e-4)
    with pytest.raises(ValueError, match="rmsprop"):
        build_optimizer(load_config(None, ["TRAIN.OPTIMIZER", "lamb"]), model)


def test_weight_decay_on_weights_only_leaves_norms_and_biases_alone():
    """TRAIN.WD_WEIGHTS_ONLY (tf-cpn's slim regulariser): after one Adam step on a zero loss,
    only conv weights moved (decay is their only gradient); BN and bias are untouched."""
    from posezoo.utils.utils import build_optimizer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, bias=True), nn.BatchNorm2d(3))
    nn.init.uniform_(model[1].weight, 0.5, 1.5)
    nn.init.uniform_(model[1].bias, -1, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = load_config(None, ["TRAIN.WD", "0.1", "TRAIN.ADAM_WEIGHT_DECAY", "True", "TRAIN.WD_WEIGHTS_ONLY", "True"])
    optimizer = build_optimizer(cfg, model)
    (0 * model(torch.randn(1, 2, 5, 5)).sum()).backward()
    optimizer.step()
    after = model.state_dict()
    assert not torch.equal(after["0.weight"], before["0.weight"])
    for key in ("0.bias", "1.weight", "1.bias"):
        assert torch.equal(after[key], before[key]), key
