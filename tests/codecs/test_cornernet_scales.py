"""CORNERNET.TEST_SCALES: per-scale inputs and meta, and the official merge of
the scales' detections (core/test/cornernet.py: each scale's pairs rescaled,
clipped, divided by the scale, concatenated, then one per-class soft-NMS, with
merge_bbox the soft_nms_merge box average)."""
import math

import numpy as np
import pytest
import torch

from posezoo.codecs.cornernet import SETTINGS, CornerNetCodec
from posezoo.config import load_config
from posezoo.datasets.coco_det import canvas_geometry, detector_input

MEAN, STD = np.zeros(3, np.float32), np.ones(3, np.float32)


def _codec(**kw):
    cfg = load_config(None, ["GPUS", "[0]"])
    return CornerNetCodec(1, (127, 127), (32, 32), dict({k: cfg.CORNERNET[k] for k in SETTINGS}, TOP_K=4,
                                                         NUM_DETS=10, **kw))


def _one_box(tl, br, logit, size=32):
    """A model output with a single corner pair (output pixels), no offsets; the
    embeddings (0 at both peaks, +-10 elsewhere) reject every other pair."""
    heat = torch.full((1, 1, size, size), -20.0)
    tl_heat, br_heat = heat.clone(), heat.clone()
    tl_heat[0, 0, tl[1], tl[0]] = logit
    br_heat[0, 0, br[1], br[0]] = logit
    tl_tag, br_tag = torch.full((1, 1, size, size), 10.0), torch.full((1, 1, size, size), -10.0)
    tl_tag[0, 0, tl[1], tl[0]] = br_tag[0, 0, br[1], br[0]] = 0.0
    return {"tl_heat": tl_heat, "br_heat": br_heat, "tl_tag": tl_tag, "br_tag": br_tag,
            "tl_off": torch.zeros(1, 2, size, size), "br_off": torch.zeros(1, 2, size, size)}


def _iou(a, b):  # the official +1 pixel convention
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]) + 1, min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = iw * ih
    return inter / ((a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter)


def test_inputs_per_scale():
    image = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)
    single, meta1 = detector_input(image, 4, MEAN, STD)
    listed, meta = detector_input(image, 4, MEAN, STD, [1, 0.5])
    assert torch.equal(listed[0], single) and listed[1].shape == (3, 50 | 127, 60 | 127)
    assert torch.equal(meta["crop_to_image"][0], meta1["crop_to_image"])
    _, _, a = canvas_geometry(50, 60, 4)
    torch.testing.assert_close(meta["crop_to_image"][1], torch.from_numpy(a) / 0.5)
    assert meta["image_size"].tolist() == [[120, 100], [120, 100]]
    _, odd = detector_input(image, 4, MEAN, STD, [0.75])  # the official clip: int(W s), int(H s), then / s
    assert odd["image_size"].tolist() == [[int(120 * 0.75) / 0.75, int(100 * 0.75) / 0.75]]


def test_scale_one_equals_the_single_scale_path():
    c = _codec()
    out = _one_box((4, 5), (25, 20), 5.0)
    image = np.zeros((100, 120, 3), np.uint8)
    _, meta = detector_input(image, 4, MEAN, STD)
    meta = {k: v[None] for k, v in meta.items()}
    listed = {k: v[:, None] for k, v in meta.items()}  # TEST_SCALES [1] written as a list of one
    for merge in (False, True):
        c.s["MERGE_BBOX"] = merge
        single, many = c.decode([out], meta), c.decode([out], listed)
        assert torch.equal(single[0], many[0]) and torch.equal(single[1], many[1])


@pytest.mark.parametrize("merge", [False, True])
def test_two_scales_merge_as_the_official_rule(merge):
    c = _codec(MERGE_BBOX=merge, WEIGHT_EXP=10.0)
    image = np.zeros((100, 120, 3), np.uint8)
    _, meta = detector_input(image, 4, MEAN, STD, [1, 0.5])
    meta = {k: v[None] for k, v in meta.items()}
    outs = [_one_box((4, 5), (25, 20), 5.0), _one_box((10, 12), (20, 19), 3.0)]
    boxes, scores = c.decode(outs, meta)
    expect = []
    for s, (tl, br) in enumerate([((4, 5), (25, 20)), ((10, 12), (20, 19))]):
        a, size = meta["crop_to_image"][0, s].numpy(), meta["image_size"][0, s].numpy()
        xs = np.clip([tl[0] * a[0, 0] + a[0, 2], br[0] * a[0, 0] + a[0, 2]], 0, size[0])
        ys = np.clip([tl[1] * a[1, 1] + a[1, 2], br[1] * a[1, 1] + a[1, 2]], 0, size[1])
        expect.append([xs[0], ys[0], xs[1], ys[1]])
    s1, s2 = 1 / (1 + math.exp(-5.0)), 1 / (1 + math.exp(-3.0))
    weight = math.exp(-_iou(*expect) ** 2 / 0.5)
    assert scores[0, 0, 0].item() == pytest.approx(s1, rel=1e-6)
    assert scores[0, 1, 0].item() == pytest.approx(s2 * weight, rel=1e-5)  # decayed by the scale-1 box
    assert torch.all(scores[0, 2:, 0] == -1) and torch.all(scores[0, :, 1] == 0)  # no third box; class 0
    first = np.array(expect[0])
    if merge:  # soft_nms_merge: corners averaged, weights corner score x (1 - w)^weight_exp
        mw = (1 - weight) ** 10
        first = (first * s1 + np.array(expect[1]) * s2 * mw) / (s1 + s2 * mw)
    np.testing.assert_allclose(boxes[0, 0].numpy(), first, rtol=1e-5)
    np.testing.assert_allclose(boxes[0, 1].numpy(), expect[1], rtol=1e-5)
