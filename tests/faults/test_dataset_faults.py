"""Dataset readers: unreadable or truncated images, malformed annotation and
detection files, degenerate or off-image boxes (refused with one line naming the
file / annotation, or skipped and counted)."""
from __future__ import annotations

import collections
import os

import cv2
import pytest
import torch

from posezoo.config import update_config
from posezoo.datasets.coco import AnnotationError
from posezoo.datasets.joints_dataset import ImageReadError

from .conftest import (ann_path, build, coco_cfg, copy_root, det_cfg, det_path, edit_json, labelled, one_line,
                       read_json, write_json)


def test_truncated_jpeg_is_refused_though_opencv_decodes_it(synthetic_root, tmp_path):
    """libjpeg decodes the first third of a JPEG (grey below) and only warns on
    stderr; read_image refuses it from its missing end marker."""
    from posezoo.datasets.joints_dataset import ImageReadError, read_image

    folder = os.path.join(synthetic_root, "images", "val2017")
    source = os.path.join(folder, sorted(os.listdir(folder))[0])
    with open(source, "rb") as f:
        data = f.read()
    path = str(tmp_path / "cut.jpg")
    with open(path, "wb") as f:
        f.write(data[:len(data) // 3])
    assert cv2.imread(path) is not None, "opencv no longer decodes partial JPEGs: the check is moot"
    assert read_image(source, False).shape[2] == 3
    with pytest.raises(ImageReadError, match=r"cut\.jpg is truncated .*DATASET.SKIP_CORRUPT_IMAGES"):
        read_image(path, False)


def test_unreadable_image_raises_naming_the_file(broken_images, tmp_path):
    root, bad = broken_images
    cfg = coco_cfg(root, tmp_path)
    assert cfg.DATASET.SKIP_CORRUPT_IMAGES is False
    for split, is_train in (("val2017", False), ("train2017", True)):
        dataset = build(cfg, split, is_train)  # building reads no image
        bad_rows = [i for i, rec in enumerate(dataset.db) if rec["image_id"] in bad]
        assert bad_rows
        for i in bad_rows:
            with pytest.raises(ImageReadError) as err:
                dataset[i]
            msg = one_line(err.value)
            assert bad[dataset.db[i]["image_id"]] in msg
            assert "DATASET.SKIP_CORRUPT_IMAGES" in msg
        good = next(i for i in range(len(dataset)) if i not in bad_rows)
        assert dataset[good][3]["valid"] == 1


def test_skip_corrupt_images_gives_invalid_samples_with_zero_weight(broken_images, tmp_path):
    root, bad = broken_images
    cfg = coco_cfg(root, tmp_path, "DATASET.SKIP_CORRUPT_IMAGES", "True")
    width, height = cfg.MODEL.IMAGE_SIZE
    for split, is_train in (("val2017", False), ("train2017", True)):
        dataset = build(cfg, split, is_train)
        bad_rows = [i for i, rec in enumerate(dataset.db) if rec["image_id"] in bad]
        assert bad_rows
        for i in bad_rows:
            inputs, target, target_weight, meta = dataset[i]
            assert meta["valid"] == 0
            assert target_weight.shape == (dataset.num_joints, 1)
            assert torch.count_nonzero(target_weight) == 0
            assert inputs.shape == (3, height, width) and torch.isfinite(inputs).all()
        good = next(i for i in range(len(dataset)) if i not in bad_rows)
        _, _, target_weight, meta = dataset[good]
        assert meta["valid"] == 1 and target_weight.sum() > 0


# ----------------------------------------------------------------------------- malformed annotations

def _first_labelled(data: dict) -> dict:
    return next(a for a in data["annotations"] if labelled(a))


def _truncate(path):
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])


def _make_list(path):
    write_json(path, read_json(path)["annotations"])


def _short_keypoints(path):
    edit_json(path, lambda d: _first_labelled(d).__setitem__("keypoints", _first_labelled(d)["keypoints"][:-3]))


def _three_number_bbox(path):
    edit_json(path, lambda d: _first_labelled(d).__setitem__("bbox", _first_labelled(d)["bbox"][:3]))


def _string_bbox(path):
    edit_json(path, lambda d: _first_labelled(d).__setitem__("bbox", [str(v) for v in _first_labelled(d)["bbox"]]))


def _string_keypoint(path):
    edit_json(path, lambda d: _first_labelled(d)["keypoints"].__setitem__(0, "x"))


def _image_without_file_name(path):
    edit_json(path, lambda d: d["images"][0].pop("file_name"))


@pytest.mark.parametrize("corrupt,expected", [
    (_truncate, ["{file}", "not valid JSON"]),
    (_make_list, ["{file}", "images/annotations/categories"]),
    (_short_keypoints, ["annotation id {ann_id}", "51 numbers", "got 48"]),
    (_three_number_bbox, ["annotation id {ann_id}", "bbox", "[x, y, w, h]"]),
    (_string_bbox, ["annotation id {ann_id}", "bbox"]),
    (_string_keypoint, ["annotation id {ann_id}", "keypoints"]),
    (_image_without_file_name, ["{file}", "file_name"]),
], ids=["truncated", "list", "keypoints_length", "bbox_3_numbers", "bbox_strings", "keypoint_string",
        "image_without_file_name"])
def test_malformed_annotation_file_names_file_or_annotation(synthetic_root, tmp_path, corrupt, expected):
    root = copy_root(synthetic_root, tmp_path)
    path = ann_path(root, "train2017")
    ann_id = _first_labelled(read_json(path))["id"]
    corrupt(path)
    cfg = coco_cfg(root, tmp_path)
    with pytest.raises(AnnotationError) as err:
        build(cfg, "train2017", True)
    msg = one_line(err.value)
    for part in expected:
        assert part.format(file=path, ann_id=ann_id) in msg


