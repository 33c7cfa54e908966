"""LPN (Zhang et al., "Simple and Lightweight Human Pose Estimation", arXiv 2019):
official checkpoint layout, parameter counts, init semantics, grouped deconvolutions,
outputs equal to the official implementation's, FLOPs."""
import json
import math

import pytest
import torch
from torch import nn

from posezoo.config import ConfigError, load_config
from posezoo.models import CheckpointError, build_model, load_checkpoint
from posezoo.models.lpn import GCBlock, LWBottleneck
from posezoo.utils.utils import count_flops


def lpn_cfg(depth=50, num_joints=17, pretrained="''", **extra):
    return load_config(None, ["MODEL.NAME", "lpn", "MODEL.NUM_JOINTS", str(num_joints), "MODEL.PRETRAINED", pretrained,
                              "MODEL.EXTRA", json.dumps({"NUM_LAYERS": depth, **extra})])


def golden_state(model: nn.Module, seed: int = 0) -> dict:
    """A deterministic state dict for `model`'s keys, drawn from a torch.Generator
    (independent of any init code): He-scaled conv weights, norm scales in
    [0.5, 1] except each block's last BN (bn3) in [0.1, 0.3] so that 150 layers
    neither vanish nor explode, running variances in [0.5, 1.5], small biases and
    running means. The output then depends on the input (about a quarter of its
    spread), not only on the biases."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, ref in model.state_dict().items():
        shape = ref.shape
        if ref.dtype == torch.int64:
            state[name] = torch.zeros(shape, dtype=torch.int64)
        elif len(shape) == 4:
            state[name] = torch.randn(shape, generator=g) * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=g)
        elif name.endswith("bn3.weight"):
            state[name] = 0.1 + 0.2 * torch.rand(shape, generator=g)
        elif name.endswith("weight"):
            state[name] = 0.5 + 0.5 * torch.rand(shape, generator=g)
        else:
            state[name] = 0.05 * torch.randn(shape, generator=g)
    return state


def golden_input(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(seed))


# Produced by the OFFICIAL implementation: zhang943/lpn-pytorch (commit f397525),
# lib/models/lpn.py get_pose_net(cfg, is_train=False) with the official COCO EXTRA
# (GC, 2 deconvs of 256, kernel 4), loaded with golden_state(...) and run in eval
# mode on golden_input() (torch 2.13 CPU). posezoo's LPN gave bit-identical outputs
# in that run (max abs diff 0.0 for LPN-50/101/152).
# depth -> (mean, std, abs max, out[0, :4, 5, 7], out[-1, -3:, 20, 15])
OFFICIAL_OUTPUTS = {
    50: (-0.10899568349123001, 0.6867315173149109, 2.296999454498291,
         [1.2950204610824585, -0.2745065689086914, -0.62061607837677, -0.9803376197814941],
         [-0.09885941445827484, -1.0054497718811035, 0.40911585092544556]),
    101: (0.025387778878211975, 0.838689923286438, 2.8015389442443848,
          [0.19171777367591858, -0.45265865325927734, 1.891085147857666, 0.4211180508136749],
          [-0.8475565314292908, -2.236696720123291, -1.3245623111724854]),
    152: (-0.12672677636146545, 0.9314531087875366, 4.488471508026123,
          [-0.02677660621702671, -2.243035316467285, -0.030795438215136528, 0.9116908311843872],
          [0.07774429023265839, -1.0369806289672852, 0.7286720871925354]),
}


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_outputs_equal_the_official_implementation(depth):
    model = build_model(lpn_cfg(depth)).eval()
    load_checkpoint(model, golden_state(model), strict=True)
    with torch.no_grad():
        out = model(golden_input())
    mean, std, absmax, head, tail = OFFICIAL_OUTPUTS[depth]
    assert out.shape == (2, 17, 32, 24)
    tol = {"rel": 1e-4, "abs": 1e-4}  # float32 on other CPUs/BLAS builds; bit-identical where produced
    assert float(out.mean()) == pytest.approx(mean, **tol)
    assert float(out.std()) == pytest.approx(std, **tol)
    assert float(out.abs().max()) == pytest.approx(absmax, **tol)
    assert out[0, :4, 5, 7].tolist() == pytest.approx(head, **tol)
    assert out[-1, -3:, 20, 15].tolist() == pytest.approx(tail, **tol)


@pytest.mark.parametrize("depth,num_joints,params", [(50, 17, 2_911_153), (101, 17, 5_353_458),
                                                     (152, 17, 7_377_459), (50, 16, 2_910_896)])
def test_parameter_counts_match_the_released_models(depth, num_joints, params):
    # The released lpn_{50,101,152}_256x192.pth (COCO) and lpn_50_256x256.pth (MPII);
    # the paper and the official README give 2.9 M / 5.3 M / 7.4 M.
    model = build_model(lpn_cfg(depth, num_joints))
    assert sum(p.numel() for p in model.parameters()) == params


def _gc_blocks(model):
    return [m for m in model.modules() if isinstance(m, GCBlock)]


def test_gc_block_own_init_is_identity_with_layernorm():
    """Built for inference (no training init): each GC block keeps its own init, a
    zero last conv (so it starts as the identity), zero conv_mask bias, and a
    LayerNorm over (C/16 but at least 16, 1, 1) in its transform."""
    model = build_model(lpn_cfg(50))
    blocks = _gc_blocks(model)
    assert len(blocks) == 3 + 4 + 6 + 3
    for gc in blocks:
        channels = gc.conv_mask.in_channels
        first, norm, _, last = gc.channel_add_conv
        assert isinstance(norm, nn.LayerNorm) and norm.normalized_shape == (max(channels // 16, 16), 1, 1)
        assert first.out_channels == last.in_channels == norm.normalized_shape[0]
        assert not last.weight.any() and not last.bias.any() and not gc.conv_mask.bias.any()
    x = torch.randn(2, 64, 8, 6)
    with torch.no_grad():
        assert torch.equal(blocks[0](x), x)
    assert [b.channel_add_conv[1].normalized_shape[0] for b in (blocks[0], blocks[-1])] == [16, 32]


def test_training_init_is_the_official_one():
    """is_train with INIT_WEIGHTS and no PRETRAINED (every official LPN YAML): every
    Conv2d ~ N(0, 0.001) -- the GC block's last conv included, so it is no longer
    zero -- conv biases untouched, BN (1, 0), ConvTranspose ~ N(0, 0.001), LayerNorm (1, 0)."""
    torch.manual_seed(0)
    model = build_model(lpn_cfg(50), is_train=True)
    model.requires_grad_(False)  # read the values only; the backward below turns grads back on
    blocks = _gc_blocks(model)
    last_w = torch.cat([b.channel_add_conv[3].weight.flatten() for b in blocks])
    mask_w = torch.cat([b.conv_mask.weight.flatten() for b in blocks])
    assert 0.0008 < float(last_w.std()) < 0.0012 and 0.0008 < float(mask_w.std()) < 0.0012
    assert all(float(b.channel_add_conv[3].bias.abs().max()) == 0 for b in blocks)
    assert all(float(b.conv_mask.bias.abs().max()) == 0 for b in blocks)
    first_bias = torch.cat([b.channel_add_conv[0].bias for b in blocks])
    assert float(first_bias.abs().min()) > 0  # PyTorch's default uniform init is kept
    for b in blocks:
        norm = b.channel_add_conv[1]
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    convs = torch.cat([m.weight.flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert 0.0009 < float(convs.std()) < 0.0011
    deconvs = [m for m in model.deconv_layers if isinstance(m, nn.ConvTranspose2d)]
    assert all(0.0008 < float(d.weight.std()) < 0.0012 for d in deconvs)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(float((m.weight - 1).abs().max()) == 0 and float(m.bias.abs().max()) == 0 for m in bns)
    bias = model.final_layer.bias  # kept at PyTorch's default, as in the official code
    assert float(bias.abs().min()) > 0 and float(bias.abs().max()) <= 1 / math.sqrt(256)
    loss = model.requires_grad_(True).train()(torch.randn(2, 3, 64, 48)).pow(2).mean()
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_grouped_deconvolutions_use_gcd_groups():
    model = build_model(lpn_cfg(50))
    deconvs = [m for m in model.deconv_layers if isinstance(m, nn.ConvTranspose2d)]
    assert [(d.in_channels, d.out_channels, d.groups) for d in deconvs] == [(512, 256, 256), (256, 256, 256)]
    assert model.deconv_layers[0].weight.shape == (512, 1, 4, 4)
    custom = build_model(lpn_cfg(50, NUM_DECONV_LAYERS=2, NUM_DECONV_FILTERS=[192, 96], NUM_DECONV_KERNELS=[3, 2]))
    deconvs = [m for m in custom.deconv_layers if isinstance(m, nn.ConvTranspose2d)]
    assert [d.groups for d in deconvs] == [math.gcd(512, 192), math.gcd(192, 96)] == [64, 96]
    with torch.no_grad():
        out = custom.eval()(torch.zeros(1, 3, 64, 48))
    assert out.shape == (1, 17, 16, 12)  # stride 16 backbone (layer4 keeps stride 1), two x2 deconvs


def test_backbone_is_depthwise_separable_with_stride_one_last_stage():
    model = build_model(lpn_cfg(50))
    block = model.layer2[0]
    assert isinstance(block, LWBottleneck) and block.expansion == 1
    assert block.conv2.groups == block.conv2.in_channels == 128 and block.conv2.stride == (2, 2)
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].downsample[0].stride == (1, 1)


def test_attention_choices_and_extra_validation():
    se = build_model(lpn_cfg(50, ATTENTION="SE")).state_dict()
    assert se["layer4.0.att.fc.0.weight"].shape == (32, 512) and "layer4.0.att.fc.2.weight" in se
    plain = build_model(lpn_cfg(50, ATTENTION="")).state_dict()
    assert not any(".att." in k for k in plain)
    with pytest.raises(ConfigError, match="MODEL.EXTRA.ATTENTON.*did you mean MODEL.EXTRA.ATTENTION"):
        build_model(lpn_cfg(50, ATTENTON="GC"))
    with pytest.raises(ValueError, match="ATTENTION"):
        build_model(lpn_cfg(50, ATTENTION="CBAM"))
    with pytest.raises(ValueError, match="NUM_LAYERS = 34"):
        build_model(lpn_cfg(34))
    with pytest.raises(ValueError, match="NUM_DECONV_LAYERS"):
        build_model(lpn_cfg(50, NUM_DECONV_LAYERS=3))


def test_pretrained_file_initialises_the_backbone(tmp_path):
    source = build_model(lpn_cfg(50))
    state = {k: v for k, v in golden_state(source, seed=5).items() if not k.startswith(("deconv", "final"))}
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    path = tmp_path / "lpn50-imagenet.pth"
    torch.save(state, path)
    model = build_model(lpn_cfg(50, pretrained=str(path)), is_train=True)
    assert torch.equal(model.layer3[2].att.channel_add_conv[3].weight, state["layer3.2.att.channel_add_conv.3.weight"])
    assert float(model.final_layer.bias.detach().abs().max()) == 0 and float(model.final_layer.weight.detach().std()) < 0.002
    with pytest.raises(CheckpointError, match="none.pth"):
        build_model(lpn_cfg(50, pretrained=str(tmp_path / "none.pth")), is_train=True)


def _official_summary_gflops(model: nn.Module, input_size: tuple) -> float:
    """The official tables' FLOPs convention (HRNet's get_model_summary, which the
    LPN README uses): per conv and deconv, weight elements x OUTPUT pixels, summed
    and divided by 1024**3. For a stride-2 deconvolution that is 4x its true MACs."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += module.weight.numel() * output.shape[-2] * output.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_size))
    for handle in handles:
        handle.remove()
    return total / 1024 ** 3


def test_flops_match_the_paper():
    """posezoo counts 1.068 GMACs for LPN-50 at 256x192 (true multiply-accumulates of
    convs and deconvs; GC pooling/softmax, BN and LayerNorm are not counted). The
    paper's "1.0 GFLOPs" is a multiply-add count in the official convention: deconvs
    counted per output pixel and the total divided by 1024**3, which gives 1.008.
    The same convention reproduces the README's 1.4 / 1.8 (LPN-101/152: 1.414 /
    1.822; posezoo 1.504 / 1.943 GMACs) and MPII LPN-50's 1.3 at 256x256 (1.343)."""
    lpn50 = build_model(lpn_cfg(50))
    assert count_flops(lpn50, (3, 256, 192)) == 1_068_144_640
    assert round(_official_summary_gflops(lpn50, (3, 256, 192)), 3) == 1.008
