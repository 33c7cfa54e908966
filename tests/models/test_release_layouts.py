"""Every released checkpoint loads, through the YAML a user runs it with, with strict=True.

One table, registry-parametrised: each official checkpoint spec (``../shared/specs/checkpoints``
and ``tests/specs``: keys, shapes, dtypes and parameter count of a released ``.pth``) is paired
with its experiment YAML, plus the one documented key that selects a second layout where
mmpose's conversion (``MODEL.EXTRA.LAYOUT mmpose``) or the first release (``original``)
names its tensors differently. The YAML is loaded verbatim, the registry builds the model
its ``MODEL.NAME`` names, and the spec's state dict goes through posezoo's checkpoint loader,
as ``TEST.MODEL_FILE`` does. A new spec without a row here fails
``test_every_spec_has_its_yaml``; a new model file gets its row by shipping a spec.

Family files keep what is specific to them (wrappings, outputs equal to the official
code, init); the strict-load check lives here once.
"""
import glob
import json
import os

import numpy as np
import pytest
import torch

from conftest import ROOT, SPECS, TESTS, assert_loads_spec_strictly, needs_shared
from posezoo.config import load_config
from posezoo.models import build_model, load_checkpoint
from posezoo.models.cpn import convert_tf_state

MMPOSE = ("MODEL.EXTRA.LAYOUT", "mmpose")
# spec file -> (experiment YAML, overrides)
RELEASES = {
    "coco_pose_resnet_50_256x192.json": ("coco/resnet/res50_256x192_d256x3_adam_lr1e-3.yaml", ()),
    "coco_pose_resnet_50_384x288.json": ("coco/resnet/res50_384x288_d256x3_adam_lr1e-3.yaml", ()),
    "coco_pose_resnet_101_256x192.json": ("coco/resnet/res101_256x192_d256x3_adam_lr1e-3.yaml", ()),
    "coco_pose_resnet_152_256x192.json": ("coco/resnet/res152_256x192_d256x3_adam_lr1e-3.yaml", ()),
    "mpii_pose_resnet_50_256x256.json": ("mpii/resnet/res50_256x256_d256x3_adam_lr1e-3.yaml", ()),
    "coco_pose_hrnet_w32_256x192.json": ("coco/hrnet/w32_256x192_adam_lr1e-3.yaml", ()),
    "coco_pose_hrnet_w32_384x288.json": ("coco/hrnet/w32_384x288_adam_lr1e-3.yaml", ()),
    "coco_pose_hrnet_w48_256x192.json": ("coco/hrnet/w48_256x192_adam_lr1e-3.yaml", ()),
    "coco_pose_hrnet_w48_384x288.json": ("coco/hrnet/w48_384x288_adam_lr1e-3.yaml", ()),
    "mpii_pose_hrnet_w32_256x256.json": ("mpii/hrnet/w32_256x256_adam_lr1e-3.yaml", ()),
    "udp_master_pose_hrnet_w32_256x192_offset.json": ("coco/hrnet/w32_256x192_adam_lr1e-3_offset_ofm.yaml", ()),
    "coco_lpn_50_256x192.json": ("coco/lpn/lpn50_256x192_gd256x2_gc.yaml", ()),
    "coco_lpn_101_256x192.json": ("coco/lpn/lpn101_256x192_gd256x2_gc.yaml", ()),
    "coco_lpn_152_256x192.json": ("coco/lpn/lpn152_256x192_gd256x2_gc.yaml", ()),
    "mpii_lpn_50_256x256.json": ("mpii/lpn/lpn50_256x256_gd256x2_gc.yaml", ()),
    "bearpaw_hg_s2_b1_mpii.json": ("mpii/hourglass/bearpaw_hg_s2_b1_256x256.yaml", ()),
    "bearpaw_hg_s8_b1_mpii.json": ("mpii/hourglass/bearpaw_hg_s8_b1_256x256.yaml", ()),
    "princeton_hg2_mpii.json": ("mpii/hourglass/princeton_hg2_256x256.yaml", ()),
    "princeton_hg8_mpii.json": ("mpii/hourglass/princeton_hg8_256x256.yaml", ()),
    "mspn_coco_1stg_256x192.json": ("coco/mspn/mspn_1stg_256x192.yaml", ()),
    "mspn_2xstg_coco_256x192.json": ("coco/mspn/mspn_2stg_256x192.yaml", ()),
    "mspn_coco_3stg_256x192.json": ("coco/mspn/mspn_3stg_256x192.yaml", ()),
    "mspn_coco_4stg_256x192.json": ("coco/mspn/mspn_4stg_256x192.yaml", ()),
    "mspn_coco_4stg_384x288.json": ("coco/mspn/mspn_4stg_384x288.yaml", ()),
    "mspn_mpii_2stg_256x256.json": ("mpii/mspn/mspn_2stg_256x256.yaml", ()),
    "mmpose_mspn50_coco_256x192.json": ("coco/mspn/mspn_1stg_256x192.yaml", MMPOSE),
    "mmpose_2xmspn50_coco_256x192.json": ("coco/mspn/mspn_2stg_256x192.yaml", MMPOSE),
    "mmpose_3xmspn50_coco_256x192.json": ("coco/mspn/mspn_3stg_256x192.yaml", MMPOSE),
    "mmpose_4xmspn50_coco_256x192.json": ("coco/mspn/mspn_4stg_256x192.yaml", MMPOSE),
    "rsn_18_coco_256x192.json": ("coco/rsn/rsn_18_256x192.yaml", ()),
    "rsn_4x18_coco_256x192.json": ("coco/rsn/rsn_4x18_256x192.yaml", ()),
    "mmpose_rsn18_coco_256x192.json": ("coco/rsn/rsn_18_256x192.yaml", MMPOSE),
    "mmpose_rsn50_coco_256x192.json": ("coco/rsn/rsn_50_256x192.yaml", MMPOSE),
    "mmpose_2xrsn50_coco_256x192.json": ("coco/rsn/rsn_2x50_256x192.yaml", MMPOSE),
    "mmpose_3xrsn50_coco_256x192.json": ("coco/rsn/rsn_3x50_256x192.yaml", MMPOSE),
    "cpn_pytorch_res50_256x192.json": ("coco/cpn/cpn_res50_256x192.yaml", ()),
    "cpn_pytorch_res50_384x288.json": ("coco/cpn/cpn_res50_384x288.yaml", ()),
    "cpn_pytorch_res101_384x288.json": ("coco/cpn/cpn_res101_384x288.yaml", ()),
    "cpn_tf_res50.json": ("coco/cpn/cpn_tf_res50_256x192.yaml", ()),  # TF variable lists, converted
    "cpn_tf_res101.json": ("coco/cpn/cpn_tf_res101_384x288.yaml", ()),
    "a2j_nyu_resnet50.json": ("nyu/a2j_resnet50_176x176.yaml", ()),
    "awr_nyu_resnet_18.json": ("nyu/awr_resnet_18_128x128.yaml", ()),
    "awr_nyu_hourglass_1.json": ("nyu/awr_hourglass_1_128x128.yaml", ()),
    "ccssl_hg_s4_b1_tigdog.json": ("animal/ccssl_hg_s4_b1_horse_256x256.yaml", ()),
    "cornernet_squeeze_coco.json": ("coco/cornernet/cornernet_squeeze_511x511_adam_lr2.5e-4.yaml", ()),
    "cornernet_lite_hg104_coco.json": ("coco/cornernet/cornernet_hg104_511x511_adam_lr2.5e-4.yaml", ()),
    "cornernet_hg104_coco.json": ("coco/cornernet/cornernet_hg104_511x511_adam_lr2.5e-4.yaml",
                                  ("MODEL.EXTRA.LAYOUT", "original")),
    # mmpose's model zoo: the released (0.x) files, keypoint_head.*, and the 1.x names, head.*
    "mmpose_hrnet_w32_animalpose_256x256.json": ("animal/mmpose_hrnet_w32_animalpose_256x256.yaml", ()),
    "mmpose_v1_hrnet_w32_animalpose_256x256.json": ("animal/mmpose_hrnet_w32_animalpose_256x256.yaml", ()),
    "mmpose_hrnet_w32_ap10k_256x256.json": ("animal/mmpose_hrnet_w32_ap10k_256x256.yaml", ()),
    "mmpose_v1_hrnet_w32_ap10k_256x256.json": ("animal/mmpose_hrnet_w32_ap10k_256x256.yaml", ()),
    "mmpose_res50_animalpose_256x256.json": ("animal/mmpose_res50_animalpose_256x256.yaml", ()),
    "mmpose_res50_ap10k_256x256.json": ("animal/mmpose_res50_ap10k_256x256.yaml", ()),
}
LOCAL_SPECS = os.path.join(TESTS, "specs")
# Above this size the tensors stay on the meta device: layout, dtypes and count are
# checked and the state dict is assigned, without allocating ~1.6 GB twice.
META_ONLY_PARAMS = 100_000_000


