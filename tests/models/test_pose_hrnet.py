"""PoseHighResolutionNet (HRNet, Sun et al. CVPR 2019, and UDP-Pose's variant):
official checkpoint layout, official outputs, init, config validation, YAMLs."""
import functools
import glob
import json
import os

import pytest
import torch
from torch import nn

from conftest import deterministic_state, ROOT, SPECS, needs_shared
from posezoo.config import ConfigError, load_config
from posezoo.models import CheckpointError, build_model
from posezoo.utils.utils import count_flops

PRETRAINED_LAYERS = ["conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3",
                     "transition3", "stage4"]


def stage(channels, blocks=4, modules=1, block="BASIC"):
    return {"NUM_MODULES": modules, "NUM_BRANCHES": len(channels), "BLOCK": block,
            "NUM_BLOCKS": [blocks] * len(channels) if isinstance(blocks, int) else blocks,
            "NUM_CHANNELS": channels, "FUSE_METHOD": "SUM"}


def hrnet_extra(width):
    """The published layout (1, 4, 3 modules of 4 BasicBlocks per branch)."""
    return {"PRETRAINED_LAYERS": PRETRAINED_LAYERS, "FINAL_CONV_KERNEL": 1,
            "STAGE2": stage([width, 2 * width]),
            "STAGE3": stage([width, 2 * width, 4 * width], modules=4),
            "STAGE4": stage([width, 2 * width, 4 * width, 8 * width], modules=3)}


# A tiny net: one module of one block per branch, widths 8-64.
TINY = {"PRETRAINED_LAYERS": ["*"], "FINAL_CONV_KERNEL": 1, "STAGE2": stage([8, 16], blocks=1),
        "STAGE3": stage([8, 16, 32], blocks=1), "STAGE4": stage([8, 16, 32, 64], blocks=1, modules=2)}

# An unusual layout: Bottleneck branches, a branch that changes width between
# stages, two new branches opened at once, a 3x3 head.
CUSTOM = {"PRETRAINED_LAYERS": ["*"], "FINAL_CONV_KERNEL": 3,
          "STAGE2": stage([8, 16], blocks=[1, 2], modules=2, block="BOTTLENECK"),
          "STAGE3": stage([32, 80], blocks=[2, 1]),
          "STAGE4": stage([32, 96, 40, 24], blocks=[1, 1, 2, 1], modules=2)}


def hrnet_cfg(extra, num_joints=17, target_type="gaussian", pretrained="", *opts):
    return load_config(None, ["MODEL.NAME", "pose_hrnet", "MODEL.NUM_JOINTS", str(num_joints),
                              "MODEL.TARGET_TYPE", target_type, "MODEL.PRETRAINED", pretrained or "''",
                              "MODEL.EXTRA", json.dumps(extra), *opts])


def build_on_meta(cfg):
    """Structure only (no memory, no compute): enough for shapes, counts and MACs."""
    with torch.device("meta"):
        return build_model(cfg)


def meta_output(model, input_shape):
    """The output of a forward on the meta device: shapes without compute.
    BatchNorm keeps shapes and is slow on meta, so it is skipped (in place)."""
    model = model.to("meta").eval()
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    with torch.no_grad():
        return model(torch.empty(input_shape, device="meta"))


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def spec_cfg(spec):
    c = spec["config"]
    return hrnet_cfg(c["EXTRA"], c["NUM_JOINTS"], c["TARGET_TYPE"])


@functools.lru_cache(maxsize=1)
def cpu_model(config_json):
    """One CPU model per spec config (the 256x192 and 384x288 specs share one)."""
    return build_model(spec_cfg({"config": json.loads(config_json)}))


