"""COCO detection data for CornerNet, bbox AP, and a tiny CornerNet trained one
step on the synthetic set (CPU)."""
import json
import os

import numpy as np
import pytest
import torch

from conftest import SHARED
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.detection import evaluate_detector
from posezoo.datasets.coco_det import COCODetection, bbox_ap, canvas_geometry, collate
from posezoo.models.cornernet import get_pose_net

SAMPLES = os.path.join(SHARED, "data", "coco_mmpose_tests")
TINY = ["MODEL.NAME", "cornernet", "MODEL.TARGET_TYPE", "cornernet", "MODEL.IMAGE_SIZE", "[127, 127]",
        "MODEL.EXTRA", "{'NUM_CLASSES': 1, 'DIMS': [8, 8, 16], 'MODULES': [1, 1, 1], 'STEM_DIM': 8, "
        "'POOL_DIM': 8, 'HEAD_DIM': 8}", "CORNERNET.CATEGORIES", "[1]", "CORNERNET.TOP_K", "20",
        "CORNERNET.NUM_DETS", "100", "DATASET.INPUT_MEAN", "[0.40789654, 0.44719302, 0.47026115]",
        "DATASET.INPUT_STD", "[0.28863828, 0.27408164, 0.27809835]"]


def _cfg(root, *extra):
    return load_config(None, ["DATASET.ROOT", root] + TINY + list(extra))


@pytest.mark.skipif(not os.path.isdir(SAMPLES), reason="shared samples absent")
def test_bbox_ap_on_shared_coco_samples(tmp_path):
    cfg = _cfg(SAMPLES)
    ds = COCODetection(cfg, "val2017", False, build_codec(cfg), ann_file=os.path.join(SAMPLES, "test_coco.json"),
                       image_dir=SAMPLES)
    assert len(ds) == 4 and ds.boxes(785).shape == (1, 5)
    gt = np.full((len(ds), 8, 6), -1.0)  # the loop's per-image detections, GT boxes scoring 1
    for row, i in enumerate(ds.image_ids):
        b = ds.boxes(i)
        gt[row, :len(b)] = np.concatenate([b[:, :4], np.ones((len(b), 1)), np.zeros((len(b), 1))], 1)
    stats, ap = ds.evaluate(gt, None, np.array(ds.image_ids), str(tmp_path))
    assert stats["AP"] == pytest.approx(1.0) and stats["AP .5"] == pytest.approx(1.0) and ap == stats["AP"]
    saved = json.load(open(tmp_path / "results" / "bbox_val2017_results.json"))
    assert len(saved) == sum(len(ds.boxes(i)) for i in ds.image_ids)
    assert set(saved[0]) == {"image_id", "category_id", "bbox", "score"}
    with open(os.path.join(SAMPLES, "test_coco_det_AP_H_56.json")) as f:
        dets = json.load(f)
    stats = bbox_ap(ds.coco, dets, ds.image_ids, ds.cat_ids)
    assert stats["AP"] == pytest.approx(0.7891214, abs=1e-6) and stats["AP .5"] == pytest.approx(0.98239824, abs=1e-6)
    image, target, _, meta = ds[0]
    assert target == {} and meta["valid"] == 1
    assert image.shape == (3, 425 | 127, 640 | 127) and meta["image_size"].tolist() == [640, 425]


def test_test_canvas_maps_back_to_image():
    ch, cw, a = canvas_geometry(240, 320, 4)
    assert (ch, cw) == (255, 383)
    x, y = 100.0, 50.0  # image pixel -> canvas -> output map -> image
    left, top = cw // 2 - 160, ch // 2 - 120
    ox, oy = (x + left) * ((cw + 1) // 4) / cw, (y + top) * ((ch + 1) // 4) / ch
    assert a[0, 0] * ox + a[0, 2] == pytest.approx(x, abs=1e-4)
    assert a[1, 1] * oy + a[1, 2] == pytest.approx(y, abs=1e-4)


def test_class_selection_must_match_model(synthetic_root):
    cfg = _cfg(synthetic_root, "CORNERNET.CATEGORIES", "[]", "MODEL.EXTRA.NUM_CLASSES", "2")
    with pytest.raises(ValueError, match="NUM_CLASSES is 2"):
        COCODetection(cfg, "train2017", True, build_codec(cfg))
    cfg = _cfg(synthetic_root, "CORNERNET.CATEGORIES", "[3]")
    with pytest.raises(ValueError, match=r"\[3\] are not categories"):
        COCODetection(cfg, "train2017", True, build_codec(cfg))


def test_train_sample_targets(synthetic_root):
    cfg = _cfg(synthetic_root, "CORNERNET.RAND_CROP", "False", "CORNERNET.RAND_COLOR", "False")
    ds = COCODetection(cfg, "train2017", True, build_codec(cfg))
    image, target, weight, meta = ds[0]
    n = len(ds.boxes(meta["image_id"]))
    assert image.shape == (3, 127, 127) and target["tl_heat"].shape == (1, 32, 32)
    assert int(target["mask"].sum()) == int(weight.sum()) == n > 0
    assert int((target["tl_heat"] == 1).sum()) <= n and float(target["tl_heat"].max()) == 1.0
    assert torch.all((target["tl_off"][:n] >= 0) & (target["tl_off"][:n] < 1))
    cfg = _cfg(synthetic_root)
    image, target, _, _ = COCODetection(cfg, "train2017", True, build_codec(cfg))[1]  # crop, scale, colour
    assert image.shape == (3, 127, 127) and torch.isfinite(image).all()


def test_tiny_cornernet_trains_a_step_and_reports_box_ap(synthetic_root, tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(synthetic_root)
    codec = build_codec(cfg)
    model = get_pose_net(cfg, is_train=True)
    train = COCODetection(cfg, "train2017", True, codec)
    images, target, weight, _ = collate([train[0], train[1]])
    loss_fn = codec.loss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-4)
    model.train()
    loss = loss_fn(model(images), target, weight)
    assert torch.isfinite(loss) and loss.item() > 0
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(p.grad is not None for p in model.tl_heats.parameters())
    test = COCODetection(cfg, "val2017", False, codec)
    test.image_ids = test.image_ids[:2]
    stats, results = evaluate_detector(model, codec, test, str(tmp_path), flip=True, batch_size=2)
    assert set(stats) >= {"AP", "AP .5", "AR"} and 0.0 <= stats["AP"] <= 1.0
    assert results and all(r["category_id"] == 1 and r["image_id"] in test.image_ids for r in results)
    assert all(0 <= r["bbox"][0] <= 320 and 0 <= r["bbox"][1] <= 240 for r in results)
    assert len(results) <= 2 * cfg.CORNERNET.MAX_PER_IMAGE
    assert os.path.isfile(tmp_path / "results" / "bbox_val2017_results.json")