def mmpose_1x_name(key: str) -> str:
    """The name mmpose 1.x gives a 0.x key (``base.py:242-245``: 'keypoint_head' -> 'head'),
    written here independently of the loader's own rename."""
    return "head." + key[len("keypoint_head."):] if key.startswith("keypoint_head.") else key


def spec_path(name: str) -> str:
    local = os.path.join(LOCAL_SPECS, name)
    return local if os.path.exists(local) else os.path.join(SPECS, "checkpoints", name)


def final_output(model: torch.nn.Module, input_shape) -> torch.Tensor:
    """The last stage's last output of a forward on the meta device (shapes only)."""
    with torch.no_grad(), torch.device("meta"):
        out = model.eval()(torch.empty(input_shape))
    while isinstance(out, (list, tuple)):
        out = out[-1]
    return out


@needs_shared
def test_every_spec_has_its_yaml():
    specs = {os.path.basename(p) for d in (os.path.join(SPECS, "checkpoints"), LOCAL_SPECS)
             for p in glob.glob(os.path.join(d, "*.json"))}
    assert specs == set(RELEASES)
    assert all(os.path.isfile(os.path.join(ROOT, "experiments", y)) for y, _ in RELEASES.values())


@needs_shared
@pytest.mark.parametrize("name", sorted(RELEASES))
def test_release_loads_strictly_through_its_yaml(name):
    yaml_file, overrides = RELEASES[name]
    with open(spec_path(name)) as f:
        spec = json.load(f)
    cfg = load_config(os.path.join(ROOT, "experiments", yaml_file), list(overrides))
    with torch.device("meta"):
        model = build_model(cfg)
    if "variables" in spec:  # a TF checkpoint's variables, through tools/convert_tf_cpn.py's mapping
        shapes = {n: shape for n, shape, _ in spec["variables"]}
        state, unused = convert_tf_state(lambda n: np.zeros(shapes[n], np.float32), list(shapes),
                                         cfg.MODEL.EXTRA.NUM_LAYERS)
        load_checkpoint(model.to_empty(device="cpu"), state, strict=True)
        assert not unused and sum(p.numel() for p in model.parameters()) == spec["num_params"]
        return
    if "input_shape" in spec:  # the YAML's crop is the release's, and so is its final output
        assert list(cfg.MODEL.IMAGE_SIZE[::-1]) == spec["input_shape"][2:]
        assert list(final_output(model, spec["input_shape"]).shape) == spec["output_shape"]
    if spec["num_params"] <= META_ONLY_PARAMS:
        assert_loads_spec_strictly(model.to_empty(device="cpu"), spec, rename=mmpose_1x_name)
        return
    own = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert own == spec["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == spec["num_params"]
    with torch.device("meta"):
        state = {k: torch.empty(s, dtype=getattr(torch, d)) for k, s, d in spec["state_dict"]}
    model.load_state_dict(state, strict=True, assign=True)
