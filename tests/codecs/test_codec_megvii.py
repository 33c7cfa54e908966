"""codecs/megvii.py (CPN/MSPN/RSN targets, loss and test-time decode) against
the official functions: MSPN ``JointsDataset.generate_heatmap``,
``exps/mspn.2xstg.coco/test.py:get_results`` and ``network.py:_calculate_loss``
(a84f750); pytorch-cpn ``test.py:90-121`` and ``train.py:86-128`` (48696a9).
The golden numbers were computed by those functions on the inputs rebuilt here
(decode: equal to 1e-12 px; encode: to float32 rounding; losses: to 1e-7)."""
import cv2
import numpy as np
import pytest
import torch

from posezoo.codecs import build_codec
from posezoo.codecs.megvii import MegviiHeatmapCodec, MultiOutputL2Loss, gaussian_blur
from posezoo.config import load_config

ENC_SUMS = [65513.898, 43093.727, 33732.867, 24986.516, 15066.25]
ENC_WEIGHT = [1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0]
DEC_PREDS_SUM = 13395.0
DEC_SCORES_SUM = 75.60033123539944
DEC_PREDS = [[[-10.0, -30.0], [150.0, 85.0], [115.0, 10.0], [85.0, 10.0]],
             [[45.0, 77.5], [42.5, 25.0], [-5.0, -15.0], [77.5, 45.0]],
             [[480.0, 230.0], [480.0, 170.0], [320.0, 290.0], [130.0, 420.0]]]
DEC_SCORES = [[0.41609, 1.513439, 1.501894, 1.564188], [1.553096, 1.532506, 0.5, 1.490228],
              [1.485016, 1.455649, 1.599913, 1.557864]]
CPN_PREDS_SUM = 13697.5
CPN_SCORES_SUM = 71.82168465408624
CPN_PREDS = [[[30.0, 155.0], [130.0, 85.0], [110.0, 25.0], [90.0, 25.0]],
             [[42.5, 75.0], [42.5, 25.0], [85.0, 27.5], [75.0, 42.5]],
             [[440.0, 230.0], [450.0, 180.0], [320.0, 290.0], [160.0, 410.0]]]
MSPN_LOSS = 44264.07421875
CPN_LOSS = 39852.265625

CENTERS = torch.tensor([[100., 120.], [50., 60.], [300., 200.]], dtype=torch.float64)
SCALES = torch.tensor([[1.2, 1.6], [0.6, 0.8], [2.4, 3.2]], dtype=torch.float64)


def encode_inputs():
    rng = np.random.default_rng(5)
    joints = np.c_[rng.uniform(-3, 50, 17), rng.uniform(-3, 66, 17), np.zeros(17)].astype(np.float32)
    vis = (rng.uniform(size=17) > 0.2).astype(np.float32)[:, None].repeat(3, 1)
    return joints, vis


def decode_maps():
    """(3, 17, 16, 12) heatmap-like maps: a peak at a random sub-pixel point plus noise."""
    g = torch.Generator().manual_seed(7)
    maps = torch.rand(3, 17, 16, 12, generator=g) * 40
    cy = torch.rand(3, 17, 1, 1, generator=g) * 15
    cx = torch.rand(3, 17, 1, 1, generator=g) * 11
    maps = maps + 255 * torch.exp(-((torch.arange(16).view(16, 1) - cy) ** 2
                                    + (torch.arange(12).view(1, 12) - cx) ** 2) / 6)
    return maps


def test_encode_equals_official_generate_heatmap():
    joints, vis = encode_inputs()
    codec = MegviiHeatmapCodec([48, 64], [12, 16], [15, 11, 9, 7, 5])
    targets, weight = codec.encode(joints, vis)
    assert weight[:, 0].tolist() == ENC_WEIGHT  # unlabelled or outside the crop -> 0
    for t, total in zip(targets, ENC_SUMS):
        assert t.shape == (17, 16, 12) and t.dtype == np.float32
        assert float(t.sum()) == pytest.approx(total, rel=1e-6)
        assert np.all(t[weight[:, 0] == 0] == 0)
    # away from the border (cv2 reflects the impulse itself near it) a map is cv2's outer-product kernel scaled to 255
    one, _ = codec.encode(np.array([[25.0, 33.9, 0]], np.float32), np.ones((1, 3), np.float32))
    x, y = 6, 8
    g = cv2.getGaussianKernel(5, 0).ravel()
    expect = np.outer(g, g) / g[2] ** 2 * 255
    np.testing.assert_allclose(one[4][0, y - 2:y + 3, x - 2:x + 3], expect, rtol=1e-5)
    assert one[4][0].sum() == pytest.approx(expect.sum(), rel=1e-5)


