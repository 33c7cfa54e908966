"""``MODEL.EXTRA.LAYOUT mmpose`` for pose_hrnet / pose_resnet: mmpose's module tree
(``backbone.*`` + ``head.*``, mmpose ``pose_estimators/base.py:52-64``) around the same maths,
mmpose-0.x files (``keypoint_head.*``) read as mmpose 1.x reads them, and one-line errors
naming the key to set when a file is in the other layout.

The strict loads of the released layouts (``tests/specs/mmpose_*``) are in
``test_release_layouts.py``; here the outputs and the loader's rules on tiny nets."""
import os

import pytest
import torch

from conftest import ROOT, deterministic_state
from posezoo.config import load_config
from posezoo.models import CheckpointError, build_model, load_checkpoint

RES_YAML = os.path.join(ROOT, "experiments", "animal", "mmpose_res50_animalpose_256x256.yaml")
HR_YAML = os.path.join(ROOT, "experiments", "animal", "mmpose_hrnet_w32_ap10k_256x256.yaml")
# tiny versions of the two YAMLs (same trees, fewer channels)
TINY = {RES_YAML: ["MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.EXTRA.NUM_DECONV_FILTERS", "[16, 16, 16]"],
        HR_YAML: ["MODEL.EXTRA.STAGE2.NUM_CHANNELS", "[8, 16]", "MODEL.EXTRA.STAGE3.NUM_CHANNELS", "[8, 16, 32]",
                  "MODEL.EXTRA.STAGE4.NUM_CHANNELS", "[8, 16, 32, 64]", "MODEL.EXTRA.STAGE3.NUM_MODULES", "1",
                  "MODEL.EXTRA.STAGE4.NUM_MODULES", "1"]}
HEADS = {RES_YAML: ("deconv_layers.", "final_layer."), HR_YAML: ("final_layer.",)}


def tiny(yaml_file, layout):
    cfg = load_config(yaml_file, TINY[yaml_file] + ["MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
                                                    "MODEL.EXTRA.LAYOUT", layout])
    return build_model(cfg).eval()


def to_mmpose(state, heads, head="head."):
    """Official keys -> mmpose's: head modules under `head`, the rest under backbone. (written here,
    from mmpose's TopdownPoseEstimator / TopDown attributes)."""
    return {(head if k.startswith(heads) else "backbone.") + k: v for k, v in state.items()}


@pytest.mark.parametrize("yaml_file", [RES_YAML, HR_YAML], ids=["pose_resnet", "pose_hrnet"])
def test_mmpose_tree_is_the_official_net_renamed(yaml_file):
    official, mm = tiny(yaml_file, "official"), tiny(yaml_file, "mmpose")
    state = deterministic_state(official)
    official.load_state_dict(state, strict=True)
    expected = to_mmpose(state, HEADS[yaml_file])
    assert list(mm.state_dict()) == list(expected)  # same order: backbone first, then head
    load_checkpoint(mm, expected, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(mm(x), official(x))


@pytest.mark.parametrize("yaml_file", [RES_YAML, HR_YAML], ids=["pose_resnet", "pose_hrnet"])
def test_mmpose_0x_file_on_disk_loads_as_mmpose_1x_does(tmp_path, yaml_file):
    """A released-style file ({'meta', 'state_dict'} with keypoint_head.*) and a 1.x file that
    also holds the data preprocessor's mean/std both load strictly, every tensor in its place."""
    official, mm = tiny(yaml_file, "official"), tiny(yaml_file, "mmpose")
    state = deterministic_state(official, seed=2)
    old = to_mmpose(state, HEADS[yaml_file], head="keypoint_head.")
    assert any(k.startswith("keypoint_head.") for k in old)
    path = tmp_path / "released.pth"
    torch.save({"meta": {"mmpose_version": "0.14.0"}, "state_dict": old}, path)
    load_checkpoint(mm, str(path), strict=True)
    new = to_mmpose(state, HEADS[yaml_file])
    assert all(torch.equal(mm.state_dict()[k], v) for k, v in new.items())

    with_buffers = dict(new, **{"data_preprocessor.mean": torch.zeros(3, 1, 1),
                                "data_preprocessor.std": torch.ones(3, 1, 1)})
    load_checkpoint(tiny(yaml_file, "mmpose"), with_buffers, strict=True)


def test_rename_applies_only_to_mmpose_trees():
    """A model without head.* keys keeps the loader's plain strict check: a keypoint_head.* file
    does not fit the official tree and says which layout to set."""
    official, mm = tiny(RES_YAML, "official"), tiny(RES_YAML, "mmpose")
    old = to_mmpose(deterministic_state(official), HEADS[RES_YAML], head="keypoint_head.")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(official, old, strict=True)
    message = str(err.value)
    assert "\n" not in message and message.endswith("set MODEL.EXTRA.LAYOUT mmpose")

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(mm, deterministic_state(official), strict=True)
    message = str(err.value)
    assert "\n" not in message and message.endswith("set MODEL.EXTRA.LAYOUT official")


def test_other_mismatches_keep_the_generic_hint():
    mm = tiny(HR_YAML, "mmpose")
    other = tiny(RES_YAML, "mmpose")
    with pytest.raises(CheckpointError, match="another architecture or config"):
        load_checkpoint(mm, other.state_dict(), strict=True)


@pytest.mark.parametrize("yaml_file", [RES_YAML, HR_YAML], ids=["pose_resnet", "pose_hrnet"])
def test_unknown_layout_is_one_line(yaml_file):
    with pytest.raises(ValueError, match=r"MODEL.EXTRA.LAYOUT = 'mmpose1': expected one of official, mmpose$"):
        tiny(yaml_file, "mmpose1")


def test_mspn_released_0x_names_load_too():
    """The loader's rename is mmpose's, not this family's: an mmpose-0.x RSN-18 file (the model zoo's
    files are 2020 ones with keypoint_head.*) loads into ``rsn`` with LAYOUT mmpose."""
    cfg = load_config(os.path.join(ROOT, "experiments", "coco", "rsn", "rsn_18_256x192.yaml"),
                      ["MODEL.EXTRA.LAYOUT", "mmpose"])
    model = build_model(cfg)
    state = deterministic_state(model, seed=3)
    old = {("keypoint_head." + k[len("head."):] if k.startswith("head.") else k): v for k, v in state.items()}
    assert sum(k.startswith("keypoint_head.") for k in old) == 48
    load_checkpoint(model, old, strict=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
