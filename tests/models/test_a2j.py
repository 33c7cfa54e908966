"""A2J: released checkpoint layout, anchors, anchor voting, the release's loss,
and golden numbers computed by the official code (zhangboshen/A2J @4c332f0,
src_train/{model,resnet,anchor}.py run on CPU)."""
import json

import numpy as np
import pytest
import torch
from conftest import (
    deterministic_state,
)
from posezoo.codecs import build_codec
from posezoo.codecs.a2j import A2JCodec, anchor_grid
from posezoo.config import load_config
from posezoo.core.loss import A2JLoss, build_loss
from posezoo.models import build_model
from posezoo.models.a2j import A2J

K = 14
NUM_PARAMS = 44_736_424  # the released NYU.pth, ImageNet fc included

# Golden values of the official code: A2J_model(num_classes=14) with
# deterministic_state(seed=0), the three head output convs' weights scaled by
# OUTPUT_SCALE (so the votes are far from uniform), input randn(1, 1, 176, 176)
# from a generator seeded 1; labels from a generator seeded 2. Decoded joints
# are post_process's output with (row, col) swapped to (u, v); the loss is
# A2J_loss(..., spatialFactor=0.5) combined as Cls_loss + 3 * Reg_loss.
OUTPUT_SCALE = {"classificationModel.output.weight": 40.0, "regressionModel.output.weight": 40.0,
                "DepthRegressionModel.output.weight": 400.0}
GOLDEN_JOINTS = {0: (98.541504, 89.045746, 10.568851), 5: (92.106598, 87.189102, -17.704922),
                 13: (83.839638, 94.860939, 44.882893)}
GOLDEN_LOSS = 182.1101531982422
GOLDEN_TERMS = (30.526912689208984, 50.52774429321289)  # release's Cls_loss, Reg_loss


def a2j_cfg(image_size=(176, 176), num_joints=K, *opts):
    return load_config(None, ["MODEL.NAME", "a2j", "MODEL.NUM_JOINTS", str(num_joints), "MODEL.IMAGE_SIZE",
                              json.dumps(list(image_size)), "MODEL.TARGET_TYPE", "a2j", "LOSS.NAME", "A2JLoss",
                              "MODEL.PRETRAINED", "''", *opts])


