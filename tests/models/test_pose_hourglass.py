"""Stacked hourglass (Newell et al., ECCV 2016): both released checkpoint layouts
(bearpaw/pytorch-pose and princeton-vl/pytorch_stacked_hourglass) load strictly,
outputs equal the official implementations', one heatmap set per stack, the
multi-stage loss, DarkPose's COCO hourglass YAMLs, config errors."""
import glob
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_loads_spec_strictly, deterministic_state, ROOT, SPECS, needs_shared
from posezoo.config import ConfigError, load_config
from posezoo.core.strategy import stage_loss
from posezoo.core.loss import JointsMSELoss
from posezoo.models import CheckpointError, build_model, load_checkpoint
from posezoo.models.pose_hourglass import BearpawHourglassNet, PrincetonHourglassNet, upsample_to
from posezoo.utils.utils import count_flops


def hg_cfg(num_joints=16, init=False, pretrained="''", **extra):
    return load_config(None, ["MODEL.NAME", "pose_hourglass", "MODEL.NUM_JOINTS", str(num_joints),
                              "MODEL.INIT_WEIGHTS", str(init), "MODEL.PRETRAINED", pretrained,
                              "MODEL.EXTRA", json.dumps(extra)])


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def build_on_meta(cfg):
    """Structure only (no memory, no compute)."""
    with torch.device("meta"):
        return build_model(cfg)


def meta_outputs(model, input_shape):
    """Output shapes of a forward on the meta device (BatchNorm, slow on meta, skipped)."""
    model = model.to("meta").eval()
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    with torch.no_grad():
        return [list(o.shape) for o in model(torch.empty(input_shape, device="meta"))]


# ---------------------------------------------------------------- released layouts

def spec_cfg(spec_file):
    with open(os.path.join(SPECS, "checkpoints", spec_file)) as f:
        spec = json.load(f)
    c = spec["config"]
    if spec_file.startswith("bearpaw"):
        extra = {"LAYOUT": "bearpaw", "NUM_STACKS": c["num_stacks"], "NUM_BLOCKS": c["num_blocks"],
                 "NUM_FEATURES": 2 * c["num_feats"], "DEPTH": c["hourglass_depth"]}
        num_joints = c["num_classes"]
    else:
        assert c["increase"] == 0
        extra = {"LAYOUT": "princeton", "NUM_STACKS": c["nstack"], "NUM_FEATURES": c["inp_dim"]}
        num_joints = c["oup_dim"]
    return spec, hg_cfg(num_joints, **extra)


def test_released_checkpoint_wrappings_load(tmp_path):
    """bearpaw's main.py saves {'epoch', 'arch', 'state_dict' (DataParallel:
    'module.' keys), 'best_acc', 'optimizer'}: load_checkpoint takes the file as is.
    princeton's train.py saves {'state_dict' (Trainer(DataParallel(PoseNet)):
    'model.module.' keys), 'optimizer', 'epoch'}: load_checkpoint takes it as is too."""
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for layout in ("bearpaw", "princeton"):
        cfg = hg_cfg(NUM_STACKS=2, NUM_FEATURES=32, LAYOUT=layout)
        source, target = build_model(cfg).eval(), build_model(cfg).eval()
        source.load_state_dict(deterministic_state(source))
        if layout == "bearpaw":
            obj = {"epoch": 90, "arch": "hg", "best_acc": 0.87, "optimizer": {"state": {}, "param_groups": []},
                   "state_dict": {"module." + k: v for k, v in source.state_dict().items()}}
        else:
            obj = {"epoch": 200, "optimizer": {"state": {}, "param_groups": []},
                   "state_dict": {"model.module." + k: v for k, v in source.state_dict().items()}}
        path = str(tmp_path / f"{layout}.pth")
        torch.save(obj, path)
        load_checkpoint(target, path, strict=True)
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(target(x), source(x)))


# ------------------------------------------------- equality with the official code