@pytest.mark.parametrize("width,num_joints,target_type,params", [
    (32, 17, "gaussian", 28_536_113),  # pose_hrnet_w32_256x192.pth / _384x288.pth
    (48, 17, "gaussian", 63_595_745),  # pose_hrnet_w48_256x192.pth / _384x288.pth
    (32, 16, "gaussian", 28_536_080),  # MPII pose_hrnet_w32_256x256.pth
    (32, 17, "offset", 28_589_811),  # UDP-Pose HRNet-W32 (wider last fusion, 51 maps)
])
def test_parameter_counts_match_the_official_models(width, num_joints, target_type, params):
    # Counted from the official model code (leoxiaobin/deep-high-resolution-net.pytorch,
    # HuangJunJie2017/UDP-Pose); the HRNet README rounds them to 28.5M and 63.6M.
    model = build_on_meta(hrnet_cfg(hrnet_extra(width), num_joints, target_type))
    assert num_params(model) == params


def test_macs_match_the_paper():
    # The paper's 7.1 / 14.6 "GFLOPs" at 256x192 are multiply-adds divided by
    # 2**30, as HRNet's get_model_summary prints them: 7.645 / 15.692 GMACs.
    w32, w48 = (count_flops(build_on_meta(hrnet_cfg(hrnet_extra(width))), (3, 256, 192)) for width in (32, 48))
    assert w32 == 7_645_003_776 and round(w32 / 2 ** 30, 1) == 7.1
    assert w48 == 15_691_825_152 and round(w48 / 2 ** 30, 1) == 14.6


# Statistics of the OFFICIAL models' outputs for deterministic_state(model, seed=0)
# and the input torch.randn(shape, generator=torch.Generator().manual_seed(1)), in
# eval mode. Obtained by loading that same state dict into the official
# PoseHighResolutionNet (leoxiaobin/deep-high-resolution-net.pytorch lib/models/pose_hrnet.py
# for gaussian; HuangJunJie2017/UDP-Pose@master deep-high-resolution-net.pytorch/lib/models/
# pose_hrnet.py for offset), torch 2.13 CPU float32. posezoo's outputs equalled the
# official ones exactly (max abs difference 0.0), as they did for W32, W48, MPII W32 and
# UDP W32 at their full input sizes in the same comparison. The tolerance below only
# allows for other CPUs' float rounding; any change of structure moves these by O(1).
# (extra, num_joints, target_type, input shape): (mean, std, min, max, [4 values])
GOLDEN = {
    "w32": ((hrnet_extra(32), 17, "gaussian", (1, 3, 64, 64)),
            (0.6934123736466384, 2.2525023637428836, -4.6472249031066895, 6.196417808532715,
             [0.8510060906410217, -2.517172336578369, 3.973087787628174, 0.9988316297531128])),
    "w32_udp": ((hrnet_extra(32), 17, "offset", (1, 3, 64, 64)),
                (-0.12936624123313759, 1.6642915866276906, -3.6903793811798096, 4.808467388153076,
                 [-0.6657706499099731, 0.9167530536651611, -0.5523393154144287, -1.2873886823654175])),
    "custom": ((CUSTOM, 5, "gaussian", (2, 3, 64, 96)),
               (0.11575954876898323, 0.41625673148349746, -0.6449688673019409, 0.7288830876350403,
                [-0.18664750456809998, 0.08983948826789856, 0.2000637799501419, 0.48685741424560547])),
    "custom_udp": ((CUSTOM, 5, "offset", (2, 3, 64, 96)),
                   (0.041602377983993695, 0.35200647608005614, -1.0306261777877808, 0.7101234793663025,
                    [0.5274926424026489, -0.20513767004013062, -0.5610048174858093, -0.15997350215911865])),
}


