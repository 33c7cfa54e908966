"""MSPN, RSN and CPN (models/mspn.py, rsn.py, cpn.py): every released checkpoint
layout loads strictly, and the outputs equal the official model code.

The golden values were computed by the official modules (megvii-detection/MSPN
a84f750 ``exps/mspn.2xstg.coco/network.py``; caiyuanhao1998/RSN ca3ba3a
``exps/RSN18.coco``, ``exps/4XRSN18.coco`` and its ``PRM`` class; GengDavid/
pytorch-cpn 48696a9 ``networks/network.py``) loaded with ``deterministic_state``
(seed 0) on ``torch.randn(2, 3, 64, 64)`` from a Generator seeded 1, at 16x16
heatmaps. Our models matched them bit for bit (max |diff| = 0); per map the
tests hold the sum, the absolute sum and ``map[1, 3, 5, 2:6]``, stage-major,
coarsest unit first (CPN: GlobalNet C5..C2, then RefineNet).
"""
import json

import pytest
import torch

from conftest import deterministic_state
from posezoo.config import ConfigError, load_config
from posezoo.models import build_model

def model_cfg(name, extra, joints=17, hm=(16, 16), *opts):
    return load_config(None, ["MODEL.NAME", name, "MODEL.NUM_JOINTS", str(joints), "MODEL.HEATMAP_SIZE",
                              json.dumps(list(hm)), "MODEL.IMAGE_SIZE", json.dumps([4 * hm[0], 4 * hm[1]]),
                              "MODEL.EXTRA", json.dumps(extra), *opts])


def build_empty(cfg):
    """The model without its (slow, here irrelevant) init: every tensor is loaded after."""
    with torch.device("meta"):
        model = build_model(cfg)
    return model.to_empty(device="cpu").eval()