# Statistics of the OFFICIAL models' outputs, stack by stack, for
# deterministic_state(model, seed=0) and the input torch.randn(shape,
# generator=torch.Generator().manual_seed(1)), in eval mode, torch 2.13 CPU float32:
# - bearpaw: pose.models.hourglass.hg(num_stacks=2, num_blocks=1, num_classes=16) of
#   bearpaw/pytorch-pose@edc7aec (its width is fixed at 256);
# - princeton: models.posenet.PoseNet(nstack=2, inp_dim=64, oup_dim=16) of
#   princeton-vl/pytorch_stacked_hourglass@ceedc14, fed x.permute(0, 2, 3, 1) (NHWC), its
#   stacked output [N, stacks, K, H, W] split along dim 1;
# - darkpose: lib/models/hourglass.py get_pose_net of ilovepose/DarkPose@0185b42 with
#   NUM_FEATURES 64, NUM_STACKS 2, NUM_BLOCKS 1, 17 joints, at 128x96 (the one size its
#   fixed 4x3 innermost upsampling fits).
# posezoo's outputs equalled the official ones exactly (max abs difference 0.0) here,
# and so did those of the released configurations at full size (bearpaw hg_s2_b1 /
# hg_s8_b1 and princeton 2HG / 8HG at 256x256, DarkPose HG4 / HG8 at 128x96), where
# the 8-stack outputs reach several thousand. The tolerance only allows for other
# CPUs' float rounding; a change of structure moves these by O(1).
# name: ((EXTRA, num_joints, input shape), [per stack: mean, std, min, max, 4 values])
GOLDEN = {
    "bearpaw": (({"LAYOUT": "bearpaw", "NUM_STACKS": 2, "NUM_FEATURES": 256}, 16, (2, 3, 64, 64)), [
        [-0.2896331936187835, 1.1149406602381713, -3.157557249069214, 1.8127566576004028,
         [-1.1591010093688965, 0.810710608959198, -1.0529142618179321, 0.9165329933166504]],
        [0.8029110316379047, 2.7855575141010678, -6.346569538116455, 5.939759731292725,
         [2.8983497619628906, -5.502845764160156, 0.8244389295578003, -1.2622267007827759]],
    ]),
    "princeton": (({"LAYOUT": "princeton", "NUM_STACKS": 2, "NUM_FEATURES": 64}, 16, (2, 3, 64, 64)), [
        [-0.46415382346225975, 1.4879341664527272, -4.10284948348999, 2.3268840312957764,
         [0.6054666042327881, 0.8665320873260498, -0.6818100214004517, -1.018993854522705]],
        [-1.125794922137061, 4.867042055526984, -11.590143203735352, 7.692032814025879,
         [0.8929480910301208, -0.8312035202980042, -0.9414809346199036, 2.9523262977600098]],
    ]),
    "darkpose": (({"NUM_FEATURES": 64, "NUM_STACKS": 2, "NUM_BLOCKS": 1}, 17, (2, 3, 128, 96)), [
        [-0.061734491521946, 0.9674965344815137, -2.2806901931762695, 2.4838321208953857,
         [-0.19416549801826477, 1.592028260231018, -0.5767324566841125, -0.6386281251907349]],
        [0.5092198465332703, 4.110174499009702, -7.943197250366211, 11.21440315246582,
         [4.205719470977783, 5.24360990524292, 0.23265951871871948, 2.8451266288757324]],
    ]),
}


