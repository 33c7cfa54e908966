"""Bad input: what a user sees when an image, annotation, detection, checkpoint or
config is wrong, and what is skipped (and counted) instead of stopping.

Every case checks the error type and that the one-line message names the offending
file / key / entry. Datasets are corrupted in a copy of the tiny synthetic set.

"""
from __future__ import annotations

import collections
import json
import logging
import os
import re
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import synthetic_opts
from posezoo.codecs import build_codec
from posezoo.config import ConfigError, load_config, update_config
from posezoo.core.function import NonFiniteLossError, TrainContext, validate
from posezoo.core.inference import predict
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.datasets.coco import AnnotationError
from posezoo.datasets.joints_dataset import ImageReadError
from posezoo.datasets.synthetic import DETECTIONS_FILE
from posezoo.models import CheckpointError, build_model, load_checkpoint
from posezoo.utils import utils as posezoo_utils
from posezoo.utils.registry import UnknownComponentError

CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- helpers

def copy_root(synthetic_root: str, tmp_path) -> str:
    root = str(tmp_path / "data")
    shutil.copytree(synthetic_root, root)
    return root


def coco_cfg(root: str, tmp_path, *extra: str):
    """The tiny config on a (copied) root, read by the plain COCO loader: the
    ``synthetic`` entry point regenerates data whose files look incomplete, which
    would mask the corruption under test."""
    return load_config(None, synthetic_opts(root, str(tmp_path / "output")) + ["DATASET.DATASET", "coco", *extra])


def ann_path(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"person_keypoints_{split}.json")


def det_path(root: str) -> str:
    return os.path.join(root, "person_detection_results", DETECTIONS_FILE)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


def edit_json(path: str, fn) -> None:
    data = read_json(path)
    fn(data)
    write_json(path, data)


def one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg, f"expected a one-line message, got {msg!r}"
    return msg


def labelled(ann: dict) -> bool:
    return ann.get("category_id") == 1 and max(ann["keypoints"]) > 0


def build(cfg, split: str, is_train: bool):
    return build_dataset(cfg, split, is_train, build_codec(cfg))


def loader_of(dataset) -> DataLoader:
    return DataLoader(dataset, batch_size=16, shuffle=False, num_workers=0)