def test_missing_annotation_file_is_named(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    os.remove(ann_path(root, "val2017"))
    with pytest.raises(AnnotationError) as err:
        build(coco_cfg(root, tmp_path), "val2017", False)
    assert ann_path(root, "val2017") in one_line(err.value) and "not found" in str(err.value)


# ----------------------------------------------------------------------------- GT boxes and persons

def test_gt_boxes_with_nonpositive_size_are_skipped_and_counted(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    cfg = coco_cfg(root, tmp_path)
    before = build(cfg, "train2017", True)
    assert before.skipped_boxes == 0

    path = ann_path(root, "train2017")
    data = read_json(path)
    first, second = [a for a in data["annotations"] if labelled(a)][:2]
    first["bbox"][2] = 0.0     # w == 0
    second["bbox"][3] = -4.0   # h < 0
    write_json(path, data)

    after = build(cfg, "train2017", True)
    assert after.skipped_boxes == 2
    assert len(after) == len(before) - 2
    lost = collections.Counter(r["image_id"] for r in before.db) - collections.Counter(r["image_id"] for r in after.db)
    assert lost == collections.Counter([first["image_id"], second["image_id"]])


def test_persons_without_labelled_keypoints_are_not_trained_on(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    path = ann_path(root, "train2017")
    data = read_json(path)
    unlabelled = next(a for a in data["annotations"] if labelled(a))
    unlabelled["keypoints"] = [0] * len(unlabelled["keypoints"])
    unlabelled["num_keypoints"] = 0
    write_json(path, data)

    persons = [a for a in data["annotations"] if a["category_id"] == 1]
    n_empty = sum(max(a["keypoints"]) == 0 for a in persons)
    assert n_empty >= 2  # the generator's unlabelled background person + ours
    assert all(a["bbox"][2] > 0 and a["bbox"][3] > 0 and a["area"] > 0 for a in persons)

    dataset = build(coco_cfg(root, tmp_path), "train2017", True)
    assert len(dataset) == len(persons) - n_empty
    assert dataset.skipped_boxes == 0  # not bad boxes, just nothing to learn
    assert all(rec["joints_vis"][:, 0].sum() > 0 for rec in dataset.db)


def _dets_set(i, key, value):
    def fn(dets):
        dets[i][key] = value
    return fn


def _dets_drop(i, key):
    def fn(dets):
        del dets[i][key]
    return fn


@pytest.mark.parametrize("case", ["missing", "invalid_json", "no_bbox", "below_threshold", "unknown_image",
                                  "string_score",
                                  "string_bbox"])
def test_bad_detection_file_is_an_annotation_error(synthetic_root, tmp_path, case):
    root = copy_root(synthetic_root, tmp_path)
    path, extra = det_path(root), []
    dets = read_json(path)
    expected = [path]
    if case == "missing":
        path = str(tmp_path / "no_such_detections.json")
        extra, expected = ["TEST.COCO_BBOX_FILE", path], [path, "not found", "TEST.COCO_BBOX_FILE"]
    elif case == "invalid_json":
        with open(path, "w") as f:
            f.write('[{"image_id": 100000, "bbox": [1, 2,')
        expected.append("not valid JSON")
    elif case == "no_bbox":
        _dets_drop(3, "bbox")(dets)
        expected += ["detection #3", "bbox"]
    elif case == "below_threshold":
        thre = f"{max(d['score'] for d in dets) + 0.001:.4f}"
        extra = ["TEST.IMAGE_THRE", thre]
        expected += ["TEST.IMAGE_THRE", thre]
    elif case == "unknown_image":
        _dets_set(2, "image_id", 999999)(dets)
        expected += ["detection #2", "image_id 999999"]
    elif case == "string_score":
        _dets_set(1, "score", "high")(dets)
        expected += ["detection #1", "score"]
    elif case == "string_bbox":
        _dets_set(1, "bbox", ["1", "2", "30", "40"])(dets)
        expected += ["detection #1", "bbox"]
    if case not in ("missing", "invalid_json"):
        write_json(path, dets)
    cfg = update_config(det_cfg(root, tmp_path), extra) if extra else det_cfg(root, tmp_path)
    with pytest.raises(AnnotationError) as err:
        build(cfg, "val2017", False)
    msg = one_line(err.value)
    for part in expected:
        assert part in msg


def test_detections_with_nonpositive_size_are_skipped_and_counted(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    cfg = det_cfg(root, tmp_path)
    n = len(read_json(det_path(root)))
    assert len(build(cfg, "val2017", False)) == n

    def shrink(dets):
        dets[0]["bbox"][2] = 0.0
        dets[1]["bbox"][3] = -1.0
    edit_json(det_path(root), shrink)
    dataset = build(cfg, "val2017", False)
    assert dataset.skipped_boxes == 2
    assert len(dataset) == n - 2


def test_detections_outside_the_image_are_skipped_and_counted(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    cfg = det_cfg(root, tmp_path)
    n = len(read_json(det_path(root)))

    def move(dets):
        dets[0]["bbox"][:2] = [5000.0, 5000.0]
        dets[1]["bbox"][:2] = [-500.0, 3.0]
        dets[2]["bbox"][0] = -dets[2]["bbox"][2] / 2  # half outside: kept, as the official pipeline crops it
    edit_json(det_path(root), move)
    dataset = build(cfg, "val2017", False)
    assert dataset.skipped_boxes == 2 and len(dataset) == n - 2