def output_statistics(out):
    out = out.double()
    n, k, h, w = out.shape
    picks = [out[0, 0, 0, 0], out[0, k - 1, h - 1, w - 1], out[n - 1, k // 2, h // 2, w // 2], out[n - 1, 1, h - 1, 0]]
    return [float(out.mean()), float(out.std()), float(out.min()), float(out.max()), [float(v) for v in picks]]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_outputs_equal_the_official_implementation(name):
    (extra, num_joints, shape), expected = GOLDEN[name]
    model = build_model(hg_cfg(num_joints, **extra)).eval()
    load_checkpoint(model, deterministic_state(model), strict=True)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = model(x)
    assert isinstance(outputs, list) and len(outputs) == len(expected)
    for out, stats in zip(outputs, expected):
        assert out.shape == (shape[0], num_joints, shape[2] // 4, shape[3] // 4)
        got = output_statistics(out)
        assert got[:4] == pytest.approx(stats[:4], rel=1e-4, abs=1e-4)
        assert got[4] == pytest.approx(stats[4], rel=1e-4, abs=1e-4)


# --------------------------------------------------------- structure and outputs

@pytest.mark.parametrize("layout,stacks,params,macs", [
    ("bearpaw", 2, 6_730_912, 8_988_917_760),    # bearpaw hg_s2_b1
    ("bearpaw", 8, 25_594_624, 28_094_496_768),  # bearpaw hg_s8_b1
    ("princeton", 2, 8_429_088, 8_334_606_336),  # princeton 2HG (params include unused skip_layers)
    ("princeton", 8, 32_819_328, 27_440_185_344),  # princeton 8HG
])
def test_parameters_and_macs_at_256x256(layout, stacks, params, macs):
    # MACs of convolutions (posezoo.utils.utils.count_flops) for one 256x256 image, 16 joints
    model = build_on_meta(hg_cfg(16, LAYOUT=layout, NUM_STACKS=stacks))
    assert num_params(model) == params
    assert count_flops(model, (3, 256, 256)) == macs


def test_one_heatmap_set_per_stack_at_any_input_size():
    for layout, extra in (("bearpaw", {"NUM_BLOCKS": 2, "DEPTH": 3}), ("princeton", {"DEPTH": 2})):
        cfg = hg_cfg(5, LAYOUT=layout, NUM_STACKS=3, NUM_FEATURES=16, **extra)
        model = build_model(cfg).eval()
        assert type(model) is {"bearpaw": BearpawHourglassNet, "princeton": PrincetonHourglassNet}[layout]
        for h, w in ((64, 48), (128, 96), (60, 44)):  # 60x44: odd sizes inside the hourglass
            with torch.no_grad():
                outputs = model(torch.randn(2, 3, h, w))
            assert [tuple(o.shape) for o in outputs] == [(2, 5, h // 4, w // 4)] * 3
    single = build_model(hg_cfg(4, NUM_STACKS=1, NUM_FEATURES=16)).eval()
    assert len(single(torch.randn(1, 3, 64, 64))) == 1 and len(single.score_) == 0  # nothing to remap


def test_upsampling_is_the_official_x2_and_darkposes_4x3():
    low = torch.randn(1, 2, 3, 5)
    assert torch.equal(upsample_to(low, torch.empty(1, 2, 6, 10)), nn.Upsample(scale_factor=2)(low))
    low = torch.randn(1, 2, 2, 1)
    assert torch.equal(upsample_to(low, torch.empty(1, 2, 4, 3)), nn.Upsample(size=[4, 3])(low))


def test_multi_stage_loss_sums_every_stack():
    """Intermediate supervision: core.strategy.stage_loss adds the loss of every
    stack's heatmaps; the prediction is the last stack's."""
    torch.manual_seed(0)
    model = build_model(hg_cfg(4, NUM_STACKS=3, NUM_FEATURES=16)).train()
    inputs = torch.randn(2, 3, 64, 64)
    outputs = model(inputs)
    target, weight = torch.rand(2, 4, 16, 16), torch.ones(2, 4, 1)
    criterion = JointsMSELoss(use_target_weight=True)
    per_stack = [float(criterion(o.detach(), target, weight)) for o in outputs]
    loss = stage_loss(criterion, outputs, target, weight)
    assert loss.item() == pytest.approx(sum(per_stack), rel=1e-6)
    assert len(set(per_stack)) == 3 and loss.item() > max(per_stack)
    # the earlier stacks' losses reach the earlier stacks only
    loss.backward()
    grads = [m.weight.grad.clone() for m in model.score]
    model.zero_grad()
    criterion(model(inputs)[-1], target, weight).backward()
    assert torch.allclose(model.score[-1].weight.grad, grads[-1], rtol=1e-5, atol=1e-7)
    assert not torch.allclose(model.score[0].weight.grad, grads[0], rtol=1e-3, atol=1e-6)


# ------------------------------------------------------------------ config

def test_unknown_or_invalid_extra_is_a_config_error():
    with pytest.raises(ConfigError, match="MODEL.EXTRA.NUM_STACK .*did you mean MODEL.EXTRA.NUM_STACKS"):
        build_model(hg_cfg(NUM_STACK=2))
    with pytest.raises(ConfigError, match="MODEL.EXTRA.LAYOUT = 'caffe'.*'bearpaw' or 'princeton'"):
        build_model(hg_cfg(LAYOUT="caffe"))
    with pytest.raises(ConfigError, match="MODEL.EXTRA.NUM_BLOCKS = 2.*princeton"):
        build_model(hg_cfg(LAYOUT="princeton", NUM_BLOCKS=2))
    with pytest.raises(ConfigError, match="MODEL.EXTRA.NUM_FEATURES = 30.*multiple of 4"):
        build_model(hg_cfg(NUM_FEATURES=30))
    with pytest.raises(ConfigError, match="MODEL.EXTRA.NUM_STACKS = 0"):
        build_model(hg_cfg(NUM_STACKS=0))
    with pytest.raises(ConfigError, match="MODEL.EXTRA.DEPTH"):
        build_model(hg_cfg(DEPTH="4"))


def test_pretrained_is_a_whole_checkpoint(tmp_path):
    source = build_model(hg_cfg(NUM_STACKS=2, NUM_FEATURES=16))
    source.load_state_dict(deterministic_state(source))
    path = tmp_path / "hg.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    model = build_model(hg_cfg(init=True, pretrained=str(path), NUM_STACKS=2, NUM_FEATURES=16), is_train=True)
    assert torch.equal(model.score[1].weight, source.score[1].weight)
    with pytest.raises(CheckpointError, match="none.pth"):
        build_model(hg_cfg(init=True, pretrained=str(tmp_path / "none.pth"), NUM_STACKS=2), is_train=True)
    # INIT_WEIGHTS false (DarkPose's YAMLs, which name a ResNet-50 file): not read
    build_model(hg_cfg(init=False, pretrained=str(tmp_path / "none.pth"), NUM_STACKS=2), is_train=True)


# ------------------------------------------------------------------ experiments

# release -> its checkpoint layout spec (one YAML per release: experiments/mpii/hourglass/<release>_256x256.yaml)
RELEASE_YAMLS = {"bearpaw_hg_s2_b1": "bearpaw_hg_s2_b1_mpii.json", "bearpaw_hg_s8_b1": "bearpaw_hg_s8_b1_mpii.json",
                 "princeton_hg2": "princeton_hg2_mpii.json", "princeton_hg8": "princeton_hg8_mpii.json"}
# bearpaw/pytorch-pose@edc7aec data/mpii/mean.pth.tar, read with torch.load: {'mean': ..., 'std': ...}
BEARPAW_MPII_MEAN = [0.440442830324173, 0.4440267086029053, 0.4326828420162201]
BEARPAW_MPII_STD = [0.24576245248317719, 0.24096255004405975, 0.2468130737543106]  # computed, never applied


def release_input(release, bgr):
    """The network input each release's own code makes of a BGR uint8 crop, written
    from its source: bearpaw's load_image (RGB, /255 when the max is above 1) then
    color_normalize, which subtracts the mean and ignores std (pose/utils/imutils.py,
    transforms.py); princeton's test.py: cv2.imread(...)[:, :, ::-1] / 255."""
    rgb = bgr[:, :, ::-1].astype(np.float64)
    if release.startswith("bearpaw"):
        img = rgb / 255 if rgb.max() > 1 else rgb
        return (img - np.asarray(BEARPAW_MPII_MEAN)).transpose(2, 0, 1)
    return (rgb / 255).transpose(2, 0, 1)


@needs_shared
@pytest.mark.parametrize("release", sorted(RELEASE_YAMLS))
def test_release_yaml_loads_its_checkpoint_and_normalises_as_the_release(release):
    """Issue 10: each hourglass release's YAML builds the model its checkpoint loads
    into strictly, and feeds it the input its own code computed."""
    from posezoo.utils.normalise import input_normalisation, to_input_tensor

    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", f"{release}_256x256.yaml"))
    spec, spec_config = spec_cfg(RELEASE_YAMLS[release])
    assert dict(cfg.MODEL.EXTRA) | dict(spec_config.MODEL.EXTRA) == dict(cfg.MODEL.EXTRA)
    assert_loads_spec_strictly(build_model(cfg), spec)
    assert cfg.MODEL.IMAGE_SIZE == [256, 256] and cfg.MODEL.HEATMAP_SIZE == [64, 64]
    assert cfg.TEST.FLIP_TEST == release.startswith("princeton") and not cfg.TEST.SHIFT_HEATMAP
    assert cfg.DATASET.COLOR_RGB
    bgr = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    ours = to_input_tensor(bgr[:, :, ::-1], *input_normalisation(cfg)).numpy()  # the dataset's RGB crop
    np.testing.assert_allclose(ours, release_input(release, bgr), atol=1e-6)


HG_YAMLS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*", "hourglass", "*.yaml")))


def test_hourglass_experiments_exist():
    names = [os.path.relpath(p, ROOT) for p in HG_YAMLS]
    assert {f"experiments/mpii/hourglass/{name}_256x256.yaml" for name in RELEASE_YAMLS} <= set(names)
    assert sum(n.startswith("experiments/coco/hourglass/hg") for n in names) == 6


@pytest.mark.parametrize("path", HG_YAMLS, ids=[os.path.relpath(p, ROOT) for p in HG_YAMLS])
def test_experiment_yaml_loads_and_builds(path):
    cfg = load_config(path)
    width, height = cfg.MODEL.IMAGE_SIZE
    stacks = cfg.MODEL.EXTRA.NUM_STACKS
    expected = [[1, cfg.MODEL.NUM_JOINTS, cfg.MODEL.HEATMAP_SIZE[1], cfg.MODEL.HEATMAP_SIZE[0]]] * stacks
    assert meta_outputs(build_on_meta(cfg), (1, 3, height, width)) == expected
    assert (cfg.TEST.BLUR_KERNEL == 11) == ("/coco/" in path)  # DarkPose's DARK decoding


@needs_shared
@pytest.mark.parametrize("path", [p for p in HG_YAMLS if "/coco/" in p])
def test_darkpose_yaml_equals_the_official_one(path):
    """Every key of DarkPose's merged config; MODEL.NAME 'hourglass' builds pose_hourglass."""
    with open(os.path.join(SPECS, "official2d_experiment_configs.json")) as f:
        official = json.load(f)["darkpose"][os.path.relpath(path, ROOT)]
    cfg = load_config(path)
    assert type(build_model(cfg)).__name__ == "BearpawHourglassNet"

    def compare(node, ours, prefix):
        for key, value in node.items():
            full = prefix + key
            if isinstance(value, dict) and key != "EXTRA":
                compare(value, ours[key], full + ".")
            else:
                assert ours[key] == value, full

    compare(official, cfg, "")
