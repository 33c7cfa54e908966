"""CornerNet codec and loss against the official CornerNet-Lite code.

Goldens come from /tmp runs of the official ``core/sample/cornernet.py`` target
loop (with its ``gaussian_radius``/``draw_gaussian``), ``CornerNet_Loss`` and
``_decode`` on the seeded tensors built here: encode and ``_decode`` matched
exactly, the loss to 6e-8 relative (summation order).
"""
import numpy as np
import pytest
import torch

from posezoo.codecs.cornernet import (SETTINGS, CornerNetCodec, CornerNetLoss, gaussian_radius,
                                      official_soft_nms_rows, soft_nms)
from posezoo.config import load_config

C, IN_SIZE, OUT_SIZE = 3, (191, 127), (48, 32)
DETS = np.array([[10.3, 20.7, 100.2, 90.9, 1], [50.0, 5.5, 180.4, 126.0, 3], [0, 0, 30.6, 40.2, 2],
                 [120.7, 60.1, 130.2, 70.9, 1]], np.float32)
HEADS = ("tl_heat", "br_heat", "tl_tag", "br_tag", "tl_off", "br_off")


def settings(**kw):
    cfg = load_config(None)
    return dict({k: cfg.CORNERNET[k] for k in SETTINGS}, **kw)


def codec(**kw):
    return CornerNetCodec(C, IN_SIZE, OUT_SIZE, settings(**kw))


def test_gaussian_radius_keeps_iou():
    """A box with both corners moved by the radius (the worst case) keeps IoU >= 0.3."""
    h, w = 40, 30
    r = gaussian_radius(h, w, 0.3)
    shrunk = (w - 2 * r) * (h - 2 * r) / (w * h)  # both corners inwards
    grown = w * h / ((w + 2 * r) * (h + 2 * r))  # both outwards
    moved = (w - r) * (h - r) / (2 * w * h - (w - r) * (h - r))  # shifted together
    assert min(shrunk, grown, moved) == pytest.approx(0.3, abs=1e-6)


def test_encode_equals_official():
    target, weight = codec().encode(DETS[:, :4], DETS[:, 4].astype(int) - 1)
    assert target["tl_heat"].shape == (C, 32, 48) and target["tl_off"].shape == (128, 2)
    assert target["tl_heat"].sum() == pytest.approx(45.27073, rel=1e-6)
    assert target["br_heat"].sum() == pytest.approx(38.546684, rel=1e-6)
    assert (target["tl_heat"] > 0).sum() == 208 and (target["br_heat"] > 0).sum() == 187
    assert (target["tl_heat"] == 1).sum() == 4
    assert target["tl_ind"][:4].tolist() == [242, 60, 0, 750]
    assert target["br_ind"][:4].tolist() == [1081, 1533, 487, 848]
    np.testing.assert_allclose(target["tl_off"][:4], [[0.5884816646575928, 0.21574831008911133],
                                                      [0.5654439926147461, 0.38582682609558105], [0.0, 0.0],
                                                      [0.3329811096191406, 0.14330673217773438]], rtol=1e-6)
    assert weight.tolist() == [1.0] * 4 + [0.0] * 124


def _loss_inputs():
    c = codec()
    t1, _ = c.encode(DETS[:, :4], DETS[:, 4].astype(int) - 1)
    t2, _ = c.encode(DETS[:2, :4], [0, 2])
    target = {k: torch.from_numpy(np.stack([t1[k], t2[k]])) for k in t1}
    g = torch.Generator().manual_seed(5)
    h, w = OUT_SIZE[1], OUT_SIZE[0]
    outs = [{"tl_heat": torch.randn(2, C, h, w, generator=g) - 2, "br_heat": torch.randn(2, C, h, w, generator=g) - 2,
             "tl_tag": torch.randn(2, 1, h, w, generator=g), "br_tag": torch.randn(2, 1, h, w, generator=g),
             "tl_off": torch.rand(2, 2, h, w, generator=g), "br_off": torch.rand(2, 2, h, w, generator=g)}
            for _ in range(2)]
    return outs, target