def test_decode_equals_official_get_results():
    codec = MegviiHeatmapCodec([48, 64], [12, 16], [5], blur=5)
    maps = decode_maps()
    maps[0, 0] = -maps[0, 0]
    maps[1, 2] = 0
    before = maps.clone()
    preds, scores = codec.decode(maps, {"center": CENTERS, "scale": SCALES})
    assert torch.equal(maps, before)
    assert preds.shape == (3, 17, 2) and scores.shape == (3, 17, 1)
    assert float(preds.sum()) == pytest.approx(DEC_PREDS_SUM, abs=1e-9)
    assert float(scores.sum()) == pytest.approx(DEC_SCORES_SUM, rel=1e-7)
    np.testing.assert_allclose(preds[:, :4].numpy(), DEC_PREDS, atol=1e-9)
    np.testing.assert_allclose(scores[:, :4, 0].numpy(), DEC_SCORES, atol=1e-6)


def test_cpn_decode_equals_port():
    codec = MegviiHeatmapCodec([48, 64], [12, 16], [15, 11, 9, 7, 7], blur=21, normalize=True)
    maps = decode_maps()
    maps[1, 2] = maps[2, 5]
    preds, scores = codec.decode(maps, {"center": CENTERS, "scale": SCALES})
    assert float(preds.sum()) == pytest.approx(CPN_PREDS_SUM, abs=1e-9)
    assert float(scores.sum()) == pytest.approx(CPN_SCORES_SUM, rel=1e-7)
    np.testing.assert_allclose(preds[:, :4].numpy(), CPN_PREDS, atol=1e-9)


def test_blur_equals_cv2_with_its_border():
    maps = decode_maps()[:1, :3].double()
    for k in (5, 9, 21):
        ours = gaussian_blur(maps, k)[0].numpy()
        for j in range(3):
            np.testing.assert_allclose(ours[j], cv2.GaussianBlur(maps[0, j].numpy(), (k, k), 0), atol=1e-9)


def loss_inputs():
    g = torch.Generator().manual_seed(11)
    labels = torch.rand(4, 5, 17, 16, 12, generator=g) * 255
    valids = torch.randint(0, 3, (4, 17, 1), generator=g).float()
    outs = [[torch.rand(4, 17, 16, 12, generator=g) * 255 for _ in range(4)] for _ in range(2)]
    return labels, (valids > 0).float(), outs


def test_mspn_loss_equals_official():
    """Official _calculate_loss, 2 stages, OHKM top-8 on the finest unit, 1/4 on
    the others, the last stage one kernel sharper (labels 1..4)."""
    labels, weight, outs = loss_inputs()
    loss = MultiOutputL2Loss(8, [0.25, 0.25, 0.25, 1] * 2, [3, 7], 8)
    value = loss([o for stage in outs for o in stage], [labels[:, i] for i in [0, 1, 2, 3, 1, 2, 3, 4]], weight)
    assert float(value) == pytest.approx(MSPN_LOSS, rel=1e-6)


def test_cpn_loss_equals_port():
    labels, weight, outs = loss_inputs()
    loss = MultiOutputL2Loss(5, [0.5] * 4 + [1], [-1], 8)
    value = loss(outs[0] + [outs[1][0]], [labels[:, i] for i in range(4)] + [labels[:, 3]], weight)
    assert float(value) == pytest.approx(CPN_LOSS, rel=1e-6)