@pytest.fixture
def restore_logging():
    """tools/train.py replaces the root logger's handlers with its own (one of them
    a log file in tmp_path); close those afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


# ----------------------------------------------------------------------------- 1. unreadable images

@pytest.fixture
def broken_images(synthetic_root, tmp_path):
    """A copy where one val image is missing, one val image is garbage bytes, one
    val image is a truncated JPEG (its first third) and one train image is
    missing. Returns (root, {image_id: path})."""
    root = copy_root(synthetic_root, tmp_path)
    bad = {}
    for split, n in (("val2017", 3), ("train2017", 1)):
        data = read_json(ann_path(root, split))
        files = {im["id"]: os.path.join(root, "images", split, im["file_name"]) for im in data["images"]}
        ids = sorted({a["image_id"] for a in data["annotations"] if labelled(a)})[:n]
        for k, image_id in enumerate(ids):
            if k == 0:
                os.remove(files[image_id])
            elif k == 2:
                with open(files[image_id], "rb") as f:
                    data = f.read()
                with open(files[image_id], "wb") as f:
                    f.write(data[:len(data) // 3])
            else:
                with open(files[image_id], "wb") as f:
                    f.write(b"\x00\x01 this is not an image \xff\xd8" * 40)
            bad[image_id] = files[image_id]
    return root, bad


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


def test_predict_and_validate_leave_unreadable_boxes_out(broken_images, tmp_path):
    root, bad = broken_images
    cfg = coco_cfg(root, tmp_path, "DATASET.SKIP_CORRUPT_IMAGES", "True")
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True)
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    bad_rows = [i for i, rec in enumerate(dataset.db) if rec["image_id"] in bad]
    assert len(bad_rows) >= 2

    out = predict(cfg, loader_of(dataset), model, codec, dataset.flip_pairs, CPU)
    assert len(out["valid"]) == len(dataset)
    assert not out["valid"][bad_rows].any()
    assert out["valid"].sum() == len(dataset) - len(bad_rows)

    out_dir = str(tmp_path / "eval")
    stats, perf = validate(TrainContext(cfg, model, codec, output_dir=out_dir), loader_of(dataset), dataset)
    assert "AP" in stats and perf == stats["AP"] and np.isfinite(list(stats.values())).all()
    results = read_json(os.path.join(out_dir, "results", "keypoints_val2017_results_0.json"))
    assert results, "the readable images must still be evaluated"
    assert not {r["image_id"] for r in results} & set(bad)


# ----------------------------------------------------------------------------- 2. malformed annotations

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


# ----------------------------------------------------------------------------- 3. / 4. GT boxes and persons

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


# ----------------------------------------------------------------------------- 5. detection files

def det_cfg(root, tmp_path, *extra):
    return coco_cfg(root, tmp_path, "TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE", det_path(root), *extra)


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


def test_image_without_any_detection_still_evaluates(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    val = read_json(ann_path(root, "val2017"))
    dropped = sorted({a["image_id"] for a in val["annotations"] if labelled(a)})[0]
    dets = read_json(det_path(root))
    kept = [d for d in dets if d["image_id"] != dropped]
    assert 0 < len(kept) < len(dets)
    write_json(det_path(root), kept)

    cfg = det_cfg(root, tmp_path)
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    assert len(dataset) == len(kept) and dropped not in {r["image_id"] for r in dataset.db}
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True)
    stats, perf = validate(TrainContext(cfg, model, codec, output_dir=str(tmp_path / "eval")), loader_of(dataset),
                           dataset, gallery=False)
    assert "AP" in stats and perf == stats["AP"] and np.isfinite(list(stats.values())).all()


# ----------------------------------------------------------------------------- 6. checkpoints

@pytest.fixture
def tiny_model(synthetic_cfg):
    torch.manual_seed(1)
    return build_model(synthetic_cfg).eval()


def _depth(cfg, depth: int):
    return update_config(cfg, ["MODEL.EXTRA.NUM_LAYERS", str(depth)])


def test_checkpoint_of_a_deeper_or_shallower_resnet_lists_the_keys(synthetic_cfg, tiny_model, tmp_path):
    p18, p34 = str(tmp_path / "r18.pth"), str(tmp_path / "r34.pth")
    torch.save(tiny_model.state_dict(), p18)
    torch.save(build_model(_depth(synthetic_cfg, 34)).state_dict(), p34)

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(_depth(synthetic_cfg, 34)), p18, strict=True)
    msg = one_line(err.value)
    assert p18 in msg and "missing" in msg and "layer1.2.conv1.weight" in msg and "unexpected" not in msg

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(synthetic_cfg), p34, strict=True)
    msg = one_line(err.value)
    assert p34 in msg and "unexpected" in msg and "layer1.2.conv1.weight" in msg and "missing" not in msg


def test_resnet18_checkpoint_into_resnet50_is_refused(synthetic_cfg, tiny_model, tmp_path):
    path = str(tmp_path / "r18.pth")
    torch.save(tiny_model.state_dict(), path)
    model = build_model(_depth(synthetic_cfg, 50))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, path, strict=True)
    msg = one_line(err.value)
    assert path in msg and "layer1.0.conv1.weight" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_resnet18_checkpoint_into_resnet50_lists_missing_keys(synthetic_cfg, tiny_model, tmp_path):
    path = str(tmp_path / "r18.pth")
    torch.save(tiny_model.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(_depth(synthetic_cfg, 50)), path, strict=True)
    msg = one_line(err.value)
    assert "missing" in msg and "layer1.0.conv3.weight" in msg


def test_head_for_another_number_of_joints_names_the_shape(synthetic_cfg, tiny_model, tmp_path):
    path = str(tmp_path / "k10.pth")
    torch.save(build_model(update_config(synthetic_cfg, ["MODEL.NUM_JOINTS", "10"])).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, path, strict=True)
    msg = one_line(err.value)
    assert path in msg and "final_layer.weight" in msg
    assert "(10, 32, 1, 1)" in msg and "(17, 32, 1, 1)" in msg
    with pytest.raises(CheckpointError, match="final_layer.weight"):  # strict=False does not hide it
        load_checkpoint(tiny_model, path, strict=False)


def test_wrapped_and_prefixed_checkpoints_give_identical_outputs(synthetic_cfg, tiny_model, tmp_path):
    state = tiny_model.state_dict()
    prefixed = {"module." + k: v for k, v in state.items()}
    wrapped = {"bare": state, "module_prefix": prefixed, "state_dict": {"epoch": 3, "state_dict": state},
               "model": {"model": state}, "state_dict_module_prefix": {"state_dict": prefixed}}
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = tiny_model(x)
        for wrap, obj in wrapped.items():
            path = str(tmp_path / f"{wrap}.pth")
            torch.save(obj, path)
            torch.manual_seed(2)
            other = build_model(synthetic_cfg).eval()
            if wrap == "bare":
                assert not torch.equal(other(x), expected)  # the load below is what makes them equal
            load_checkpoint(other, path, strict=True)
            assert torch.equal(other(x), expected), wrap


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "no_state_dict"])
def test_unreadable_checkpoint_names_the_file(tiny_model, tmp_path, damage):
    path = str(tmp_path / "bad.pth")
    if damage == "no_state_dict":
        torch.save({"epoch": 3, "perf": 0.5}, path)
    elif damage != "missing":
        torch.save(tiny_model.state_dict(), path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 16)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, path, strict=True)
    assert path in one_line(err.value)


class _Payload:
    """Unpickling this runs os.makedirs(marker): what a malicious file would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def _weights_only_refused(msg: str) -> bool:
    return "weights only" in msg.lower().replace("_", " ")