def official_input():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def assert_golden(maps, golden):
    assert len(maps) == len(golden)
    for m, (total, abs_total, values) in zip(maps, golden):
        assert m.shape == (2, 17, 16, 16)
        m = m.double()
        assert float(m.sum()) == pytest.approx(total, abs=1e-5 * abs_total)
        assert float(m.abs().sum()) == pytest.approx(abs_total, rel=1e-5)
        assert m[1, 3, 5, 2:6].tolist() == pytest.approx(values, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("tag,name,extra", [
    ("mspn_1stg", "mspn", {"NUM_STAGES": 1}),
    ("mspn_2stg", "mspn", {"NUM_STAGES": 2}),
    ("rsn18", "rsn", {"NUM_STAGES": 1}),
    ("rsn_4x18", "rsn", {"NUM_STAGES": 4}),
    ("cpn50", "cpn", {"NUM_LAYERS": 50}),
    ("cpn101", "cpn", {"NUM_LAYERS": 101}),
])
def test_outputs_equal_official_code(tag, name, extra):
    model = build_empty(model_cfg(name, extra))
    model.load_state_dict(deterministic_state(model, seed=0))
    with torch.no_grad():
        assert_golden(model(official_input()), GOLDEN[tag])


def test_prm_equals_official_class():
    from posezoo.models.rsn import PRM

    prm = PRM(17).eval()
    prm.load_state_dict(deterministic_state(prm, seed=2))
    with torch.no_grad():
        out = prm(torch.randn(2, 17, 16, 12, generator=torch.Generator().manual_seed(3)))
    total, abs_total, values = GOLDEN["prm"][0]
    assert float(out.double().sum()) == pytest.approx(total, abs=1e-5 * abs_total)
    assert float(out.double().abs().sum()) == pytest.approx(abs_total, rel=1e-5)
    assert out[1, 3, 5, 2:6].tolist() == pytest.approx(values, rel=1e-4, abs=1e-6)


def official_to_mmpose(key: str, family: str) -> str:
    """The rename in MULTISTAGE_NOTES.md section 1 (official -> mmpose keys)."""
    key = key.replace("top.conv.", "backbone.top.top.0.", 1) if key.startswith("top.") else key
    if key.startswith("stage"):
        stage, rest = key[len("stage"):].split(".", 1)
        parts = rest.split(".")
        if parts[0] == "upsample" and parts[2] in ("res_conv1", "res_conv2"):
            unit = int(parts[1][2:]) - 1
            layer = "0" if parts[2] == "res_conv1" else "1"
            return ".".join(["head.predict_layers", str(4 * int(stage) + unit), "conv_layers", layer] + parts[3:])
        names = {"u_skip": "in_skip", "skip1": "out_skip1", "skip2": "out_skip2", "conv_bn_relu3": "conv_bn3"}
        if family == "mspn":
            names.update({"conv_bn_relu1": "conv1", "conv_bn_relu2": "conv2"})
        parts = [names.get(p, p) for p in parts]
        if family == "mspn" and parts[-2] == "bn" and parts[-3] in ("conv1", "conv2", "conv_bn_relu3"):
            parts = parts[:-3] + ["bn" + parts[-3][-1]] + parts[-1:]
        key = ".".join([f"backbone.multi_stage_{family}", stage] + parts)
    return key


@pytest.mark.parametrize("name,extra", [("mspn", {"NUM_STAGES": 2}), ("rsn", {"NUM_STAGES": 2})])
def test_mmpose_layout_equals_official_with_zero_biases(name, extra):
    """mmpose's bias-free tree computes the official maps when the official
    conv biases are 0 (the notes' cross-check of mmpose's conversion)."""
    official = build_empty(model_cfg(name, extra))
    mmpose = build_empty(model_cfg(name, dict(extra, LAYOUT="mmpose")))
    state = deterministic_state(official, seed=4)
    state = {k: torch.zeros_like(v) if k.endswith("conv.bias") else v for k, v in state.items()}
    official.load_state_dict(state)
    renamed = {}
    for k, v in state.items():
        if k.endswith("conv.bias"):
            continue
        new = official_to_mmpose(k, name)
        if name == "mspn":
            new = new.replace(".conv3.conv.", ".conv3.").replace(".conv1.conv.", ".conv1.")
            new = new.replace(".conv2.conv.", ".conv2.").replace(".conv_bn3.conv.", ".conv3.")
            new = new.replace(".conv_bn3.bn.", ".bn3.")
        renamed[new] = v
    mmpose.load_state_dict(renamed, strict=True)
    x = official_input()
    with torch.no_grad():
        for a, b in zip(official(x), mmpose(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_layout_and_stage_errors():
    with pytest.raises(ValueError, match="LAYOUT"):
        build_model(model_cfg("mspn", {"LAYOUT": "caffe"}))
    with pytest.raises(ValueError, match="NUM_STAGES"):
        build_model(model_cfg("rsn", {"NUM_STAGES": 0}))
    with pytest.raises(ConfigError, match="NUM_STAGES"):
        build_model(model_cfg("mspn", {"NUM_STAGE": 2}))
    with pytest.raises(ValueError, match="NUM_LAYERS"):
        build_model(model_cfg("cpn", {"NUM_LAYERS": 34}))


GOLDEN = {
    "mspn_1stg": [
        (76.6344, 1025.594, [-0.0225141, -0.0218896, -0.0212652, -0.0206408]),
        (-245.322, 942.2044, [-0.147211, -0.137, -0.126789, -0.116577]),
        (343.861, 1222.685, [0.0879947, 0.0938835, 0.0965113, 0.0975317]),
        (220.079, 892.0473, [0.178794, 0.213745, 0.21911, 0.197569]),
    ],
    "mspn_2stg": [
        (410.037, 682.0157, [-0.0453913, -0.0433848, -0.0413784, -0.0393719]),
        (89.3384, 777.9968, [0.023366, 0.0155252, 0.00768445, -0.000156339]),
        (265.479, 982.7674, [-0.0809987, -0.0802132, -0.0803178, -0.0802209]),
        (-387.028, 1049.523, [0.00159916, 0.0234674, 0.016698, 0.0132635]),
        (101.843, 698.6126, [0.00568648, 0.00297008, 0.00025369, -0.0024627]),
        (-247.465, 1384.348, [0.179429, 0.177687, 0.175945, 0.174203]),
        (-280.855, 918.489, [-0.0295581, -0.0309014, -0.0312247, -0.0311311]),
        (346.327, 945.5145, [0.118158, 0.118874, 0.119661, 0.117525]),
    ],
    "rsn18": [
        (62.3779, 895.3145, [-0.11961, -0.120611, -0.121612, -0.122612]),
        (-378.634, 965.1177, [0.127145, 0.114786, 0.102426, 0.0900663]),
        (-310.78, 819.6052, [0.13717, 0.143651, 0.147512, 0.146961]),
        (79.7505, 1176.859, [0.0903454, 0.0636482, 0.098315, 0.110954]),
    ],
    "rsn_4x18": [
        (84.5919, 810.6444, [0.257089, 0.256719, 0.256349, 0.255979]),
        (-145.869, 1234.002, [-0.129199, -0.124386, -0.119572, -0.114759]),
        (91.6737, 819.9791, [0.00195935, -0.00159836, -0.00417621, -0.00356934]),
        (-774.899, 1195.751, [0.0565102, 0.0335897, 0.0339045, 0.0401278]),
        (-141.896, 627.0891, [-0.0146208, -0.0176078, -0.0205949, -0.023582]),
        (58.6099, 1018.636, [-0.0575012, -0.0540786, -0.0506559, -0.0472333]),
        (105.143, 815.0496, [-0.0985964, -0.101187, -0.100426, -0.0982471]),
        (219.104, 828.5813, [-0.187228, -0.177631, -0.168979, -0.171108]),
        (-292.883, 857.0185, [-0.0770574, -0.0783076, -0.0795579, -0.0808081]),
        (440.138, 817.4214, [0.141768, 0.134882, 0.127996, 0.121111]),
        (-43.2354, 773.9323, [0.0658982, 0.0659249, 0.0651165, 0.0660899]),
        (174.7, 1148.45, [-0.201071, -0.202039, -0.203464, -0.206164]),
        (479.779, 888.0471, [0.0689965, 0.0667994, 0.0646023, 0.0624051]),
        (-389.047, 736.7127, [0.0437177, 0.0538383, 0.063959, 0.0740796]),
        (-193.788, 886.6045, [0.0743891, 0.0727704, 0.0732637, 0.0731979]),
        (270.556, 660.6561, [0.107052, 0.107442, 0.107027, 0.10692]),
    ],
    "prm": [
        (1730.53, 1730.525, [0, 0, 1.66136, 0.0778226]),
    ],
    "cpn50": [
        (110.854, 884.9044, [0.0197462, 0.0216525, 0.0235587, 0.025465]),
        (164.855, 769.7653, [-0.0777006, -0.0622388, -0.0467769, -0.0313151]),
        (133.737, 1008.682, [0.0051013, 0.00489344, 0.0056835, 0.00513488]),
        (-303.375, 904.9896, [-0.145328, -0.138982, -0.155512, -0.159985]),
        (48.6748, 818.4401, [-0.0515158, -0.0526249, -0.0568231, -0.0611762]),
    ],
    "cpn101": [
        (44.8717, 706.6162, [-0.0666552, -0.0630784, -0.0595016, -0.0559248]),
        (30.9478, 722.2581, [-0.0335355, -0.015409, 0.00271751, 0.020844]),
        (-315.638, 739.8008, [-0.193752, -0.193922, -0.192673, -0.192671]),
        (96.9908, 949.8669, [-0.120976, -0.122949, -0.122071, -0.120482]),
        (-298.31, 1027.449, [-0.135433, -0.133463, -0.136301, -0.129386]),
    ],
}
