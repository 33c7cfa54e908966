"""AWR (Huang et al., AAAI 2020): both released nets load strictly and equal the
official ones, the dense codec equals the release's joint2offset /
offset2joint_softmax, the loss equals its training objective, encode -> decode
recovers a pose, config errors, ImageNet / whole-checkpoint init, one training
step."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import (
    deterministic_state,
)
from posezoo.codecs import build_codec
from posezoo.codecs.awr import (
    AWRCodec,
    adaptive_vote,
    crop_to_normalised,
    feature_depth,
    normalised_to_crop,
)
from posezoo.config import ConfigError, load_config
from posezoo.core.loss import AWRLoss, build_loss
from posezoo.models import CheckpointError, build_model, load_checkpoint
from posezoo.models.awr import AWRHourglass, AWRResNet
from posezoo.utils.utils import count_flops


def awr_cfg(backbone="resnet_18", size=128, downsample=2, joints=14, heatmap=None, init=False, pretrained="''",
            **extra):
    heatmap = heatmap if heatmap is not None else [size // downsample] * 2
    extra = {"BACKBONE": backbone, "DOWNSAMPLE": downsample, **extra}
    return load_config(None, ["MODEL.NAME", "awr", "MODEL.TARGET_TYPE", "awr", "MODEL.NUM_JOINTS", str(joints),
                              "MODEL.IMAGE_SIZE", json.dumps(size if isinstance(size, list) else [size, size]),
                              "MODEL.HEATMAP_SIZE", json.dumps(heatmap), "MODEL.INIT_WEIGHTS", str(init),
                              "MODEL.PRETRAINED", pretrained, "LOSS.NAME", "AWRLoss",
                              "MODEL.EXTRA", json.dumps(extra)])


def build_on_meta(cfg):
    with torch.device("meta"):
        return build_model(cfg)


# ---------------------------------------------------------------- released layouts

def test_released_checkpoint_wrapping_loads(tmp_path):
    """train.py saves {'model', 'optimizer', 'best_records'} (results/hourglass_1.pth)."""
    cfg = awr_cfg("hourglass_1", size=64)
    source, target = build_model(cfg).eval(), build_model(cfg).eval()
    source.load_state_dict(deterministic_state(source))
    path = str(tmp_path / "hourglass_1.pth")
    torch.save({"model": source.state_dict(), "optimizer": {"state": {}, "param_groups": []},
                "best_records": {"epoch": 40, "MPE": 7.48, "AUC": 0.0}}, path)
    load_checkpoint(target, path, strict=True)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


# ------------------------------------------------- equality with the official code

# Statistics (mean, std, min, max, 4 values) of the OFFICIAL outputs for
# deterministic_state(model, seed=0) and the input torch.randn((2, 1, 64, 64),
# generator=torch.Generator().manual_seed(1)), eval mode, torch 2.13 CPU float32:
# model/resnet_deconv.py get_deconv_net(18, 14, 2) and model/hourglass.py
# PoseNet('hourglass_1', 14) (its 1-element list) of Elody-07/AWR-Adaptive-
# Weighting-Regression@1d0e440. posezoo's outputs equalled them exactly (max abs
# difference 0.0), and so they did at 128x128, for resnet_18 with downsample 1 and
# 4, resnet_50, and hourglass_2 (its last stack). Tolerances allow other CPUs' rounding.
MODEL_GOLDEN = {
    "resnet_18": [-0.02846387706748705, 0.12130368202769488, -0.3382411599159241, 0.2456388622522354,
                  [-0.0001790318638086319, -0.01228642463684082, -0.06258894503116608, 0.02054653689265251]],
    "hourglass_1": [-0.3040779679165451, 1.2087416079230868, -5.229792594909668, 3.9550929069519043,
                    [-0.642268180847168, -0.44612860679626465, -0.03539780154824257, -0.08234810829162598]],
}


def output_statistics(out):
    out = out.double()
    n, c, h, w = out.shape
    picks = [out[0, 0, 0, 0], out[0, c - 1, h - 1, w - 1], out[n - 1, c // 2, h // 2, w // 2], out[n - 1, 1, h - 1, 0]]
    return [float(out.mean()), float(out.std()), float(out.min()), float(out.max()), [float(v) for v in picks]]


@pytest.mark.parametrize("backbone", sorted(MODEL_GOLDEN))
def test_outputs_equal_the_official_nets(backbone):
    model = build_model(awr_cfg(backbone, size=64)).eval()
    load_checkpoint(model, deterministic_state(model, seed=0), strict=True)
    x = torch.randn((2, 1, 64, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 56, 32, 32)
    got, expected = output_statistics(out), MODEL_GOLDEN[backbone]
    assert got[:4] == pytest.approx(expected[:4], rel=1e-4, abs=1e-5)
    assert got[4] == pytest.approx(expected[4], rel=1e-4, abs=1e-5)


def official_inputs():
    """The seeded crops, joints and outputs the codec/loss goldens were computed on:
    2 crops 64x64 (background 1.0 on a left and a top band), 4 joints (normalised),
    an output for a 32x32 feature map."""
    g = torch.Generator().manual_seed(2)
    depth = torch.rand(2, 1, 64, 64, generator=g) * 1.2 - 0.6
    depth[:, :, :, :16] = 1.0
    depth[:, :, :8] = 1.0
    joints = torch.rand(2, 4, 3, generator=g) * 1.6 - 0.8
    output = torch.randn(2, 16, 32, 32, generator=g) * 0.5
    return depth, joints, output


def encode_batch(codec, joints_norm, depth):
    """The codec's encode (contract crop coordinates in) sample by sample, collated."""
    joints_crop = normalised_to_crop(joints_norm, codec.image_size).numpy()
    samples = [codec.encode(joints_crop[i], depth[i].numpy()) for i in range(len(depth))]
    return {k: torch.from_numpy(np.stack([t[k] for t, _ in samples])) for k in samples[0][0]}


