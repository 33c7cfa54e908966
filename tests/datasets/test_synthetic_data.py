"""Tests of the synthetic COCO person-keypoints generator."""

import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from posezoo.datasets.synthetic import (
    DETECTIONS_FILE,
    KEYPOINT_NAMES,
    MARKER_FILE,
    SKELETON,
    generate_synthetic_coco,
    is_generated,
)

NUM_TRAIN, NUM_VAL = 20, 8
WIDTH, HEIGHT = 320, 240
SPLITS = ("train", "val")

COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7],
    [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5],
    [4, 6], [5, 7],
]
LEFT_WRIST, RIGHT_WRIST = 9, 10


def quiet(fn, *args, **kwargs):
    """Call ``fn`` with pycocotools' progress printing suppressed."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def ann_file(root, split):
    return os.path.join(root, "annotations", f"person_keypoints_{split}2017.json")


def det_file(root):
    return os.path.join(root, "person_detection_results", DETECTIONS_FILE)


def image_path(root, split, image):
    return os.path.join(root, "images", f"{split}2017", image["file_name"])


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    summary = generate_synthetic_coco(root, seed=3, num_train_images=NUM_TRAIN,
                                      num_val_images=NUM_VAL)
    cocos = {split: quiet(COCO, ann_file(root, split)) for split in SPLITS}
    return root, summary, cocos


def all_annotations(cocos):
    for split, coco in cocos.items():
        for ann in coco.dataset["annotations"]:
            yield split, coco, ann


def test_layout_and_categories(dataset):
    root, summary, cocos = dataset
    assert is_generated(root)
    for split, count in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        coco = cocos[split]
        assert set(coco.dataset) >= {"info", "licenses", "images", "annotations", "categories"}
        assert coco.getCatIds() == [1]
        category = coco.loadCats(1)[0]
        assert category["name"] == "person"
        assert category["keypoints"] == list(KEYPOINT_NAMES)
        assert len(category["keypoints"]) == 17
        assert category["skeleton"] == COCO_SKELETON
        assert len(coco.getImgIds()) == count
        for image in coco.dataset["images"]:
            assert image["file_name"] == f"{image['id']:012d}.jpg"
            assert (image["width"], image["height"]) == (WIDTH, HEIGHT)
            decoded = cv2.imread(image_path(root, split, image))
            assert decoded.shape == (HEIGHT, WIDTH, 3)
        assert summary[split]["images"] == count
        assert summary[split]["annotations"] == len(coco.dataset["annotations"])
    assert [list(pair) for pair in SKELETON] == COCO_SKELETON
    marker = json.loads(read_bytes(os.path.join(root, MARKER_FILE)))
    assert marker["seed"] == 3
    assert marker == summary


def test_ids_are_unique(dataset):
    _, _, cocos = dataset
    image_ids = [img["id"] for coco in cocos.values() for img in coco.dataset["images"]]
    ann_ids = [ann["id"] for _, _, ann in all_annotations(cocos)]
    assert len(set(image_ids)) == len(image_ids)
    assert len(set(ann_ids)) == len(ann_ids)
    assert min(img["id"] for img in cocos["train"].dataset["images"]) == 1
    assert min(img["id"] for img in cocos["val"].dataset["images"]) == 100_000


def test_annotations_are_consistent(dataset):
    _, _, cocos = dataset
    annotations = list(all_annotations(cocos))
    assert len(annotations) >= NUM_TRAIN + NUM_VAL
    for _, _, ann in annotations:
        assert ann["category_id"] == 1
        assert ann["iscrowd"] == 0
        keypoints = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        x, y, v = keypoints.T
        assert set(v.tolist()) <= {0, 1, 2}
        assert ann["num_keypoints"] == int((v > 0).sum())
        assert np.all(x[v == 0] == 0) and np.all(y[v == 0] == 0)
        labelled = v > 0
        assert np.all((x[labelled] >= 0) & (x[labelled] < WIDTH))
        assert np.all((y[labelled] >= 0) & (y[labelled] < HEIGHT))

        bx, by, bw, bh = ann["bbox"]
        assert bw > 0 and bh > 0
        assert bx >= 0 and by >= 0 and bx + bw <= WIDTH and by + bh <= HEIGHT
        assert 0 < ann["area"] <= bw * bh
        assert np.all((x[labelled] >= bx) & (x[labelled] <= bx + bw))
        assert np.all((y[labelled] >= by) & (y[labelled] <= by + bh))

    visibilities = np.concatenate([np.array(a["keypoints"][2::3]) for _, _, a in annotations])
    assert (visibilities == 2).mean() > 0.6
    assert (visibilities == 1).any()


def hue_family(bgr_patch):
    """'warm', 'blue' or None for the median colour of a BGR patch."""
    bgr = np.median(bgr_patch.reshape(-1, 3), axis=0).astype(np.uint8)
    hue, sat, _ = cv2.cvtColor(bgr[None, None], cv2.COLOR_BGR2HSV)[0, 0]
    if sat < 80:
        return None
    if hue <= 22 or hue >= 165:
        return "warm"
    if 95 <= hue <= 132:
        return "blue"
    return None


def test_left_and_right_limbs_have_different_colours(dataset):
    root, _, cocos = dataset
    checked, correct = 0, 0
    for split, coco, ann in all_annotations(cocos):
        keypoints = np.array(ann["keypoints"]).reshape(17, 3)
        if keypoints[LEFT_WRIST, 2] != 2 or keypoints[RIGHT_WRIST, 2] != 2:
            continue
        image = cv2.imread(image_path(root, split, coco.loadImgs(ann["image_id"])[0]))
        families = []
        for index in (LEFT_WRIST, RIGHT_WRIST):
            col, row = (int(c) for c in keypoints[index, :2])
            families.append(hue_family(image[max(0, row - 1):row + 2, max(0, col - 1):col + 2]))
        checked += 1
        correct += families == ["warm", "blue"]
    assert checked >= 10
    assert correct / checked >= 0.9


def test_detections_load_and_contain_false_positives(dataset):
    root, _, cocos = dataset
    gt = cocos["val"]
    detections = json.loads(read_bytes(det_file(root)))
    results = quiet(gt.loadRes, det_file(root))
    assert len(results.getAnnIds()) == len(detections) > 0
    scores = np.array([d["score"] for d in detections])
    assert np.all((scores > 0) & (scores <= 1))
    assert (scores < 0.5).any()
    for det in detections:
        assert det["category_id"] == 1
        assert det["image_id"] in gt.imgs
        x, y, w, h = det["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= WIDTH + 1e-6 and y + h <= HEIGHT + 1e-6


def test_ground_truth_as_results_gives_perfect_ap(dataset):
    _, _, cocos = dataset
    gt = cocos["val"]
    results = [
        {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
        for a in gt.dataset["annotations"] if a["num_keypoints"] > 0
    ]
    assert results
    dt = quiet(gt.loadRes, results)
    evaluator = COCOeval(gt, dt, "keypoints")
    quiet(evaluator.evaluate)
    quiet(evaluator.accumulate)
    quiet(evaluator.summarize)
    assert evaluator.stats[0] == pytest.approx(1.0)


def dataset_files(root):
    paths = [ann_file(root, split) for split in SPLITS] + [det_file(root)]
    return {os.path.relpath(p, root): read_bytes(p) for p in paths}


def decoded_images(root):
    images = {}
    for split in SPLITS:
        folder = os.path.join(root, "images", f"{split}2017")
        for name in sorted(os.listdir(folder)):
            images[f"{split}/{name}"] = cv2.imread(os.path.join(folder, name))
    return images


def test_generation_is_deterministic(tmp_path):
    roots = [str(tmp_path / name) for name in ("a", "b", "c")]
    for root, seed in zip(roots, (7, 7, 8)):
        generate_synthetic_coco(root, seed=seed, num_train_images=5, num_val_images=3)
    first, second, other = roots

    assert dataset_files(first) == dataset_files(second)
    assert read_bytes(os.path.join(first, MARKER_FILE)) == read_bytes(
        os.path.join(second, MARKER_FILE))
    images_a, images_b = decoded_images(first), decoded_images(second)
    assert images_a.keys() == images_b.keys()
    assert all(np.array_equal(images_a[k], images_b[k]) for k in images_a)

    files_other = dataset_files(other)
    assert all(files_other[k] != v for k, v in dataset_files(first).items())
    images_other = decoded_images(other)
    assert not any(np.array_equal(images_a[k], images_other[k]) for k in images_a)


def test_images_do_not_depend_on_split_sizes(tmp_path):
    small, large = str(tmp_path / "small"), str(tmp_path / "large")
    generate_synthetic_coco(small, seed=1, num_train_images=2, num_val_images=1)
    generate_synthetic_coco(large, seed=1, num_train_images=4, num_val_images=2)
    images_small, images_large = decoded_images(small), decoded_images(large)
    assert all(np.array_equal(images_small[k], images_large[k]) for k in images_small)


def test_is_generated_requires_marker(tmp_path):
    root = str(tmp_path / "data")
    assert not is_generated(root)
    generate_synthetic_coco(root, seed=0, num_train_images=2, num_val_images=1)
    assert is_generated(root)
    os.remove(os.path.join(root, MARKER_FILE))
    assert not is_generated(root)


def test_rejects_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_synthetic_coco(str(tmp_path), num_train_images=-1)
    with pytest.raises(ValueError):
        generate_synthetic_coco(str(tmp_path), image_size=(8, 8))