def test_loss_equals_official():
    outs, target = _loss_inputs()
    before = {k: v.clone() for k, v in outs[0].items()}
    loss = CornerNetLoss()
    assert loss(outs, target).item() == pytest.approx(59.439781188964844, rel=1e-6)
    assert loss(outs[:1], target).item() == pytest.approx(57.50136947631836, rel=1e-6)
    terms = loss.terms(outs, target)
    assert float(terms["pull"]) == pytest.approx(1.0844151973724365, rel=1e-5)
    assert float(terms["push"]) == pytest.approx(0.18582920730113983, rel=1e-5)
    assert float(terms["off"]) == pytest.approx(0.6168115735054016, rel=1e-5)
    assert all(torch.equal(before[k], outs[0][k]) for k in before)  # the official _sigmoid works in place


def test_loss_trains_towards_targets():
    outs, target = _loss_inputs()
    params = [v.requires_grad_() for v in outs[0].values()]
    opt = torch.optim.Adam(params, lr=0.05)
    loss = CornerNetLoss()
    first = loss(outs[:1], target).item()
    for _ in range(20):
        opt.zero_grad()
        value = loss(outs[:1], target)
        value.backward()
        opt.step()
    assert value.item() < 0.8 * first


def _decode_outputs():
    g = torch.Generator().manual_seed(7)
    h, w = OUT_SIZE[1], OUT_SIZE[0]
    return {"tl_heat": torch.randn(2, C, h, w, generator=g), "br_heat": torch.randn(2, C, h, w, generator=g),
            "tl_tag": 0.3 * torch.randn(2, 1, h, w, generator=g), "br_tag": 0.3 * torch.randn(2, 1, h, w, generator=g),
            "tl_off": torch.rand(2, 2, h, w, generator=g), "br_off": torch.rand(2, 2, h, w, generator=g)}


def test_pairs_equal_official_decode():
    out = _decode_outputs()
    before = {k: v.clone() for k, v in out.items()}
    dets = codec(TOP_K=20, NUM_DETS=100).pairs(out)
    assert dets.shape == (2, 100, 8)
    assert (dets[..., 4] > -1).sum().item() == 58
    assert dets[..., 4].sum().item() == pytest.approx(-86.97120666503906, rel=1e-6)
    torch.testing.assert_close(dets[0, :2], torch.tensor([
        [21.797834396362305, 8.956932067871094, 39.888160705566406, 11.547651290893555, 0.9767322540283203,
         0.9717798829078674, 0.9816846251487732, 0.0],
        [21.797834396362305, 8.956932067871094, 27.277267456054688, 28.857637405395508, 0.9673353433609009,
         0.9717798829078674, 0.9628908634185791, 0.0]]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dets[1, 0], torch.tensor(
        [4.013988494873047, 7.32130241394043, 46.245113372802734, 23.81002426147461, 0.95745849609375,
         0.9511860609054565, 0.9637309312820435, 2.0]), rtol=1e-6, atol=1e-6)
    assert all(torch.equal(before[k], out[k]) for k in out)


def soft_nms_loop(boxes, sigma=0.5, threshold=0.001):
    """The official Cython ``soft_nms`` (method 2) line by line on an (n, 5)
    float32 array; returns its first N rows (the kept boxes)."""
    boxes = boxes.copy()
    n = boxes.shape[0]
    i = 0
    while i < n:
        maxpos = i + int(np.argmax(boxes[i:n, 4]))
        boxes[[i, maxpos]] = boxes[[maxpos, i]]
        tx1, ty1, tx2, ty2 = boxes[i, :4]
        pos = i + 1
        while pos < n:
            x1, y1, x2, y2 = boxes[pos, :4]
            area = (x2 - x1 + 1) * (y2 - y1 + 1)
            iw = min(tx2, x2) - max(tx1, x1) + 1
            if iw > 0:
                ih = min(ty2, y2) - max(ty1, y1) + 1
                if ih > 0:
                    ov = iw * ih / float((tx2 - tx1 + 1) * (ty2 - ty1 + 1) + area - iw * ih)
                    boxes[pos, 4] *= np.exp(-(ov * ov) / sigma)
                    if boxes[pos, 4] < threshold:
                        boxes[pos] = boxes[n - 1]
                        n -= 1
                        pos -= 1
            pos += 1
        i += 1
    return boxes[:n]


def test_soft_nms_equals_official_loop():
    g = np.random.default_rng(0)
    n, d = 2, 60
    xy = g.uniform(0, 80, (n, d, 2))
    wh = g.uniform(5, 40, (n, d, 2))
    boxes = np.concatenate([xy, xy + wh], 2).astype(np.float32)
    scores = g.uniform(0, 1, (n, d)).astype(np.float32)
    scores[0, :5] = 0.0005  # under the threshold: they leave only once a selected box decays them
    classes = g.integers(0, 3, (n, d))
    valid = g.uniform(size=(n, d)) > 0.1
    order, picked, _ = soft_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes),
                             torch.from_numpy(valid))
    for b in range(n):
        for c in range(3):
            sel = valid[b] & (classes[b] == c)
            ref = soft_nms_loop(np.concatenate([boxes[b][sel], scores[b][sel, None]], 1))
            got = [(o, s) for o, s in zip(order[b].tolist(), picked[b].tolist()) if o >= 0 and classes[b, o] == c]
            assert len(got) == len(ref)
            np.testing.assert_allclose([s for _, s in got], ref[:, 4], rtol=1e-5)
            np.testing.assert_array_equal(boxes[b][[o for o, _ in got]], ref[:, :4])