# From the OFFICIAL util/feature_tool.py and model/loss.py on official_inputs():
# joint2offset(joints, depth, T, 32): (sum, sum of |.|, [0, 1, 20, 20], sum of
# channel 3K + 2 of sample 1); offset2joint_softmax(output, depth, T) (normalised);
# the training loss coord_weight * L(voted, joints) + dense_weight * L(output,
# joint2offset(...)) with L = My_SmoothL1Loss. posezoo matched them to 6e-7
# (encode, from crop coordinates), 6e-8 (decode) and 1.2e-7 relative (loss); the
# loss gradients to 5e-7.
DENSE_GOLDEN = {0.4: [-38.34851405676454, 400.12189347390085, -0.2732541263103485, 3.5290274769067764],
                1.0: [-213.68379637566977, 4475.167417977616, -0.2732541263103485, 44.51589894294739]}
DECODE_GOLDEN = {
    0.4: [[[0.7929583191871643, 0.8597835898399353, -0.24108435213565826],
           [0.8108448386192322, 0.6115188002586365, 0.5219151973724365],
           [0.655561089515686, -0.5396824479103088, 0.46081194281578064],
           [-0.12929295003414154, 0.6059668064117432, -0.19825300574302673]],
          [[0.5620652437210083, 0.32197678089141846, 0.20843154191970825],
           [0.4597255289554596, 0.2590698003768921, 0.3917989730834961],
           [-0.13922442495822906, -0.4211420714855194, -0.06105705723166466],
           [0.13466419279575348, -0.5544888973236084, -0.0181801188737154]]],
    1.0: [[[0.8134528398513794, 0.888235330581665, -0.35306841135025024],
           [0.7695776224136353, 0.6518099904060364, 0.5256518721580505],
           [0.6753972172737122, -0.5604054927825928, 0.6135749220848083],
           [-0.09091801941394806, 0.3896518051624298, -0.11553207784891129]],
          [[0.5145702958106995, 0.4768184721469879, 0.48008209466934204],
           [0.5307803153991699, 0.3365688621997833, 0.4406905770301819],
           [-0.1291656196117401, -0.4440024793148041, 0.10202381014823914],
           [0.16050955653190613, -0.6640132069587708, 0.11837732046842575]]],
}
LOSS_GOLDEN = {(0.4, 0.0): 0.004003309644758701, (0.4, 1000.0): 5.68300724029541,
               (1.0, 0.0): 0.004540936555713415, (1.0, 1000.0): 5.940219402313232}


