"""The Megvii test crop (DATASET.TEST_BOX_EXTEND) and MSPN's BGR input, as the
MSPN/RSN/CPN YAMLs set them, against computations written out from the official
code (MSPN ``dataset/JointsDataset.py:82-100`` and ``coco.py:128-138``: centre
x + w/2, w x 1.09, h x 1.135, then the aspect fit, no 1.25; ``train.py``:
``ToTensor`` + ``Normalize(MEANS, STDS)`` on the BGR ``cv2.imread`` image)."""
import os

import cv2
import numpy as np
import pytest

from conftest import ROOT, synthetic_opts
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.utils.transforms import box_to_center_scale, get_affine_transform, crop_box_rule

MSPN_YAML = os.path.join(ROOT, "experiments", "coco", "mspn", "mspn_2stg_256x192.yaml")


def mspn_test_box(box, ratio, ext=(1.09, 1.135)):
    """MSPN's own arithmetic, step by step."""
    x, y, w, h = box
    center = np.array([x + w / 2.0, y + h / 2.0])
    scale = np.array([w / 200.0 * (1 + (ext[0] - 1)), h / 200.0 * (1 + (ext[1] - 1))])
    if scale[0] > ratio * scale[1]:
        scale[1] = scale[0] / ratio
    else:
        scale[0] = scale[1] * ratio
    return center, scale


@pytest.mark.parametrize("box", [[10.0, 20.0, 50.0, 100.0], [5.0, 7.0, 120.0, 40.0]])
def test_test_box_rule_equals_mspn(box):
    center, scale = box_to_center_scale(box, 192 / 256, **crop_box_rule([1.09, 1.135]))
    want_c, want_s = mspn_test_box(box, 192 / 256)
    np.testing.assert_allclose(center, want_c, rtol=1e-6)
    np.testing.assert_allclose(scale, want_s, rtol=1e-6)
    # [10, 20, 50, 100]: height-bound, 100 x 1.135 / 200 = 0.5675 and width 0.5675 x 0.75
    if box[2] == 50.0:
        np.testing.assert_allclose(scale, [0.425625, 0.5675], rtol=1e-6)
    assert crop_box_rule([]) == {}  # HRNet's rule: aspect fit, then x1.25
    np.testing.assert_allclose(box_to_center_scale(box, 0.75)[1], mspn_test_box(box, 0.75, (1, 1))[1] * 1.25,
                               rtol=1e-6)


@pytest.mark.parametrize("bad", [[1.09], [1.0, -1.0], [1.0, float("nan")]])
def test_bad_box_extend(bad):
    with pytest.raises(ValueError, match="TEST_BOX_EXTEND"):
        crop_box_rule(bad)


def mspn_cfg(root, out, *opts):
    keep = [(k, v) for k, v in zip(*[iter(synthetic_opts(root, out))] * 2) if k.startswith(("DATASET.", "OUTPUT"))
            or k in ("WORKERS", "TEST.USE_GT_BBOX", "TEST.COCO_BBOX_FILE")]
    return load_config(MSPN_YAML, [x for kv in keep for x in kv] + ["MODEL.IMAGE_SIZE", "[48, 64]",
                                                                   "MODEL.HEATMAP_SIZE", "[12, 16]"] + list(opts))


def test_mspn_yaml_crops_and_normalises_like_mspn(synthetic_root, tmp_path):
    cfg = mspn_cfg(synthetic_root, str(tmp_path))
    assert cfg.DATASET.TEST_BOX_EXTEND == [1.09, 1.135] and not cfg.DATASET.COLOR_RGB
    codec = build_codec(cfg)
    val = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    rec = val.db[0]
    want_c, want_s = mspn_test_box(rec["bbox"], 48 / 64)
    np.testing.assert_allclose(rec["center"], want_c, rtol=1e-6)
    np.testing.assert_allclose(rec["scale"], want_s, rtol=1e-6)

    inputs = val[0][0].numpy()
    bgr = cv2.imread(rec["image"], cv2.IMREAD_COLOR)  # MSPN never converts to RGB (COLOR_RGB False)
    crop = cv2.warpAffine(bgr, get_affine_transform(want_c, want_s, 0, (48, 64)), (48, 64), flags=cv2.INTER_LINEAR)
    means, stds = np.array([0.406, 0.456, 0.485]), np.array([0.225, 0.224, 0.229])  # MSPN config.py, BGR order
    want = ((crop / 255.0 - means) / stds).transpose(2, 0, 1)
    np.testing.assert_allclose(inputs, want, atol=1e-5)

    train = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    assert train.box_rule == {}  # training boxes keep HRNet's rule
    hrnet = build_dataset(mspn_cfg(synthetic_root, str(tmp_path), "DATASET.TEST_BOX_EXTEND", "[]"),
                          cfg.DATASET.TEST_SET, False, codec)
    np.testing.assert_allclose(hrnet.db[0]["scale"], mspn_test_box(rec["bbox"], 48 / 64, (1, 1))[1] * 1.25,
                               rtol=1e-6)


def test_mspn_targets_follow_coco_visibility(synthetic_root, tmp_path):
    """The COCO reader keeps v == 2 as ``joints_visible``; an MSPN sample's plain-L2 targets are
    empty for labelled-but-hidden joints (official valid > 1), the OHKM outputs keep them, and
    the flags are mirrored with the joints."""
    from posezoo.datasets.joints_dataset import visible_flags
    from posezoo.utils.transforms import flip_permutation

    cfg = mspn_cfg(synthetic_root, str(tmp_path))
    val = build_dataset(cfg, cfg.DATASET.TEST_SET, False, build_codec(cfg))
    idx = next(i for i, r in enumerate(val.db) if np.any(~r["joints_visible"] & (r["joints_vis"][:, 0] > 0)))
    rec = val.db[idx]
    _, targets, weight, _ = val[idx]
    hidden = ~rec["joints_visible"] & (weight[:, 0].numpy() > 0)
    ohkm = {i % len(targets) for i in cfg.LOSS.OHKM_OUTPUTS}
    for i, target in enumerate(targets):
        peaks = target.numpy()[hidden].max(axis=(1, 2))
        assert np.all(peaks > 0) if i in ohkm else np.all(peaks == 0), i
    perm = flip_permutation(17, val.flip_pairs)
    mirrored_vis = rec["joints_vis"][perm]  # what augment() hands on after a flip
    np.testing.assert_array_equal(visible_flags(rec, mirrored_vis, val.flip_pairs),
                                  rec["joints_visible"][perm] & (mirrored_vis[:, 0] > 0))
    np.testing.assert_array_equal(visible_flags({}, rec["joints_vis"]), rec["joints_vis"][:, 0] > 0)