def output_statistics(out):
    out = out.double()
    corners = [out[0, 0, 0, 0], out[0, -1, -1, -1], out[-1, out.shape[1] // 2, out.shape[2] // 2, out.shape[3] // 2],
               out[-1, 1, -1, 0]]
    return (float(out.mean()), float(out.std()), float(out.min()), float(out.max()), [float(v) for v in corners])


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_outputs_equal_the_official_implementation(name):
    (extra, num_joints, target_type, shape), expected = GOLDEN[name]
    model = build_model(hrnet_cfg(extra, num_joints, target_type)).eval()
    model.load_state_dict(deterministic_state(model, seed=0))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    maps = 3 * num_joints if target_type == "offset" else num_joints
    assert out.shape == (shape[0], maps, shape[2] // 4, shape[3] // 4)
    mean, std, low, high, values = output_statistics(out)
    exp_mean, exp_std, exp_low, exp_high, exp_values = expected
    tolerance = 1e-4 * exp_std
    assert mean == pytest.approx(exp_mean, abs=tolerance)
    assert [std, low, high] == pytest.approx([exp_std, exp_low, exp_high], rel=1e-4, abs=tolerance)
    assert values == pytest.approx(exp_values, rel=1e-4, abs=tolerance)


def test_udp_variant_is_selected_by_target_type_offset():
    plain = build_on_meta(hrnet_cfg(hrnet_extra(32)))
    udp = build_on_meta(hrnet_cfg(hrnet_extra(32), target_type="offset"))
    assert (plain.final_layer.in_channels, plain.final_layer.out_channels) == (32, 17)
    assert (udp.final_layer.in_channels, udp.final_layer.out_channels) == (128, 51)  # heatmap, dx, dy per joint
    plain_keys = set(plain.state_dict())
    extra_keys = [k for k in udp.state_dict() if k not in plain_keys]
    assert extra_keys == ["stage4.2.fuse_layers.0.0.0.weight"]  # the 1x1 conv widening the identity path
    assert meta_output(udp, (1, 3, 256, 192)).shape == (1, 51, 64, 48)


def test_official_init_when_training_without_imagenet_weights():
    model = build_model(hrnet_cfg(TINY), is_train=True)
    weights = torch.cat([m.weight.detach().flatten() for m in model.modules() if isinstance(m, nn.Conv2d)])
    assert 0.0009 < float(weights.std()) < 0.0011 and abs(float(weights.mean())) < 1e-4  # N(0, 0.001)
    assert torch.all(model.final_layer.bias == 0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def fake_imagenet_file(tmp_path, extra):
    """An HRNet-Image-Classification-style file for `extra`: the pose net's
    backbone keys (random values, no num_batches_tracked), fusions of a
    multi-scale last module, and a classification head."""
    source = build_model(hrnet_cfg(extra))
    state = {k: torch.randn(v.shape) for k, v in source.state_dict().items()
             if not k.startswith("final_layer") and "num_batches_tracked" not in k}
    state["stage4.1.fuse_layers.1.0.0.0.weight"] = torch.randn(16, 8, 3, 3)
    state["incre_modules.0.0.conv1.weight"] = torch.randn(32, 8, 1, 1)
    state["final_layer.0.weight"] = torch.randn(2048, 1024, 1, 1)
    state["classifier.weight"] = torch.randn(1000, 2048)
    path = tmp_path / "hrnet_tiny_imagenet.pth"
    torch.save(state, path)
    return str(path), state


def test_pretrained_layers_are_honoured(tmp_path, caplog):
    path, state = fake_imagenet_file(tmp_path, TINY)
    extra = dict(TINY, PRETRAINED_LAYERS=["conv1", "bn1", "layer1", "stage2"])
    with caplog.at_level("INFO", logger="posezoo.models.pose_hrnet"):
        model = build_model(hrnet_cfg(extra, pretrained=path), is_train=True)
    own = model.state_dict()
    listed = [k for k in state if k.split(".")[0] in extra["PRETRAINED_LAYERS"]]
    assert all(torch.equal(own[k], state[k]) for k in listed)
    assert f"loaded {len(listed)} tensors" in caplog.text
    for key in ("conv2.weight", "transition1.0.0.weight", "stage3.0.branches.0.0.conv1.weight",
                "stage4.1.fuse_layers.0.1.0.weight"):
        assert float(own[key].std()) < 0.002  # kept the N(0, 0.001) init
    assert torch.all(own["bn2.weight"] == 1)

    everything = build_model(hrnet_cfg(TINY, pretrained=path), is_train=True).state_dict()
    assert all(torch.equal(everything[k], v) for k, v in state.items() if k in everything)
    assert float(everything["final_layer.weight"].std()) < 0.002


def test_udp_imagenet_init_skips_the_widened_fusion(tmp_path):
    path, state = fake_imagenet_file(tmp_path, TINY)
    model = build_model(hrnet_cfg(TINY, 17, "offset", path), is_train=True)
    own = model.state_dict()
    assert torch.equal(own["stage4.1.branches.3.0.conv2.weight"], state["stage4.1.branches.3.0.conv2.weight"])
    assert torch.equal(own["stage4.0.fuse_layers.2.0.0.0.weight"], state["stage4.0.fuse_layers.2.0.0.0.weight"])
    assert own["stage4.1.fuse_layers.0.1.0.weight"].shape == (32, 16, 1, 1)  # 4 x 8 channels
    assert float(own["stage4.1.fuse_layers.0.1.0.weight"].std()) < 0.002


def test_missing_or_unrelated_pretrained_file_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="MODEL.PRETRAINED file not found: .*none.pth"):
        build_model(hrnet_cfg(TINY, pretrained=str(tmp_path / "none.pth")), is_train=True)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(CheckpointError, match="no tensor for MODEL.EXTRA.PRETRAINED_LAYERS"):
        build_model(hrnet_cfg(TINY, pretrained=str(other)), is_train=True)
    wrong = tmp_path / "w48.pth"
    torch.save({"stage2.0.branches.0.0.conv1.weight": torch.zeros(48, 48, 3, 3)}, wrong)
    with pytest.raises(CheckpointError, match="stage2.0.branches.0.0.conv1.weight"):
        build_model(hrnet_cfg(TINY, pretrained=str(wrong)), is_train=True)


def with_stage(name, **changes):
    return dict(TINY, **{name: dict(TINY[name], **changes)})


@pytest.mark.parametrize("extra,message", [
    (dict(TINY, FINAL_CONV_KERNAL=1), r"MODEL\.EXTRA\.FINAL_CONV_KERNAL.*did you mean MODEL\.EXTRA\.FINAL_CONV_KERNEL"),
    ({k: v for k, v in TINY.items() if k != "STAGE3"}, r"MODEL\.EXTRA\.STAGE3"),
    (dict(TINY, STAGE2=[8, 16]), r"MODEL\.EXTRA\.STAGE2 = \[8, 16\]: expected a mapping"),
    (with_stage("STAGE3", NUM_BLOCK=[1, 1, 1]), r"MODEL\.EXTRA\.STAGE3\.NUM_BLOCK .*did you mean .*NUM_BLOCKS"),
    (with_stage("STAGE3", NUM_CHANNELS=[8, 16]), r"MODEL\.EXTRA\.STAGE3\.NUM_CHANNELS = \[8, 16\]: expected 3"),
    (with_stage("STAGE4", NUM_BLOCKS=[1, 1, 0, 1]), r"MODEL\.EXTRA\.STAGE4\.NUM_BLOCKS"),
    (with_stage("STAGE2", BLOCK="RESNET"), r"MODEL\.EXTRA\.STAGE2\.BLOCK = 'RESNET'"),
    (with_stage("STAGE2", FUSE_METHOD="CAT"), r"MODEL\.EXTRA\.STAGE2\.FUSE_METHOD = 'CAT'"),
    (with_stage("STAGE4", NUM_MODULES=0), r"MODEL\.EXTRA\.STAGE4\.NUM_MODULES = 0"),
    (dict(TINY, STAGE2={k: v for k, v in TINY["STAGE2"].items() if k != "NUM_BRANCHES"}),
     r"MODEL\.EXTRA\.STAGE2\.NUM_BRANCHES is missing"),
    (dict(TINY, FINAL_CONV_KERNEL=5), r"MODEL\.EXTRA\.FINAL_CONV_KERNEL = 5"),
    (dict(TINY, PRETRAINED_LAYERS="stage2"), r"MODEL\.EXTRA\.PRETRAINED_LAYERS"),
])
def test_malformed_extra_is_a_config_error_naming_the_key(extra, message):
    with pytest.raises(ConfigError, match=message):
        build_on_meta(hrnet_cfg(extra))


def test_input_sides_must_allow_the_fusion():
    model = build_on_meta(hrnet_cfg(TINY))
    with pytest.raises(ValueError, match="64x48 .*multiples of 32"):
        model(torch.empty(1, 3, 64, 48, device="meta"))


YAMLS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*", "hrnet", "*.yaml")))


def test_the_hrnet_experiment_yamls_are_there():
    names = {os.path.relpath(p, ROOT) for p in YAMLS}
    for width, size in [("w32", "256x192"), ("w32", "384x288"), ("w48", "256x192"), ("w48", "384x288")]:
        assert f"experiments/coco/hrnet/{width}_{size}_adam_lr1e-3.yaml" in names
        assert f"experiments/coco/hrnet/{width}_{size}_adam_lr1e-3_dark.yaml" in names
    for width in ("w32", "w48"):
        assert f"experiments/mpii/hrnet/{width}_256x256_adam_lr1e-3.yaml" in names
    assert "experiments/coco/hrnet/w32_256x192_adam_lr1e-3_offset_ofm.yaml" in names


@pytest.mark.parametrize("path", YAMLS, ids=[os.path.relpath(p, ROOT) for p in YAMLS])
def test_experiment_yaml_loads_and_builds(path):
    cfg = load_config(path)
    width, height = cfg.MODEL.IMAGE_SIZE
    out = meta_output(build_on_meta(cfg), (1, 3, height, width))
    maps = 3 * cfg.MODEL.NUM_JOINTS if cfg.MODEL.TARGET_TYPE == "offset" else cfg.MODEL.NUM_JOINTS
    assert list(out.shape) == [1, maps, cfg.MODEL.HEATMAP_SIZE[1], cfg.MODEL.HEATMAP_SIZE[0]]
    assert (cfg.TEST.BLUR_KERNEL > 0) == path.endswith("_dark.yaml")


def official_entry(path):
    """(family, official name) in official2d_experiment_configs.json for one of our YAMLs."""
    rel = os.path.relpath(path, ROOT)
    if rel.endswith("_dark.yaml"):
        return "darkpose", rel.replace("_dark.yaml", ".yaml")
    if rel.endswith("_offset_ofm.yaml"):
        return "udp_master", rel
    return "hrnet", rel


# UDP's YAML holds absolute paths of the authors' machines; ours the repo-relative ones.
REPLACED_PATHS = {"MODEL.PRETRAINED", "DATASET.ROOT", "TEST.COCO_BBOX_FILE"}


@needs_shared
@pytest.mark.parametrize("path", YAMLS, ids=[os.path.relpath(p, ROOT) for p in YAMLS])
def test_experiment_yaml_equals_the_official_one(path):
    with open(os.path.join(SPECS, "official2d_experiment_configs.json")) as f:
        family, name = official_entry(path)
        official = json.load(f)[family][name]
    cfg = load_config(path)

    def compare(node, ours, prefix):
        for key, value in node.items():
            full = prefix + key
            if isinstance(value, dict) and key != "EXTRA":
                compare(value, ours[key], full + ".")
            elif family == "udp_master" and full in REPLACED_PATHS:
                assert not ours[key].startswith("/"), full
            else:
                assert ours[key] == value, full

    compare(official, cfg, "")