@pytest.mark.parametrize("kernel", [0.4, 1.0])
def test_codec_and_loss_equal_the_official_functions(kernel):
    depth, joints, output = official_inputs()
    codec = AWRCodec(64, 32, 4, kernel)
    target = encode_batch(codec, joints, depth)
    assert target["dense"].shape == (2, 16, 32, 32) and target["depth"].shape == (2, 1, 32, 32)
    torch.testing.assert_close(target["joints"], joints, rtol=0, atol=1e-6)
    torch.testing.assert_close(target["depth"], F.interpolate(depth, size=[32, 32]), rtol=0, atol=0)
    dense = target["dense"].double()
    got = [float(dense.sum()), float(dense.abs().sum()), float(dense[0, 1, 20, 20]), float(dense[1, 14].sum())]
    assert got == pytest.approx(DENSE_GOLDEN[kernel], rel=1e-5, abs=1e-5)
    assert target["dense"][:, 12:].max() <= 1 and target["dense"][:, 12:].min() >= 0

    decoded = codec.decode_crop(output, depth)
    assert decoded.dtype == torch.float32 and decoded.shape == (2, 4, 3)
    torch.testing.assert_close(crop_to_normalised(decoded, 64), torch.tensor(DECODE_GOLDEN[kernel]),
                               rtol=0, atol=1e-6)

    for coord_weight in (0.0, 1000.0):
        loss = AWRLoss(kernel, 1.0, coord_weight)(output, target, torch.ones(2, 4, 1))
        assert float(loss) == pytest.approx(LOSS_GOLDEN[(kernel, coord_weight)], rel=1e-5)


def test_loss_terms_and_weights():
    """forward = DENSE_WEIGHT * dense + COORD_WEIGHT * coord; L is Huber with delta
    0.01, i.e. 0.5 z^2 below 0.01 and 0.01 (|z| - 0.005) above; target weights
    scale each joint's elements."""
    depth, joints, output = official_inputs()
    target = encode_batch(AWRCodec(64, 32, 4, 0.4), joints, depth)
    ones = torch.ones(2, 4, 1)
    dense, coord = AWRLoss(0.4, 1.0, 1.0).components(output, target, ones)
    z = output - target["dense"]
    expected = torch.where(z.abs() < 0.01, 0.5 * z ** 2, 0.01 * (z.abs() - 0.005)).mean()
    assert float(dense) == pytest.approx(float(expected), rel=1e-6)
    voted = adaptive_vote(output, target["depth"], 0.4)
    assert float(coord) == pytest.approx(float(F.huber_loss(voted, target["joints"], delta=0.01)), rel=1e-6)
    assert float(AWRLoss(0.4, 2.0, 3.0)(output, target, ones)) == pytest.approx(float(2 * dense + 3 * coord), rel=1e-6)
    weight = torch.ones(2, 4, 1)
    weight[:, 1] = 0
    kept = [c for c in range(16) if c not in (3, 4, 5, 13)]  # joint 1: offsets 3-5, heatmap 12 + 1
    masked = AWRLoss(0.4, 1.0, 0.0)(output, target, weight)
    huber = F.huber_loss(output, target["dense"], reduction="none", delta=0.01)
    assert float(masked) == pytest.approx(float(huber[:, kept].sum() / huber.numel()), rel=1e-6)