def test_decode_detections_to_image_pixels():
    out = _decode_outputs()
    c = codec(TOP_K=20, NUM_DETS=100, MAX_PER_IMAGE=10, SOFT_NMS="batched")
    # output pixel -> image: x / ratio - border, as the official rescale_dets_
    ratio = torch.tensor([0.25, 0.25])
    border = torch.tensor([3.0, 5.0])
    a = torch.tensor([[1 / ratio[0], 0, -border[0]], [0, 1 / ratio[1], -border[1]]]).expand(2, 2, 3)
    meta = {"crop_to_image": a, "image_size": torch.tensor([[150.0, 100.0], [150.0, 100.0]])}
    det = c.decode_detections(out, meta)
    pairs = c.pairs(out)
    assert det["boxes"].shape == (2, 10, 4) and det["scores"].shape == (2, 10)
    assert torch.all(det["scores"][:, :-1] >= det["scores"][:, 1:])
    top = pairs[0, 0]  # the best pair survives soft-NMS unchanged
    expect = torch.stack([top[0] * 4 - 3, top[1] * 4 - 5, top[2] * 4 - 3, top[3] * 4 - 5]).clamp(0, 100)
    expect[0::2] = (torch.stack([top[0], top[2]]) * 4 - 3).clamp(0, 150)
    torch.testing.assert_close(det["boxes"][0, 0], expect)
    assert det["scores"][0, 0].item() == pytest.approx(top[4].item())
    assert det["classes"][0, 0].item() == int(top[7])
    assert torch.all(det["boxes"][..., 0::2] <= 150) and torch.all(det["boxes"][..., 1::2] <= 100)
    flipped = c.decode_detections(out, meta, output_flipped={k: v.flip(-1) for k, v in out.items()})
    assert flipped["boxes"].shape == (2, 10, 4)
    boxes, scores = c.decode(out, meta)
    assert torch.equal(boxes, det["boxes"]) and scores.shape == (2, 10, 2)
    assert torch.equal(scores[..., 0], det["scores"]) and torch.equal(scores[..., 1].long(), det["classes"])
    both = {k: torch.cat([v, v.flip(-1)]) for k, v in out.items()}  # the 2N rows of the loop's flip test
    torch.testing.assert_close(c.decode(both, meta)[0], flipped["boxes"], rtol=0, atol=0)


def _class_rows():
    """40 rows of one class (x1, y1, x2, y2, score, tl score, br score), 7 tied scores."""
    g = np.random.default_rng(7)
    xy, wh = g.uniform(0, 60, (40, 2)), g.uniform(4, 40, (40, 2))
    rows = np.concatenate([xy, xy + wh, g.uniform(0, 1, (40, 1)) ** 3, g.uniform(0.05, 1, (40, 2))], 1)
    rows = rows.astype(np.float32)
    rows[5:12, 4] = rows[5, 4]
    return rows