def test_pickle_with_python_objects_is_refused(tiny_model, tmp_path):
    plain = str(tmp_path / "object.pth")
    torch.save({"x": object()}, plain)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, plain, strict=True)
    assert plain in one_line(err.value) and _weights_only_refused(str(err.value))

    marker = str(tmp_path / "code_ran")
    evil = str(tmp_path / "evil.pth")
    torch.save({"state_dict": tiny_model.state_dict(), "extra": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, evil, strict=True)
    assert evil in one_line(err.value) and _weights_only_refused(str(err.value))
    assert not os.path.exists(marker)
    torch.load(evil, weights_only=False)  # the payload is real: a plain torch.load would run it
    assert os.path.isdir(marker)


def test_refused_pickle_message_names_the_refused_global(tiny_model, tmp_path):
    path = str(tmp_path / "pickled.pth")
    torch.save({"x": object()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, path, strict=True)
    msg = one_line(err.value)
    assert "\x1b[" not in msg  # no terminal escape codes in a log line
    assert re.search(r"\bobject\b", msg.replace(path, ""))  # the refused global


# ----------------------------------------------------------------------------- 7. config

def _yaml(tmp_path, text: str) -> str:
    path = str(tmp_path / "exp.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


@pytest.mark.parametrize("text,key,hint", [
    ("TRAIN:\n  LR_FACTR: 0.1\n", "TRAIN.LR_FACTR", "TRAIN.LR_FACTOR"),
    ("TEST:\n  FLIPTEST: true\n", "TEST.FLIPTEST", "TEST.FLIP_TEST"),
    ("MODLE:\n  NAME: pose_resnet\n", "MODLE", "MODEL"),
])
def test_unknown_yaml_key_names_key_file_and_closest(tmp_path, text, key, hint):
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = one_line(err.value)
    assert f"key {key} " in msg and path in msg and f"did you mean {hint}?" in msg


@pytest.mark.parametrize("key,raw,shown,expected", [
    ("TRAIN.LR", "fast", "'fast'", "a number"),
    ("MODEL.IMAGE_SIZE", "[1.5, 2]", "[1.5, 2]", "a list of integers"),
    ("TEST.FLIP_TEST", "maybe", "'maybe'", "true or false"),
    ("TRAIN.END_EPOCH", "1.5", "1.5", "an integer"),
])
def test_wrong_type_names_key_value_and_expected_type(tmp_path, key, raw, shown, expected):
    node, leaf = key.split(".")
    path = _yaml(tmp_path, f"{node}:\n  {leaf}: {raw}\n")
    for where, load in ((path, lambda: load_config(path)), ("command line", lambda: load_config(None, [key, raw]))):
        with pytest.raises(ConfigError) as err:
            load()
        msg = one_line(err.value)
        assert f"{key} = {shown}" in msg and where in msg and f"expected {expected}" in msg


def test_unknown_extra_field_is_refused_by_the_model(synthetic_cfg, tmp_path):
    cfg = update_config(synthetic_cfg, ["MODEL.EXTRA.NUM_LAYER", "50"])  # free-form until the model reads it
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    msg = one_line(err.value)
    assert "MODEL.EXTRA.NUM_LAYER " in msg and "pose_resnet" in msg and "did you mean MODEL.EXTRA.NUM_LAYERS" in msg

    path = _yaml(tmp_path, "MODEL:\n  NAME: pose_resnet\n  EXTRA:\n    NUM_LAYERS: 18\n    DECONV_FILTERS: [8]\n")
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA\.DECONV_FILTERS .*MODEL\.EXTRA\.NUM_DECONV_FILTERS"):
        build_model(load_config(path))


@pytest.mark.parametrize("key,bad,make,available", [
    ("MODEL.NAME", "pose_resnt", build_model, "pose_resnet"),
    ("DATASET.DATASET", "cocoo", lambda cfg: build(cfg, "val2017", False), "coco"),
    ("MODEL.TARGET_TYPE", "gausian", build_codec, "gaussian"),
    ("LOSS.NAME", "JointsMSE", build_loss, "JointsMSELoss"),
])
def test_unknown_component_lists_available_names(synthetic_cfg, key, bad, make, available):
    with pytest.raises(UnknownComponentError) as err:
        make(update_config(synthetic_cfg, [key, bad]))
    msg = one_line(err.value)
    assert f"{key} = {bad}" in msg and "available" in msg and available in msg


@pytest.mark.parametrize("key,bad,make", [
    ("MODEL.NAME", "posezoo.models.no_such_net", build_model),
    ("LOSS.NAME", "posezoo.no_such_loss", build_loss),
    ("LOSS.NAME", "no_such_pkg_zz.loss", build_loss),
])
def test_unknown_dotted_component_is_an_unknown_component_error(synthetic_cfg, key, bad, make):
    with pytest.raises(UnknownComponentError) as err:
        make(update_config(synthetic_cfg, [key, bad]))
    assert f"{key} = {bad}" in one_line(err.value)


def test_command_line_and_file_problems(synthetic_cfg, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["TRAIN.LR", "0.1", "TRAIN.END_EPOCH"])
    assert "odd" in one_line(err.value) and "TRAIN.END_EPOCH" in str(err.value)
    with pytest.raises(ConfigError, match="odd"):
        update_config(synthetic_cfg, ["TRAIN.LR"])

    missing = str(tmp_path / "no_such.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(missing, [])
    assert missing in one_line(err.value) and "not found" in str(err.value)

    for text, expected in (("TRAIN: [1,\n", "not valid YAML"), ("- a\n- b\n", "mapping")):
        path = _yaml(tmp_path, text)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert path in one_line(err.value) and expected in str(err.value)


def test_config_is_read_only(synthetic_cfg):
    cfg = synthetic_cfg
    attempts = [lambda: setattr(cfg.TRAIN, "LR", 1.0), lambda: cfg.TRAIN.__setitem__("LR", 1.0),
                lambda: setattr(cfg, "NEW_KEY", 1), lambda: delattr(cfg.TRAIN, "LR"),
                lambda: cfg.TRAIN.update(LR=1.0), lambda: cfg.TRAIN.pop("LR"),
                lambda: setattr(cfg.MODEL.EXTRA, "NUM_LAYERS", 50)]
    for attempt in attempts:
        with pytest.raises(AttributeError, match="read-only"):
            attempt()
    assert cfg.TRAIN.LR == cfg.TRAIN["LR"] == 0.001 and "NEW_KEY" not in cfg
    assert cfg.MODEL.EXTRA.NUM_LAYERS == 18

    new = update_config(cfg, ["TRAIN.LR", "0.01"])
    assert new.TRAIN.LR == 0.01 and cfg.TRAIN.LR == 0.001
    with pytest.raises(AttributeError):
        new.TRAIN.LR = 0.1


def test_config_lists_are_read_only_too(synthetic_cfg):
    with pytest.raises((AttributeError, TypeError)):
        synthetic_cfg.MODEL.IMAGE_SIZE[0] = 128
    assert synthetic_cfg.MODEL.IMAGE_SIZE == [64, 64]


# ----------------------------------------------------------------------------- 8. NaN loss

NAN_LOSS = '''
import torch
from torch import nn


class NanLoss(nn.Module):
    def forward(self, output, target, target_weight):
        return torch.tensor(float("nan")) + 0 * output.sum()


def get_loss(cfg):
    return NanLoss()
'''


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch, restore_logging):
    import train

    pkg = "bad_input_nan_loss_pkg"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "nan_loss.py").write_text(NAN_LOSS)
    monkeypatch.syspath_prepend(str(tmp_path))
    exp = _yaml(tmp_path, "# everything comes from the command line\n")
    out_dir = tmp_path / "output"
    # Smallest run that exercises the loop: 32x32 crops, the 10 val boxes as one training batch.
    opts = ["--cfg", exp] + synthetic_opts(synthetic_root, str(out_dir)) + [
        "PRINT_FREQ", "1000", "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]",
        "DATASET.TRAIN_SET", "val2017", "TRAIN.BATCH_SIZE_PER_GPU", "16", "TEST.FLIP_TEST", "False"]

    try:
        train.main(opts)  # one good epoch
        found = [os.path.join(d, f) for d, _, files in os.walk(out_dir) for f in files if f == "checkpoint.pth"]
        assert len(found) == 1
        checkpoint = found[0]
        with open(checkpoint, "rb") as f:
            good_bytes = f.read()
        good_mtime = os.stat(checkpoint).st_mtime_ns

        with pytest.raises(NonFiniteLossError) as err:
            train.main(opts + ["AUTO_RESUME", "True", "TRAIN.END_EPOCH", "2", "LOSS.NAME", f"{pkg}.nan_loss"])
    finally:
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[name]
    msg = one_line(err.value)
    assert checkpoint in msg and "nan" in msg.lower() and "epoch 1" in msg

    with open(checkpoint, "rb") as f:
        assert f.read() == good_bytes
    assert os.stat(checkpoint).st_mtime_ns == good_mtime
    leftovers = [f for _, _, files in os.walk(out_dir) for f in files if ".tmp" in f]
    assert not leftovers


# ----------------------------------------------------------------------------- 9. atomic writes

def _failing_save(obj, f, *args, **kwargs):
    with open(f, "wb") as out:
        out.write(b"PK\x03\x04 half a checkpoint")
    raise OSError(28, "No space left on device")


def test_save_atomic_keeps_the_previous_file_when_saving_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pth")
    posezoo_utils.save_atomic({"w": torch.arange(5.0)}, path)
    with open(path, "rb") as f:
        good = f.read()

    monkeypatch.setattr(posezoo_utils.torch, "save", _failing_save)
    with pytest.raises(OSError, match="No space left"):
        posezoo_utils.save_atomic({"w": torch.zeros(5)}, path)
    monkeypatch.undo()

    with open(path, "rb") as f:
        assert f.read() == good
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5.0))


def test_save_atomic_leaves_no_temporary_file_when_saving_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pth")
    monkeypatch.setattr(posezoo_utils.torch, "save", _failing_save)
    with pytest.raises(OSError):
        posezoo_utils.save_atomic({"w": torch.zeros(5)}, path)
    assert os.listdir(tmp_path) == []


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


def test_api_refuses_a_box_outside_the_image(synthetic_cfg):
    from posezoo.api import PoseEstimator

    estimator = PoseEstimator(synthetic_cfg, build_model(synthetic_cfg, is_train=False), device="cpu")
    with pytest.raises(ValueError, match=r"box \[5000.0, 5000.0, 10.0, 10.0\] lies outside the 640x425 image"):
        estimator.estimate(np.zeros((425, 640, 3), np.uint8), np.array([[5000, 5000, 10, 10]]))
