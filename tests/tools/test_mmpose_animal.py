"""mmpose's Animal-Pose model-zoo test flow through ``tools/test.py``: the YAML
``experiments/animal/mmpose_res50_animalpose_256x256.yaml`` (made tiny), an mmpose-0.x
checkpoint file written by the test (``keypoint_head.*``, random weights) and an
mmpose-format ``animalpose_val.json`` written by the test.

The expected results are computed here with mmpose 1.x's formulas, written out from its
code: GT box ``base_coco_style_dataset.py:284-290``, ``bbox_xyxy2cs`` with padding 1.25
(``GetBBoxCenterScale``), ``TopdownAffine._fix_aspect_ratio`` and ``get_warp_matrix``, the
data preprocessor's BGR->RGB and mean/std, flip test with ``flip_heatmaps(shift_heatmap=True)``
(``models/utils/tta.py:64-66``), ``MSRAHeatmap.decode`` (``get_heatmap_maximum`` +
``refine_keypoints`` with its border rule, ``TEST.HEATMAP_DECODE mmpose``) and ``TopdownPoseEstimator.add_pred_to_datasample``'s map back."""
import glob
import json
import os

import cv2
import numpy as np
import torch

import test as test_tool
from conftest import ROOT, deterministic_state
from posezoo.config import load_config
from posezoo.datasets.coco import clean_gt_box
from posezoo.models import build_model

YAML = os.path.join(ROOT, "experiments", "animal", "mmpose_res50_animalpose_256x256.yaml")
TINY = ["MODEL.EXTRA.NUM_LAYERS", "18", "MODEL.EXTRA.NUM_DECONV_FILTERS", "[16, 16, 16]",
        "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]", "WORKERS", "0"]
# mmpose configs/_base_/datasets/animalpose.py 'swap' entries, as index pairs
FLIP_PAIRS = [(0, 1), (2, 3), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17), (18, 19)]
MEAN, STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
W, H, K, INPUT, HEATMAP = 120, 90, 20, 64, 16
# [x, y, w, h]: inside, leaving the image on the left/top, and reaching past the right edge
BOXES = [[20.5, 10.0, 50.0, 60.0], [-6.0, -4.0, 40.0, 30.0], [70.0, 20.0, 60.0, 30.0]]