# The official Cython soft_nms / soft_nms_merge (CornerNet-Lite core/external/nms.pyx, Gaussian,
# weight_exp 10) run in place on _class_rows(): it returned 33 kept rows, yet all 40 rows of the
# array it leaves keep a score >= 0.001 (the swap-with-last leaves rows behind), two of them
# duplicates without merge. Column sums of the (40, 5) array, its first and last rows.
OFFICIAL_ARRAYS = {
    False: ([1251.5005, 1210.0714, 2013.6604, 2219.6118, 8.6551], 38),
    True: ([1251.5398, 1210.0812, 2013.6595, 2219.6172, 8.6551], 40),
}
OFFICIAL_FIRST, OFFICIAL_LAST = [56.6969, 54.235, 72.6734, 72.5729, 0.8262], [34.1831, 8.7276, 45.488, 14.5529, 0.1561]


@pytest.mark.parametrize("merge", [False, True])
def test_official_soft_nms_rows_equal_the_cython_arrays(merge):
    rows = _class_rows()
    out = official_soft_nms_rows(rows, 0.5, 0.001, merge, 10.0)
    sums, unique = OFFICIAL_ARRAYS[merge]
    assert out.shape == (40, 5) and (out[:, 4] >= 0.001).sum() == 40
    np.testing.assert_allclose(out.astype(np.float64).sum(0), sums, atol=2e-3)
    np.testing.assert_allclose(out[0], OFFICIAL_FIRST, atol=1e-4)
    np.testing.assert_allclose(out[-1], OFFICIAL_LAST, atol=1e-4)
    assert len(np.unique(out, axis=0)) == unique
    kept, _, _ = soft_nms(torch.from_numpy(rows[None, :, :4]), torch.from_numpy(rows[None, :, 4]),
                          torch.zeros(1, 40, dtype=torch.long), torch.ones(1, 40, dtype=torch.bool), 0.5, 0.001)
    n_kept = int((kept >= 0).sum())
    assert n_kept == 33  # the batched flavour keeps exactly the rows the official call reports as kept
    if not merge:
        np.testing.assert_array_equal(out[:n_kept, :4], rows[kept[0, :n_kept].numpy(), :4])


def test_official_flavour_keeps_every_row_at_or_above_the_kth_score_class_by_class():
    out = _decode_outputs()
    c = codec(TOP_K=20, NUM_DETS=100, MAX_PER_IMAGE=10)  # SOFT_NMS official: the default
    assert c.s["SOFT_NMS"] == "official"
    a = torch.tensor([[4.0, 0, -3], [0, 4.0, -5]]).expand(2, 2, 3)
    meta = {"crop_to_image": a, "image_size": torch.tensor([[150.0, 100.0], [150.0, 100.0]])}
    det = c.decode_detections(out, meta)
    rows = c.detections(out, meta).numpy()
    for b in range(2):
        r = rows[b][rows[b][:, 4] > -1]
        expect = np.concatenate([np.concatenate([official_soft_nms_rows(r[r[:, 7] == k, :7]),
                                                 np.full(((r[:, 7] == k).sum(), 1), k)], 1) for k in range(C)])
        expect = expect[expect[:, 4] >= np.sort(expect[:, 4])[-10]]
        n = len(expect)
        assert n >= 10 and torch.all(det["scores"][b, n:] == -1)
        np.testing.assert_allclose(det["boxes"][b, :n].numpy(), expect[:, :4], rtol=1e-6)
        np.testing.assert_allclose(det["scores"][b, :n].numpy(), expect[:, 4], rtol=1e-6)
        assert det["classes"][b, :n].tolist() == expect[:, 5].astype(int).tolist()
        assert det["classes"][b, :n].tolist() == sorted(det["classes"][b, :n].tolist())  # class-major


def test_unknown_soft_nms_flavour_is_one_line():
    from posezoo.codecs.cornernet import get_codec

    cfg = load_config(None, ["MODEL.NAME", "cornernet", "MODEL.TARGET_TYPE", "cornernet", "MODEL.IMAGE_SIZE",
                             "[127, 127]", "CORNERNET.SOFT_NMS", "fast"])
    with pytest.raises(ValueError, match="CORNERNET.SOFT_NMS must be 'official' or 'batched', got 'fast'"):
        get_codec(cfg)