@pytest.fixture(scope="module")
def golden_run():
    model = A2J(K).eval()
    state = deterministic_state(model, seed=0)
    for key, scale in OUTPUT_SCALE.items():
        state[key] = state[key] * scale
    model.load_state_dict(state, strict=True)
    x = torch.randn(1, 1, 176, 176, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    label = torch.cat([torch.rand(1, K, 2, generator=g) * 176, torch.randn(1, K, 1, generator=g) * 50], 2)
    with torch.no_grad():
        out = model(x)
    return model, x, out, label


def test_outputs_follow_the_documented_layout(golden_run):
    model, _, out, _ = golden_run
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS
    assert out["logits"].shape == (1, 11 * 11 * 16, K)
    assert out["offsets"].shape == (1, 11 * 11 * 16, K, 2)
    assert out["depth"].shape == (1, 11 * 11 * 16, K)
    layer4 = model.Backbone.model.layer4
    assert layer4[0].conv2.stride == (1, 1) and layer4[0].conv2.dilation == (1, 1)
    assert layer4[1].conv2.dilation == (2, 2) and layer4[2].conv2.padding == (2, 2)


def test_decode_and_loss_equal_the_official_code(golden_run):
    _, x, out, label = golden_run
    cfg = a2j_cfg()
    joints = build_codec(cfg).decode_crop(out, x)
    assert joints.dtype == torch.float32 and joints.shape == (1, K, 3)
    for k, expected in GOLDEN_JOINTS.items():
        np.testing.assert_allclose(joints[0, k].numpy(), expected, rtol=0, atol=2e-4)
    criterion = build_loss(cfg)
    loss = criterion(out, label, torch.ones(1, K, 1))
    np.testing.assert_allclose(loss.item(), GOLDEN_LOSS, rtol=1e-5)
    surround, joint_xy, joint_depth = criterion.components(out, label, torch.ones(1, K, 1))
    np.testing.assert_allclose(surround.item(), GOLDEN_TERMS[0], rtol=1e-5)
    np.testing.assert_allclose(0.5 * joint_xy.item() + joint_depth.item(), GOLDEN_TERMS[1], rtol=1e-5)


def test_anchors_are_the_release_lattice_in_its_order():
    anchors = anchor_grid(176, 176)
    assert anchors.shape == (1936, 2)
    # first cell (column 0, row 0): 4x4 lattice row by row, as (x, y)
    lattice = [[x, y] for y in (2, 6, 10, 14) for x in (2, 6, 10, 14)]
    assert anchors[:16].tolist() == lattice
    assert anchors[16].tolist() == [2, 18]       # next: cell row 1 of column 0
    assert anchors[11 * 16].tolist() == [18, 2]  # column 1 starts after 11 rows
    cell = (anchors // 16).long()
    assert torch.equal(anchors % 16, torch.tensor(lattice * 121, dtype=torch.float32))
    assert torch.equal(cell[::16, 0] * 11 + cell[::16, 1], torch.arange(121))
    wide = anchor_grid(64, 32)
    assert wide.shape == (4 * 2 * 16, 2) and wide[:, 0].max() == 62 and wide[:, 1].max() == 30


def test_voting_by_hand():
    codec = A2JCodec((32, 48), 3)
    a = len(codec.anchors)
    g = torch.Generator().manual_seed(0)
    offsets, depth = torch.randn(2, a, 3, 2, generator=g) * 5, torch.randn(2, a, 3, generator=g) * 30
    inputs = torch.zeros(2, 1, 48, 32)
    # one anchor takes all the weight: its position + offset, its depth
    picks = torch.tensor([[7, 0, a - 1], [50, 13, 3]])
    logits = torch.full((2, a, 3), -1e4).scatter(1, picks[:, None, :], 0.0)
    out = {"logits": logits, "offsets": offsets, "depth": depth}
    joints = codec.decode_crop(out, inputs)
    for n in range(2):
        for k in range(3):
            i = picks[n, k]
            expected = [*(codec.anchors[i] + offsets[n, i, k]).tolist(), depth[n, i, k].item()]
            np.testing.assert_allclose(joints[n, k].numpy(), expected, atol=1e-4)
    # equal weights: the mean vote
    out["logits"] = torch.zeros(2, a, 3)
    mean = torch.cat([(codec.anchors[None, :, None] + offsets).mean(1), depth.mean(1).unsqueeze(2)], 2)
    np.testing.assert_allclose(codec.decode_crop(out, inputs).numpy(), mean.numpy(), atol=1e-4)
    assert torch.equal(out["logits"], torch.zeros(2, a, 3))  # input untouched


def test_loss_by_hand():
    """One anchor per joint: surround = smooth L1 of the anchor, xy = smooth L1
    of anchor + offset, depth = plain L1 (the release's choice), factors 0.5, 3."""
    criterion = A2JLoss((16, 16))
    anchors = criterion.anchors
    logits = torch.full((1, 16, 2), -1e4)
    logits[0, 5, 0] = logits[0, 0, 1] = 0.0            # anchors (6, 6) and (2, 2)
    offsets = torch.zeros(1, 16, 2, 2)
    offsets[0, 5, 0] = torch.tensor([0.5, 3.0])
    offsets[0, 0, 1] = torch.tensor([-1.0, 0.0])
    depth = torch.zeros(1, 16, 2)
    depth[0, 5, 0], depth[0, 0, 1] = 10.0, -4.0
    target = torch.tensor([[[6.0, 8.0, 12.0], [1.5, 2.0, -4.0]]])
    assert anchors[5].tolist() == [6, 6] and anchors[0].tolist() == [2, 2]

    def sl1(d):
        d = abs(d)
        return 0.5 * d * d if d <= 1 else d - 0.5
    surround = (sl1(0) + sl1(2) + sl1(0.5) + sl1(0)) / 4
    joint_xy = (sl1(0.5) + sl1(1) + sl1(0.5) + sl1(0)) / 4
    joint_depth = (2 + 0) / 2
    out = {"logits": logits, "offsets": offsets, "depth": depth}
    loss = criterion(out, target, torch.ones(1, 2, 1))
    assert loss.item() == pytest.approx(surround + 3 * (0.5 * joint_xy + joint_depth), rel=1e-6)
    # a zero target weight drops the joint from every term (the mean keeps its count)
    weighted = criterion(out, target, torch.tensor([[[1.0], [0.0]]]))
    assert weighted.item() == pytest.approx((sl1(0) + sl1(2)) / 4 + 3 * (0.5 * (sl1(0.5) + sl1(1)) / 4 + 2 / 2),
                                            rel=1e-6)


def test_encode_passes_joints_through():
    codec = build_codec(a2j_cfg())
    assert codec.prediction == "keypoints3d" and not codec.supports_flip
    joints = np.random.default_rng(0).random((K, 3)) * 100
    target, weight = codec.encode(joints, np.zeros((1, 176, 176), np.float32))
    assert target.dtype == np.float32 and np.array_equal(target, joints.astype(np.float32))
    assert weight.dtype == np.float32 and weight.shape == (K, 1) and (weight == 1).all()
    with pytest.raises(ValueError, match=r"expected \(14, 3\)"):
        codec.encode(joints[:, :2], None)
    with pytest.raises(TypeError, match="output dict"):
        codec.decode_crop(torch.zeros(1, 1936, K), torch.zeros(1, 1, 176, 176))
    with pytest.raises(ValueError, match="MODEL.IMAGE_SIZE"):
        codec.decode_crop({"logits": torch.zeros(1, 16, K), "offsets": torch.zeros(1, 16, K, 2),
                      "depth": torch.zeros(1, 16, K)}, torch.zeros(1, 1, 176, 176))


def test_image_size_must_be_a_multiple_of_16():
    with pytest.raises(ValueError, match=r"MODEL.IMAGE_SIZE = \[170, 176\].*multiples of 16"):
        build_model(a2j_cfg((170, 176)))
    with pytest.raises(ValueError, match="multiples of 16"):
        build_codec(a2j_cfg((176, 100)))


def test_pretrained_backbone_is_loaded(tmp_path):
    g = torch.Generator().manual_seed(0)
    imagenet = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=g),
                "layer4.2.conv2.weight": torch.randn(512, 512, 3, 3, generator=g),
                "fc.bias": torch.randn(1000, generator=g)}
    path = str(tmp_path / "resnet50.pth")
    torch.save(imagenet, path)
    model = build_model(a2j_cfg((32, 32), 3, "MODEL.PRETRAINED", path), is_train=True)
    backbone = model.Backbone.model.state_dict()
    assert all(torch.equal(backbone[k], v) for k, v in imagenet.items())


def test_a_gradient_step_reduces_the_loss():
    torch.manual_seed(0)
    cfg = a2j_cfg((32, 32), 3)
    model, criterion = build_model(cfg, is_train=True).train(), build_loss(cfg)
    x = torch.randn(2, 1, 32, 32)
    target = torch.cat([torch.rand(2, 3, 2) * 32, torch.randn(2, 3, 1) * 20], 2)
    weight = torch.ones(2, 3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3.5e-4)
    losses = []
    for _ in range(3):
        loss = criterion(model(x), target, weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
