"""MODEL.FOLD_BN: eval BatchNorms folded into the convolution feeding them give
the unfolded output to 1e-5 (PoseResNet with its deconv head, HRNet, LPN's
depthwise convs), and nothing else is folded."""
import json

import pytest
import torch
from torch import nn

from conftest import TINY_MODEL, deterministic_state
from posezoo.config import load_config
from posezoo.models import build_model
from posezoo.utils.fold_bn import conv_bn_pairs, fold_batchnorm, prepare_eval_model

HRNET_TINY = {"PRETRAINED_LAYERS": ["*"], "FINAL_CONV_KERNEL": 1,
              "STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1],
                         "NUM_CHANNELS": [8, 16], "FUSE_METHOD": "SUM"},
              "STAGE3": {"NUM_MODULES": 1, "NUM_BRANCHES": 3, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1],
                         "NUM_CHANNELS": [8, 16, 32], "FUSE_METHOD": "SUM"},
              "STAGE4": {"NUM_MODULES": 1, "NUM_BRANCHES": 4, "BLOCK": "BASIC", "NUM_BLOCKS": [1, 1, 1, 1],
                         "NUM_CHANNELS": [8, 16, 32, 64], "FUSE_METHOD": "SUM"}}
CONFIGS = {
    "pose_resnet18": TINY_MODEL,
    "pose_hrnet": ["MODEL.NAME", "pose_hrnet", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
                   "MODEL.PRETRAINED", "''", "MODEL.EXTRA", json.dumps(HRNET_TINY)],
    "lpn50": ["MODEL.NAME", "lpn", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
              "MODEL.PRETRAINED", "''", "MODEL.EXTRA", json.dumps({"NUM_LAYERS": 50})],
}


def eval_model(opts):
    cfg = load_config(None, opts)
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, seed=1))
    return cfg, model.eval()


def last(out):
    return out[-1] if isinstance(out, (list, tuple)) else out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_folded_model_matches_unfolded(name):
    cfg, model = eval_model(CONFIGS[name])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = last(model(x))
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = prepare_eval_model(load_config(None, CONFIGS[name] + ["MODEL.FOLD_BN", "True"]), model, "cpu")
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    # every BatchNorm of these nets reads only its own convolution (LPN's grouped deconvolutions included)
    assert bns > 10 and left == 0
    with torch.no_grad():
        got = last(folded(x))
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5 * max(1.0, expected.abs().max().item())
    # the caller's model is untouched: still its BatchNorms and its state-dict keys
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == bns
    assert any(k.endswith("running_var") for k in model.state_dict())


def test_channels_last_after_fold_matches():
    cfg, model = eval_model(TINY_MODEL)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        fast = prepare_eval_model(load_config(None, TINY_MODEL + ["MODEL.FOLD_BN", "True", "MODEL.CHANNELS_LAST",
                                                                  "True"]), model, "cpu")
        got = fast(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


class SharedOutput(nn.Module):
    """Convolution outputs that something besides the BatchNorm reads."""

    def __init__(self):
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)  # residual reads a's output
        self.b, self.bn_b = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # b's output is changed in place first
        self.c, self.bn_c = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # the one foldable pair
        self.shared = nn.BatchNorm2d(4)  # called twice
        self.d, self.e = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        a = self.a(x)
        y = self.bn_a(a) + a
        b = self.b(y)
        b += y
        y = self.bn_b(b)
        y = self.bn_c(self.c(y))
        return self.shared(self.d(y)) + self.shared(self.e(y))


def test_only_exclusive_pairs_fold():
    torch.manual_seed(0)
    model = SharedOutput()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    model.eval()
    x = torch.randn(2, 3, 8, 8)
    assert conv_bn_pairs(model, x) == [("c", "bn_c")]
    with torch.no_grad():
        expected = model(x)
        assert fold_batchnorm(model, x) == 1
        assert isinstance(model.bn_c, nn.Identity) and isinstance(model.bn_a, nn.BatchNorm2d)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("groups", [1, 3])
def test_transposed_conv_with_bias_folds(groups):
    """ConvTranspose2d keeps output channels in its second weight dim, per group (LPN's grouped head)."""
    torch.manual_seed(groups)
    model = nn.Sequential(nn.ConvTranspose2d(6, 9, 4, stride=2, padding=1, bias=True, groups=groups),
                          nn.BatchNorm2d(9)).eval()
    model[1].running_mean.uniform_(-1, 1), model[1].running_var.uniform_(0.5, 2), model[1].bias.data.uniform_(-1, 1)
    model[1].weight.data.uniform_(0.5, 2)
    x = torch.randn(2, 6, 6, 6)
    with torch.no_grad():
        expected = model(x)
        assert fold_batchnorm(model, x) == 1 and isinstance(model[1], nn.Identity)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=0)


def test_training_model_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)), torch.zeros(1, 3, 4, 4))