# ------------------------------------------------------------------ the codec

def hand_crop(size=64):
    """A synthetic crop: a tilted plane d = 0.3 x - 0.2 y + 0.1 (x, y in [-1, 1])
    inside a disc, the far plane (1.0) outside, (1, S, S)."""
    ramp = (torch.arange(size) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(ramp, ramp, indexing="ij")
    depth = torch.where(x ** 2 + y ** 2 < 0.7, 0.3 * x - 0.2 * y + 0.1, torch.ones(()))
    return depth[None].float()


@pytest.mark.parametrize("backbone,kernel", [("resnet_18", 1.0), ("hourglass_1", 0.4)])
def test_encode_then_decode_recovers_the_pose(backbone, kernel):
    """Exact by construction: each joint lies ON the crop surface, at a foreground
    feature pixel P. Every foreground pixel within the kernel T votes exactly the
    joint (its unit vector times the distance T - T h recovered from its heatmap,
    plus its own position); at P the heatmap is 1 - 1e-4/T (the 1e-8 under the
    square root), so P's softmax weight ~e^30 = 1.1e13. The other pixels (heatmap
    0 beyond T or on background) weigh e^0 = 1 each and vote their own position,
    at most 3 away: all F^2 = 1024 of them move the result by < 1024 * 3 / 1e13
    = 3e-10. What is left is float32 rounding (~1e-7 normalised, x S/2 in pixels)."""
    cfg = awr_cfg(backbone, size=64, joints=5)
    codec = build_codec(cfg)
    assert codec.kernel_size == kernel and codec.prediction == "keypoints3d"
    depth = hand_crop(64)
    depth_ft = feature_depth(depth[None], 32)[0, 0]
    cells = torch.tensor([[16, 16], [10, 20], [22, 12], [15, 25], [20, 21]])  # (row, col), inside the disc
    u_c = (cells[:, 1].float() + 0.5) * 2
    v_c = (cells[:, 0].float() + 0.5) * 2
    joints = torch.stack([u_c, v_c, depth_ft[cells[:, 0], cells[:, 1]]], dim=1)
    target, weight = codec.encode(joints.numpy(), depth.numpy())
    assert weight.shape == (5, 1) and (weight == 1).all() and weight.dtype == np.float32
    assert {k: v.shape for k, v in target.items()} == {"joints": (5, 3), "dense": (20, 32, 32), "depth": (1, 32, 32)}
    assert all(v.dtype == np.float32 for v in target.values())
    dense = torch.from_numpy(target["dense"])[None]
    recovered = codec.decode_crop(dense, depth[None])
    torch.testing.assert_close(recovered[0], joints, rtol=0, atol=1e-5)
    normalised = adaptive_vote(dense, torch.from_numpy(target["depth"])[None], kernel)
    torch.testing.assert_close(normalised[0], crop_to_normalised(joints, 64), rtol=0, atol=1e-6)
    # a second, shifted copy in the same batch decodes independently
    both = codec.decode_crop(torch.cat([dense, dense]), torch.cat([depth[None], depth[None]]))
    torch.testing.assert_close(both[1], joints, rtol=0, atol=1e-5)


def test_codec_rejects_bad_shapes():
    codec = AWRCodec(64, 32, 5, 0.4)
    with pytest.raises(ValueError, match=r"joints_crop has shape \(4, 3\), expected \(5, 3\)"):
        codec.encode(np.zeros((4, 3), np.float32), np.zeros((1, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"depth_crop has shape \(1, 32, 32\), expected \(1, 64, 64\)"):
        codec.encode(np.zeros((5, 3), np.float32), np.zeros((1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"expected \(N, 20, 32, 32\)"):
        codec.decode_crop(torch.zeros(1, 20, 16, 16), torch.zeros(1, 1, 64, 64))
    with pytest.raises(TypeError, match="output tensor"):
        codec.decode_crop([torch.zeros(1, 20, 32, 32)], torch.zeros(1, 1, 64, 64))
    with pytest.raises(TypeError, match="target dict"):
        AWRLoss(0.4)(torch.zeros(1, 20, 32, 32), torch.zeros(1, 20, 32, 32), torch.ones(1, 5, 1))


# ------------------------------------------------------------------ model and config

@pytest.mark.parametrize("backbone,params,macs", [
    ("resnet_18", 15_378_936, 3_775_922_176),
    ("hourglass_1", 4_576_312, 5_718_671_360),
])
def test_parameters_and_macs_at_128(backbone, params, macs):
    # MACs of convolutions and deconvolutions (posezoo.utils.utils.count_flops), one 128x128 crop, 14 joints
    model = build_on_meta(awr_cfg(backbone))
    assert sum(p.numel() for p in model.parameters()) == params
    assert count_flops(model, (1, 128, 128)) == macs


@pytest.mark.parametrize("backbone,downsample,size", [("resnet_18", 1, 32), ("resnet_18", 4, 64),
                                                      ("resnet_50", 2, 32), ("hourglass_2", 2, 64)])
def test_output_is_one_tensor_at_the_feature_resolution(backbone, downsample, size):
    model = build_model(awr_cfg(backbone, size=size, downsample=downsample, joints=3)).eval()
    assert isinstance(model, AWRHourglass if backbone.startswith("hourglass") else AWRResNet)
    with torch.no_grad():
        out = model(torch.randn(2, 1, size, size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 12, size // downsample, size // downsample)


@pytest.mark.parametrize("kwargs,message", [
    ({"backbone": "resnet_34"}, r"BACKBONE = 'resnet_34'.*resnet_18 or hourglass_1"),
    ({"backbone": "hourglass"}, r"BACKBONE = 'hourglass'"),
    ({"backbone": "hourglass_1", "downsample": 4}, r"DOWNSAMPLE = 4 .*hourglass_1: expected one of \[2\]"),
    ({"downsample": 3}, r"DOWNSAMPLE = 3 .*expected one of \[1, 2, 4\]"),
    ({"KERNEL_SIZE": -1.0}, r"KERNEL_SIZE = -1.0"),
    ({"COORD_WEIGHT": -1.0}, r"COORD_WEIGHT = -1.0"),
    ({"KERNEL": 1.0}, r"MODEL.EXTRA.KERNEL .*did you mean MODEL.EXTRA.KERNEL_SIZE"),
    ({"size": [128, 96], "heatmap": [64, 48]}, r"IMAGE_SIZE = \[128, 96\].*square"),
    ({"backbone": "hourglass_1", "size": 80}, r"IMAGE_SIZE = \[80, 80\].*multiple of 32"),
    ({"heatmap": [32, 32]}, r"HEATMAP_SIZE = \[32, 32\].*\[64, 64\]"),
])
def test_bad_extra_is_one_config_error(kwargs, message):
    cfg = awr_cfg(**kwargs)
    for build in (build_model, build_codec, build_loss):
        with pytest.raises(ConfigError, match=message):
            build(cfg)


def test_kernel_and_weights_come_from_extra():
    loss = build_loss(awr_cfg("hourglass_1", DENSE_WEIGHT=2.0, COORD_WEIGHT=1000))
    assert (loss.kernel_size, loss.dense_weight, loss.coord_weight) == (0.4, 2.0, 1000.0)
    assert build_codec(awr_cfg(KERNEL_SIZE=0.6)).kernel_size == 0.6
    assert build_loss(awr_cfg()).kernel_size == 1.0 and build_loss(awr_cfg()).coord_weight == 0.0


def test_release_init_of_the_resnet():
    model = build_model(awr_cfg(size=64))
    stem = model.pre[0].weight.detach()
    assert float(stem.std()) == pytest.approx((2.0 / (5 * 5 * 64)) ** 0.5, rel=0.1)
    assert float(model.final1.weight.detach().std()) == pytest.approx(0.001, rel=0.1) and not model.final2.bias.any()
    assert float(model.deconv_layers[0].weight.detach().std()) == pytest.approx(0.001, rel=0.1)


def imagenet_file(model, path):
    """A torchvision-format ResNet file: its own conv1/bn1 (RGB 7x7), layer1-4, fc."""
    g = torch.Generator().manual_seed(5)
    state = {k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in model.state_dict().items() if k.startswith("layer")}
    state.update({"conv1.weight": torch.randn(64, 3, 7, 7), "bn1.weight": torch.ones(64), "bn1.bias": torch.zeros(64),
                  "bn1.running_mean": torch.zeros(64), "bn1.running_var": torch.ones(64),
                  "fc.weight": torch.randn(1000, 512), "fc.bias": torch.zeros(1000)})
    torch.save(state, path)
    return state


def test_imagenet_and_whole_checkpoint_init(tmp_path):
    reference = build_model(awr_cfg(size=64))
    state = imagenet_file(reference, tmp_path / "resnet18.pth")
    model = build_model(awr_cfg(size=64, init=True, pretrained=str(tmp_path / "resnet18.pth")), is_train=True)
    assert torch.equal(model.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert model.pre[0].weight.shape == (64, 1, 5, 5) and float(model.final1.weight.detach().std()) < 0.01
    # a whole checkpoint (the dense stage) starts the fine-tuning stage, hourglass included
    hg_cfg = awr_cfg("hourglass_1", size=64)
    source = build_model(hg_cfg)
    source.load_state_dict(deterministic_state(source))
    torch.save({"model": source.state_dict(), "best_records": {"epoch": 30}}, tmp_path / "dense.pth")
    tuned = build_model(awr_cfg("hourglass_1", size=64, init=True, pretrained=str(tmp_path / "dense.pth")),
                        is_train=True)
    assert torch.equal(tuned.outs_2[0].weight, source.outs_2[0].weight)
    with pytest.raises(CheckpointError, match="no ImageNet"):
        build_model(awr_cfg("hourglass_1", size=64, init=True, pretrained=str(tmp_path / "resnet18.pth")),
                    is_train=True)
    with pytest.raises(CheckpointError, match="not found"):
        build_model(awr_cfg(size=64, init=True, pretrained=str(tmp_path / "none.pth")), is_train=True)
    build_model(awr_cfg(size=64, init=False, pretrained=str(tmp_path / "none.pth")), is_train=True)


def test_one_training_step_lowers_the_loss():
    """Dense + joint supervision (the fine-tuning stage's weights) on a tiny batch."""
    torch.manual_seed(0)
    cfg = awr_cfg("resnet_18", size=32, joints=3, COORD_WEIGHT=1000.0)
    model, codec, criterion = build_model(cfg).train(), build_codec(cfg), build_loss(cfg)
    depth = hand_crop(32)
    cells = [[(6, 8), (9, 9), (8, 5)], [(7, 7), (10, 8), (5, 9)]]
    samples = []
    for sample in cells:
        joints = np.array([[(c + 0.5) * 2, (r + 0.5) * 2, float(depth[0, 2 * r, 2 * c])] for r, c in sample],
                          np.float32)
        samples.append(codec.encode(joints, depth.numpy()))
    target = {k: torch.from_numpy(np.stack([t[k] for t, _ in samples])) for k in samples[0][0]}
    weight = torch.from_numpy(np.stack([w for _, w in samples]))
    inputs = torch.stack([depth, depth])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = criterion(model(inputs), target, weight)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after = criterion(model(inputs), target, weight)
    assert torch.isfinite(before) and float(after.detach()) < float(before.detach())