def write_animalpose(root, rng):
    images, anns = [], []
    for i, box in enumerate(BOXES):
        name = f"VOC2012/JPEGImages/{i}.jpg"
        os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
        cv2.imwrite(os.path.join(root, name), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        kp = np.zeros((K, 3))
        kp[:, 0], kp[:, 1], kp[:, 2] = rng.uniform(5, 110, K), rng.uniform(5, 80, K), 2
        images.append({"id": i + 1, "file_name": name, "width": W, "height": H})
        anns.append({"id": 10 + i, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": box,
                     "area": box[2] * box[3], "iscrowd": 0, "num_keypoints": K,
                     "keypoints": kp.reshape(-1).round(2).tolist()})
    cats = [{"id": c, "name": n, "supercategory": "animal", "keypoints": [f"k{j}" for j in range(K)], "skeleton": []}
            for c, n in ((1, "dog"), (2, "cat"))]
    os.makedirs(os.path.join(root, "annotations"))
    with open(os.path.join(root, "annotations", "animalpose_val.json"), "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return images


def mmpose_center_scale(box):
    """mmpose 1.x: xyxy clipped to the image, centre and 1.25 x size, then the aspect fit (pixels)."""
    x, y, w, h = box
    x1, y1, x2, y2 = np.clip(x, 0, W - 1), np.clip(y, 0, H - 1), np.clip(x + w, 0, W - 1), np.clip(y + h, 0, H - 1)
    center = np.array([(x1 + x2) * 0.5, (y1 + y2) * 0.5])
    sw, sh = (x2 - x1) * 1.25, (y2 - y1) * 1.25
    sw, sh = (sw, sw) if sw > sh else (sh, sh)  # aspect ratio 1
    return center, np.array([sw, sh])


def mmpose_warp(center, scale):
    """get_warp_matrix(center, scale, rot=0, output_size=(64, 64)): three point pairs."""
    src = np.array([center, center + [0, -scale[0] * 0.5], [0, 0]], np.float32)
    dst = np.array([[INPUT / 2, INPUT / 2], [INPUT / 2, INPUT / 2 - INPUT / 2], [0, 0]], np.float32)
    for p in (src, dst):
        d = p[0] - p[1]
        p[2] = p[1] + [-d[1], d[0]]
    return cv2.getAffineTransform(src, dst)


def mmpose_predict(net, image, center, scale):
    crop = cv2.warpAffine(image, mmpose_warp(center, scale), (INPUT, INPUT), flags=cv2.INTER_LINEAR)
    x = (crop[:, :, ::-1].astype(np.float64) - MEAN) / STD
    x = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).float()[None]
    with torch.no_grad():
        maps = net(x)[0].numpy()
        flipped = net(x.flip(-1))[0].numpy()[:, :, ::-1].copy()
    order = list(range(K))
    for a, b in FLIP_PAIRS:
        order[a], order[b] = b, a
    flipped = flipped[order]
    flipped[..., 1:] = flipped[..., :-1].copy()
    maps = (maps + flipped) * 0.5
    flat = maps.reshape(K, -1)
    y, x = np.unravel_index(flat.argmax(1), (HEATMAP, HEATMAP))
    locs = np.stack([x, y], -1).astype(np.float64)
    vals = flat.max(1)
    locs[vals <= 0] = -1
    for k in range(K):
        px, py = locs[k].astype(int)
        dx = maps[k, py, px + 1] - maps[k, py, px - 1] if 1 < px < HEATMAP - 1 and 0 < py < HEATMAP else 0.0
        dy = maps[k, py + 1, px] - maps[k, py - 1, px] if 1 < py < HEATMAP - 1 and 0 < px < HEATMAP else 0.0
        locs[k] += np.sign([dx, dy]) * 0.25
    keypoints = locs * (INPUT / HEATMAP) / INPUT * scale + center - 0.5 * scale
    border = (locs < 1.5).any(1) | (locs > HEATMAP - 2.5).any(1)  # where mmpose's rule differs from HRNet's
    return keypoints, vals, border


def test_mmpose_animalpose_checkpoint_runs_through_tools_test(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "animalpose"
    images = write_animalpose(str(root), rng)
    official = build_model(load_config(YAML, TINY + ["MODEL.EXTRA.LAYOUT", "official"])).eval()
    state = deterministic_state(official, seed=5)
    official.load_state_dict(state, strict=True)
    heads = ("deconv_layers.", "final_layer.")
    released = {("keypoint_head." if k.startswith(heads) else "backbone.") + k: v for k, v in state.items()}
    ckpt = tmp_path / "res18_animalpose_mmpose0x.pth"
    torch.save({"meta": {"mmpose_version": "0.x"}, "state_dict": released}, ckpt)

    stats = test_tool.main(["--cfg", YAML, *TINY, "DATASET.ROOT", str(root), "OUTPUT_DIR", str(tmp_path / "out"),
                            "TEST.MODEL_FILE", str(ckpt)])
    assert 0 <= stats["AP"] <= 1
    (results_file,) = glob.glob(str(tmp_path / "out" / "**" / "keypoints_val_gt_results_0.json"), recursive=True)
    with open(results_file) as f:
        results = sorted(json.load(f), key=lambda r: r["image_id"])
    assert [r["image_id"] for r in results] == [1, 2, 3]
    assert [r["category_id"] for r in results] == [1, 2, 1]

    borders = 0
    for result, box, info in zip(results, BOXES, images):
        center, scale = mmpose_center_scale(box)
        np.testing.assert_allclose(result["center"], center, atol=1e-4)
        np.testing.assert_allclose(np.array(result["scale"]) * 200, scale, rtol=1e-6)
        image = cv2.imread(str(root / info["file_name"]))
        keypoints, scores, border = mmpose_predict(official, image, center, scale)
        got = np.array(result["keypoints"]).reshape(K, 3)
        np.testing.assert_allclose(got[:, :2], keypoints, atol=1e-4)  # the results file keeps 4 decimals
        borders += border.sum()
        np.testing.assert_allclose(got[:, 2], scores, atol=5e-5)  # the results file keeps 4 decimals
        valid = scores > 0.2
        expected_score = scores[valid].mean() if valid.any() else 0.0  # CocoMetric bbox_keypoint, box score 1
        assert abs(result["score"] - expected_score) < 1e-4
    assert borders > 0  # peaks on the border, where TEST.HEATMAP_DECODE mmpose matters, were among them


def test_gt_box_rules_by_hand():
    """clean_gt_box on boxes inside and across the image border (120 x 90), by each rule's formula."""
    ann = {"bbox": [20.5, 10.0, 50.0, 60.0], "area": 3000.0}
    assert clean_gt_box(ann, W, H, "hrnet") == [20.5, 10.0, 49.0, 59.0]
    assert clean_gt_box(ann, W, H, "mmpose") == [20.5, 10.0, 50.0, 60.0]
    assert clean_gt_box(ann, W, H, "mmpose_0x") == [20.5, 10.0, 50.0, 60.0]
    left = {"bbox": [-6.0, -4.0, 40.0, 30.0], "area": 1200.0}
    assert clean_gt_box(left, W, H, "hrnet") == [0.0, 0.0, 39.0, 29.0]
    assert clean_gt_box(left, W, H, "mmpose") == [0.0, 0.0, 34.0, 26.0]  # x2 = x + w = 34
    assert clean_gt_box(left, W, H, "mmpose_0x") == [0.0, 0.0, 40.0, 30.0]  # x2 = x1 + w = 40
    right = {"bbox": [70.0, 20.0, 60.0, 30.0], "area": 1800.0}
    for rule in ("hrnet", "mmpose", "mmpose_0x"):
        assert clean_gt_box(right, W, H, rule)[2] == W - 1 - 70
    crowd = dict(ann, iscrowd=1)
    assert clean_gt_box(crowd, W, H, "hrnet") is not None  # HRNet's loader keeps crowd boxes
    assert clean_gt_box(crowd, W, H, "mmpose") is None and clean_gt_box(crowd, W, H, "mmpose_0x") is None
    no_area = {"bbox": [20.0, 10.0, 5.0, 5.0], "area": 0}
    assert clean_gt_box(no_area, W, H, "hrnet") is None and clean_gt_box(no_area, W, H, "mmpose_0x") is None
    assert clean_gt_box(no_area, W, H, "mmpose") == [20.0, 10.0, 5.0, 5.0]  # mmpose 1.x does not read area


def test_unknown_gt_box_rule_is_one_line(tmp_path):
    from posezoo.codecs import build_codec
    from posezoo.datasets import build_dataset

    root = tmp_path / "animalpose"
    write_animalpose(str(root), np.random.default_rng(1))
    cfg = load_config(YAML, TINY + ["DATASET.ROOT", str(root), "DATASET.GT_BOX", "mmpose1x"])
    try:
        build_dataset(cfg, "val", False, build_codec(cfg))
    except ValueError as err:
        assert str(err) == "DATASET.GT_BOX = 'mmpose1x': expected one of hrnet, mmpose, mmpose_0x"
    else:
        raise AssertionError("DATASET.GT_BOX mmpose1x was accepted")
