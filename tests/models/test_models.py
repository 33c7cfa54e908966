"""PoseResNet: official state-dict layout, strict loading, init, registry drop-in."""
import json
import os
import sys
import textwrap

import pytest
import torch

from conftest import synthetic_opts
from posezoo.config import ConfigError, load_config
from posezoo.models import CheckpointError, available_models, build_model, load_checkpoint
from posezoo.utils.registry import UnknownComponentError


def resnet_cfg(depth, num_joints=17, style="pytorch", **extra):
    extra_yaml = json.dumps({"NUM_LAYERS": depth, **extra})
    return load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.NUM_JOINTS", str(num_joints),
                              "MODEL.STYLE", style, "MODEL.EXTRA", extra_yaml, "MODEL.PRETRAINED", "''"])


@pytest.mark.parametrize("depth,params", [(18, 15_376_721), (50, 33_999_697), (101, 52_991_825)])
def test_parameter_counts_match_the_official_models(depth, params):
    # 50/101: the released pose_resnet_{50,101}_256x192.pth; 18: torchvision ResNet-18
    # without fc (11,176,512) + 3 deconvs 512/256/256 with BN + 1x1 head.
    model = build_model(resnet_cfg(depth))
    assert sum(p.numel() for p in model.parameters()) == params


def test_caffe_style_strides_in_the_first_conv():
    pytorch, caffe = build_model(resnet_cfg(50)), build_model(resnet_cfg(50, style="caffe"))
    block_py, block_caffe = pytorch.layer2[0], caffe.layer2[0]
    assert block_py.conv1.stride == (1, 1) and block_py.conv2.stride == (2, 2)
    assert block_caffe.conv1.stride == (2, 2) and block_caffe.conv2.stride == (1, 1)
    assert list(pytorch.state_dict()) == list(caffe.state_dict())  # same checkpoint layout


def test_deconv_head_follows_extra_and_official_init():
    cfg = load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.PRETRAINED", "''", "MODEL.EXTRA",
                             "{NUM_LAYERS: 18, NUM_DECONV_FILTERS: [64, 32], NUM_DECONV_KERNELS: [3, 2],"
                             " NUM_DECONV_LAYERS: 2, FINAL_CONV_KERNEL: 3}"])
    model = build_model(cfg, is_train=True).requires_grad_(False)  # values only
    out = model(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 17, 16, 12)  # stride 32 / 2 / 2
    assert model.final_layer.kernel_size == (3, 3) and float(model.final_layer.bias.abs().max()) == 0
    assert 0.0005 < float(model.final_layer.weight.std()) < 0.002  # N(0, 0.001)
    assert 0.0005 < float(model.deconv_layers[0].weight.std()) < 0.002


def test_imagenet_init_from_torchvision_format(tmp_path):
    """A torchvision ResNet file (fc.* included, no num_batches_tracked) initialises
    the backbone; the head keeps its own init."""
    source = build_model(resnet_cfg(18))
    state = {k: v for k, v in source.state_dict().items()
             if not k.startswith(("deconv", "final")) and "num_batches_tracked" not in k}
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    cfg = load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.PRETRAINED", str(path),
                             "MODEL.EXTRA", "{NUM_LAYERS: 18}"])
    model = build_model(cfg, is_train=True)
    assert torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert float(model.final_layer.weight.std()) < 0.002
    missing = load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.PRETRAINED", str(tmp_path / "none.pth"),
                                 "MODEL.EXTRA", "{NUM_LAYERS: 18}"])
    with pytest.raises(CheckpointError, match="none.pth"):
        build_model(missing, is_train=True)


def test_wrapped_and_prefixed_checkpoints_load(tmp_path):
    model = build_model(resnet_cfg(18)).eval()
    other = build_model(resnet_cfg(18)).eval()
    state = model.state_dict()
    x = torch.randn(1, 3, 64, 48)
    for i, obj in enumerate([state, {"state_dict": state}, {"model": state},
                             {"module." + k: v for k, v in state.items()}]):
        path = tmp_path / f"ckpt{i}.pth"
        torch.save(obj, path)
        load_checkpoint(other, str(path))
        with torch.no_grad():
            assert torch.equal(other(x), model(x))


def test_unknown_extra_field_and_unknown_model():
    cfg = load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.EXTRA", "{NUM_LAYER: 18}"])
    with pytest.raises(ConfigError, match="MODEL.EXTRA.NUM_LAYER.*did you mean MODEL.EXTRA.NUM_LAYERS"):
        build_model(cfg)
    with pytest.raises(UnknownComponentError, match="pose_resnet"):
        build_model(load_config(None, ["MODEL.NAME", "pose_resnett"]))
    assert "pose_resnet" in available_models()


DROP_IN = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, num_joints):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
            self.head = nn.Conv2d(16, num_joints, 1)

        def forward(self, x):
            return self.head(self.body(x))

    def get_pose_net(cfg, is_train):
        return TinyNet(cfg.MODEL.NUM_JOINTS)
''')


def _train_one_step(cfg):
    from torch.utils.data import DataLoader

    from posezoo.codecs import build_codec
    from posezoo.core.loss import build_loss
    from posezoo.datasets import build_dataset
    from posezoo.utils.utils import build_optimizer

    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True)
    loader = DataLoader(build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec), batch_size=4)
    inputs, target, weight, _ = next(iter(loader))
    criterion, optimizer = build_loss(cfg), build_optimizer(cfg, model)
    before = [p.detach().clone() for p in model.parameters()]
    loss = criterion(model(inputs), target, weight)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    return model


def test_drop_in_model_from_a_dotted_path(tmp_path, synthetic_root, monkeypatch):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "my_net.py").write_text(DROP_IN)
    monkeypatch.syspath_prepend(str(tmp_path))
    opts = synthetic_opts(synthetic_root, str(tmp_path / "out")) + ["MODEL.NAME", "mypkg.my_net"]
    model = _train_one_step(load_config(None, opts))
    assert type(model).__name__ == "TinyNet"


def test_drop_in_model_file_in_the_models_package(tmp_path, synthetic_root):
    import posezoo.models
    path = os.path.join(os.path.dirname(posezoo.models.__file__), "zz_test_tiny_net.py")
    with open(path, "w") as f:
        f.write(DROP_IN)
    try:
        assert "zz_test_tiny_net" in available_models()
        opts = synthetic_opts(synthetic_root, str(tmp_path / "out")) + ["MODEL.NAME", "zz_test_tiny_net"]
        assert type(_train_one_step(load_config(None, opts))).__name__ == "TinyNet"
    finally:
        os.remove(path)
        sys.modules.pop("posezoo.models.zz_test_tiny_net", None)


def test_count_flops_counts_true_macs():
    from torch import nn

    from posezoo.utils.utils import count_flops, count_parameters

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 8*3*9 per output pixel x 100 = 21,600
            self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=4)  # 8*2*9 x 100 = 14,400
            self.deconv = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)  # 4*16 per input value x 800 = 51,200
            self.fc = nn.Linear(10, 5)  # 50

        def forward(self, x):
            y = self.deconv(self.grouped(self.conv(x)))
            return self.fc(y[:, 0, 0, :10])

    net = Net()
    assert count_flops(net, (3, 10, 10)) == 21_600 + 14_400 + 51_200 + 50
    assert count_parameters(net) == sum(p.numel() for p in net.parameters())