def test_codec_from_config_and_bad_settings():
    cfg = load_config(None, ["MODEL.TARGET_TYPE", "megvii", "MODEL.IMAGE_SIZE", "[48, 64]", "MODEL.HEATMAP_SIZE",
                             "[12, 16]", "MODEL.TARGET_KERNELS", "[15, 11, 9, 7, 11, 9, 7, 5]",
                             "LOSS.OUTPUT_WEIGHTS", "[0.25, 0.25, 0.25, 1, 0.25, 0.25, 0.25, 1]",
                             "LOSS.OHKM_OUTPUTS", "[3, 7]", "TEST.BLUR_KERNEL", "5"])
    codec = build_codec(cfg)
    assert isinstance(codec, MegviiHeatmapCodec) and codec.kernels == [15, 11, 9, 7, 11, 9, 7, 5]
    targets, _ = codec.encode(*encode_inputs())
    assert len(targets) == 8
    loss = codec.loss(cfg)
    with pytest.raises(ValueError, match="8"):
        loss([torch.zeros(1, 17, 16, 12)] * 4, [torch.zeros(1, 17, 16, 12)] * 4, torch.ones(1, 17, 1))
    with pytest.raises(ValueError, match="TARGET_KERNELS"):
        MegviiHeatmapCodec([48, 64], [12, 16], [])
    with pytest.raises(ValueError, match="odd"):
        MegviiHeatmapCodec([48, 64], [12, 16], [4])
    with pytest.raises(ValueError, match="OUTPUT_WEIGHTS"):
        MultiOutputL2Loss(8, [1, 1], [], 8)


def test_flip_back_has_no_shift():
    codec = MegviiHeatmapCodec([48, 64], [12, 16], [5])
    maps = decode_maps()[:1, :4]
    flipped = codec.flip_back(maps, [[1, 2]])
    assert torch.equal(flipped[:, 0], maps[:, 0].flip(2)) and torch.equal(flipped[:, 1], maps[:, 2].flip(2))


def official_joints_l2(output: torch.Tensor, valid: torch.Tensor, label: torch.Tensor, ohkm: bool, topk: int = 8):
    """MSPN ``lib/utils/loss.py:JointsL2Loss`` (thresh1 1, thresh2 0) written out per sample:
    plain L2 keeps the target of joints with valid > 1 (visible), OHKM masks joints with valid > 0."""
    total = 0
    for pred, gt, v in zip(output.flatten(2), label.flatten(2), valid):
        if ohkm:
            per_joint = ((pred - gt) ** 2).mean(1) * (v[:, 0] > 0).float()
            total = total + per_joint.topk(topk).values.mean()
        else:
            total = total + ((pred - gt * (v > 1).float()) ** 2).mean()
    return total / len(output)


def test_plain_outputs_keep_only_visible_targets_as_mspn_does():
    """COCO v = 1 (labelled, hidden): the official plain L2 zeroes its target (valid > 1), OHKM keeps it.
    posezoo masks in encode; encode + loss equals JointsL2Loss on the official valids (0/1/2)."""
    joints, vis = encode_inputs()
    visible = np.arange(17) % 3 != 0
    codec = MegviiHeatmapCodec([48, 64], [12, 16], [11, 9, 7], ohkm_outputs=[-1])
    targets, weight = codec.encode(joints, vis, visible=visible)
    plain_zero = (weight[:, 0] == 0) | ~visible
    for t in targets[:2]:
        assert np.all(t[plain_zero] == 0) and np.all(t[~plain_zero].max(axis=(1, 2)) == pytest.approx(255))
    assert np.all(targets[2][weight[:, 0] > 0].max(axis=(1, 2)) == pytest.approx(255))  # OHKM: every labelled joint
    unmasked, _ = codec.encode(joints, vis)  # no flags: every labelled joint counts as visible
    assert np.all(unmasked[0][weight[:, 0] > 0].max(axis=(1, 2)) == pytest.approx(255))

    g = torch.Generator().manual_seed(3)
    labels = torch.rand(2, 3, 17, 16, 12, generator=g) * 255
    valids = torch.randint(0, 3, (2, 17, 1), generator=g).float()  # 0 unlabelled, 1 hidden, 2 visible
    outs = [torch.rand(2, 17, 16, 12, generator=g) * 255 for _ in range(3)]
    shown = (valids > 1).float()[..., None]
    ours = MultiOutputL2Loss(3, [1, 1, 1], [-1], 8)(outs, [labels[:, 0] * shown, labels[:, 1] * shown, labels[:, 2]],
                                                    (valids > 0).float())
    official = sum(official_joints_l2(o, valids, labels[:, i], ohkm=i == 2) for i, o in enumerate(outs))
    assert float(ours) == pytest.approx(float(official), rel=1e-6)
