"""MODEL.PRETRAINED for mspn/rsn/cpn: a torchvision-layout ImageNet ResNet file
mapped onto the official (and mmpose) backbone key names."""
import os

import pytest
import torch

from conftest import ROOT
from posezoo.config import load_config
from posezoo.models import build_model
from posezoo.models.checkpoint import CheckpointError

MSPN = os.path.join(ROOT, "experiments/coco/mspn/mspn_2stg_256x192.yaml")
RSN = os.path.join(ROOT, "experiments/coco/rsn/rsn_18_256x192.yaml")
CPN = os.path.join(ROOT, "experiments/coco/cpn/cpn_res50_256x192.yaml")


def torchvision_resnet(depth: int) -> dict:
    """A torchvision ``resnet{depth}().state_dict()`` layout (posezoo's
    pose_resnet backbone has torchvision's names and shapes; torchvision is not
    a dependency): conv1, bn1, layer1-4 with num_batches_tracked, fc."""
    torch.manual_seed(depth)
    cfg = load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.EXTRA", f"{{NUM_LAYERS: {depth}}}",
                             "MODEL.INIT_WEIGHTS", "False"])
    state = {k: v for k, v in build_model(cfg, is_train=False).state_dict().items()
             if not k.startswith(("deconv", "final"))}
    for k, v in state.items():  # torch's conv init; BN parameters and statistics away from (1, 0)
        if v.is_floating_point() and v.dim() == 1:
            v.copy_(torch.rand_like(v) * 0.5 + 0.5 if k.endswith(("weight", "running_var"))
                    else torch.randn_like(v) * 0.1)
    width = 512 if depth < 50 else 2048
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, width), torch.randn(1000)
    assert len(state) == {18: 122, 50: 320}[depth]  # len(torchvision.models.resnet{18,50}().state_dict())
    return state


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("imagenet") / "resnet50.pth"
    state = torchvision_resnet(50)
    torch.save(state, path)
    return str(path), state


def _build(path, yaml_path, opts=()):
    return build_model(load_config(yaml_path, ["MODEL.PRETRAINED", path, *opts]), is_train=True)


@pytest.mark.parametrize("layout", ["official", "mmpose"])
def test_mspn_takes_the_imagenet_resnet_in_every_stage(resnet50_file, layout):
    path, state = resnet50_file
    model = _build(path, MSPN, ["MODEL.EXTRA.LAYOUT", layout, "DATASET.COLOR_RGB", "True"])
    own = model.state_dict()
    names = model.imagenet_names()
    # stem: 5 tensors; per stage the other 52 convs + 52 BNs x 4 tensors (ResNet-50 without fc and counters)
    assert len(names) == 5 + 2 * 260 and set(names.values()) == {k for k in state if not k.startswith("fc.")
                                                                 and "num_batches" not in k}
    for key, tv in names.items():
        assert torch.equal(own[key], state[tv]), key
    prefix = "stage1.downsample." if layout == "official" else "backbone.multi_stage_mspn.1.downsample."
    assert torch.equal(own[prefix + ("layer3.5.conv_bn_relu2.conv.weight" if layout == "official"
                                     else "layer3.5.conv2.weight")], state["layer3.5.conv2.weight"])
    if layout == "official":  # the biased convs become the ImageNet convs: bias 0
        assert float(own["top.conv.conv.bias"].abs().max()) == 0
        assert float(own["stage0.downsample.layer4.2.conv_bn_relu3.conv.bias"].abs().max()) == 0
        assert float(own["stage0.upsample.up3.u_skip.conv.bias"].abs().max()) > 0  # not a backbone conv

    # the first stage's body computes the ImageNet ResNet: same features at every layer
    reference = build_model(load_config(None, ["MODEL.NAME", "pose_resnet", "MODEL.EXTRA", "{NUM_LAYERS: 50}",
                                               "MODEL.INIT_WEIGHTS", "False"]), is_train=False)
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
    model.eval()
    reference.eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        body = model.stages()[0].downsample
        feats = body(model.stem()(x), None, None)[::-1]
        y = reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))
        for i, feat in enumerate(feats):
            y = getattr(reference, f"layer{i + 1}")(y)
            assert float((feat - y).abs().max()) <= 1e-5 * float(y.abs().max()), i


def test_bgr_input_reverses_the_stem_filters(resnet50_file):
    """MSPN/RSN read cv2's BGR (COLOR_RGB false, the official YAMLs): conv1 of
    the BGR model on a BGR image equals torchvision's conv1 on the RGB one."""
    path, state = resnet50_file
    model = _build(path, MSPN)
    stem = model.state_dict()["top.conv.conv.weight"]
    assert torch.equal(stem, state["conv1.weight"].flip(1))
    rgb = torch.randn(1, 3, 8, 8)
    assert torch.allclose(torch.nn.functional.conv2d(rgb.flip(1), stem),
                          torch.nn.functional.conv2d(rgb, state["conv1.weight"]), atol=1e-5)


def test_rsn_takes_the_stem_and_shortcuts_and_reports_the_rest(tmp_path, caplog):
    state = torchvision_resnet(18)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    with caplog.at_level("INFO", logger="posezoo.models.mspn"):
        model = _build(str(path), RSN, ["DATASET.COLOR_RGB", "True"])
    own = model.state_dict()
    names = model.imagenet_names(blocks=False)
    # stem 5 + shortcuts of layer2-4 (layer1 of RSN-18 keeps 64 channels: none) x (1 conv + 4 BN)
    assert len(names) == 5 + 3 * 5
    for key, tv in names.items():
        assert torch.equal(own[key], state[tv]), key
    assert torch.equal(own["stage0.downsample.layer3.0.downsample.conv.weight"], state["layer3.0.downsample.0.weight"])
    line = [r.getMessage() for r in caplog.records if "ImageNet" in r.getMessage()]
    # the 122 file keys less 20 counters, less the 20 it took: 82 unused (the basic blocks' convs, fc)
    assert len(line) == 1 and "20 tensors into the stem and 1 stage bodies; 82 file keys unused" in line[0]


def test_imagenet_file_of_another_depth_is_one_clear_error(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision_resnet(18), path)
    with pytest.raises(CheckpointError, match=r"layer1\.0\.conv3|another depth"):
        _build(str(path), MSPN)
    with pytest.raises(CheckpointError, match="MODEL.PRETRAINED file not found: .*none.pth"):
        _build(str(tmp_path / "none.pth"), MSPN)
    torch.save({"head.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="no torchvision ResNet key"):
        _build(str(tmp_path / "other.pth"), RSN)


def test_cpn_takes_the_imagenet_resnet(resnet50_file):
    path, state = resnet50_file
    own = _build(path, CPN).state_dict()
    loaded = [k for k in state if not k.startswith("fc.")]
    assert len(loaded) == 318
    for key in loaded:
        assert torch.equal(own["resnet." + key], state[key]), key
