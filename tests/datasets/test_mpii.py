"""MPII: the HRNet-layout loader, the official PCKh evaluation (HRNet's
MPIIDataset.evaluate) and the generic PCK maths in core/pck.py.

Real data (skipped without ../shared): the 5 mmpose MPII samples (the first 5
people of MPII valid) and bearpaw's detections_our_format.mat (GT of all 2958
validation people plus the predictions of an earlier method). Everything else
runs on data written by the tests."""
import json
import logging
import os
import sys

import cv2
import numpy as np
import pytest
import torch
from scipy.io import loadmat, savemat

from conftest import MPII_SAMPLES, SHARED_DATA, TINY_MODEL, link_mpii_samples, needs_shared
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.pck import bbox_sizes, head_sizes, pck, pckh, torso_sizes
from posezoo.datasets import build_dataset
from posezoo.datasets.coco import AnnotationError
from posezoo.datasets.mpii import (MEAN_AT_011_NAME, MPII_FLIP_PAIRS, MPII_JOINT_NAMES, OFFICIAL_CURVE,
                                   load_mpii_gt, load_pred_mat, pckh_details, pckh_table)

BEARPAW_GT = os.path.join(SHARED_DATA, "mpii_hg_eval", "detections_our_format.mat")
PARTS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"]
WRISTS = [10, 15]
INCLUDED = [j for j in range(16) if j not in (6, 7)]  # pelvis and thorax are left out of the means

# bearpaw/pytorch-pose evaluation/eval_PCKh.py on detections_our_format.mat's pos_pred_src
# (it prints 2 decimals; its Mean is the unweighted average of the 14 joints)
BEARPAW = {"Head": 95.60, "Shoulder": 92.71, "Elbow": 83.36, "Wrist": 76.74, "Hip": 81.93, "Knee": 73.36,
           "Ankle": 65.45}
BEARPAW_MEAN = 81.46
# HRNet's lib/dataset/mpii.py MPIIDataset.evaluate, run unchanged (outside this repo) on the same
# predictions made 0-based: its Mean pools the joints (weights = visible counts), and its
# "Mean@0.1" is the value at threshold 0.11
HRNET_MEAN = 82.3367161072079
HRNET_MEAN_AT_011 = 33.13817330210773
# princeton-vl/pytorch_stacked_hourglass data/MPII/annot/valid.h5 (read with h5py): the first 5
# validation people = the 5 mmpose samples; its center/scale are already moved/enlarged, 1-based
PRINCETON_CENTER_SCALE = {
    "005808361.jpg": ([966.0, 410.77731840074193], 5.898109866728492),
    "052475643.jpg": ([316.0, 246.42753109921546], 2.2022942582679548),
    "051423444.jpg": ([1030.0, 443.08849541023795], 3.9240412841864956),
    "004645041.jpg": ([809.0, 451.7331509344512], 4.061095911204265),
    "060754485.jpg": ([698.0, 454.6219399075144], 4.218494992292867),
}

needs_gt = pytest.mark.skipif(not os.path.isfile(BEARPAW_GT), reason=f"{BEARPAW_GT} is absent")


def mpii_cfg(root, out, *extra):
    return load_config(None, ["DATASET.DATASET", "mpii", "DATASET.ROOT", str(root), "MODEL.NUM_JOINTS", "16",
                              "OUTPUT_DIR", str(out), "WORKERS", "0", *TINY_MODEL, *extra])


def make_dataset(root, out, image_set="valid", is_train=False, *extra):
    cfg = mpii_cfg(root, out, *extra)
    return build_dataset(cfg, image_set, is_train, build_codec(cfg))


def write_gt_mat(path, joints_1based, visible, headboxes):
    """A gt_<set>.mat in HRNet's layout from (N, 16, 2), (N, 16), (N, 2, 2)."""
    names = np.empty((1, 16), dtype=object)
    for j, name in enumerate(MPII_JOINT_NAMES):
        names[0, j] = np.array([name])
    savemat(path, {"dataset_joints": names, "jnt_missing": (1 - visible.astype(np.uint8)).T,
                   "pos_gt_src": joints_1based.transpose(1, 2, 0), "headboxes_src": headboxes.transpose(1, 2, 0)})


def as_preds(joints_0based):
    """(N, 16, 2) -> (N, 16, 3) predictions with score 1, plus dummy boxes."""
    n = len(joints_0based)
    preds = np.concatenate([joints_0based, np.ones((n, 16, 1))], axis=2)
    return preds, np.ones((n, 6))


# --- generated MPII-format data (no ../shared needed) --------------------------------------------

def person(rng, cx, cy, height):
    """16 plausible 1-based joints around (cx, cy) for a person `height` px tall."""
    offsets = np.array([[-0.1, 0.45], [-0.1, 0.25], [-0.08, 0.05], [0.08, 0.05], [0.1, 0.25], [0.1, 0.45],
                        [0, 0.05], [0, -0.2], [0, -0.25], [0, -0.4], [-0.25, -0.05], [-0.2, -0.12],
                        [-0.12, -0.2], [0.12, -0.2], [0.2, -0.12], [0.25, -0.05]])
    return np.array([cx, cy]) + offsets * height + rng.uniform(-2, 2, (16, 2))


@pytest.fixture(scope="module")
def generated_root(tmp_path_factory):
    """ROOT/images/*.jpg, annot/{train,valid,test}.json and annot/gt_valid.mat."""
    root = tmp_path_factory.mktemp("mpii")
    (root / "images").mkdir()
    (root / "annot").mkdir()
    rng = np.random.default_rng(0)
    entries, heads = [], []
    for i in range(3):
        name = f"{i:09d}.jpg"
        cv2.imwrite(str(root / "images" / name), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        for cx in ((100.0,), (100.0, 220.0), (100.0, 220.0))[i]:  # 5 people
            joints = person(rng, cx, 120.0, 160.0)
            vis = np.ones(16, int)
            vis[0] = 0  # right ankle missing: the flip test sees it move to the left ankle
            joints[0] = -1.0
            entries.append({"image": name, "center": [cx, 110.0], "scale": 0.8, "joints": joints.round(3).tolist(),
                            "joints_vis": vis.tolist()})
            top = joints[9]
            heads.append([[top[0] - 12, top[1] - 4], [top[0] + 12, top[1] + 26]])
    for split in ("train", "valid"):
        with open(root / "annot" / f"{split}.json", "w") as f:
            json.dump(entries, f)
    with open(root / "annot" / "test.json", "w") as f:
        json.dump([{k: e[k] for k in ("image", "center", "scale")} for e in entries], f)
    joints = np.array([e["joints"] for e in entries])
    visible = np.array([e["joints_vis"] for e in entries])
    write_gt_mat(str(root / "annot" / "gt_valid.mat"), joints, visible, np.array(heads))
    return root


def test_generated_loader_applies_the_official_conventions(generated_root, tmp_path):
    dataset = make_dataset(generated_root, tmp_path)
    with open(generated_root / "annot" / "valid.json") as f:
        raw = json.load(f)
    assert len(dataset) == len(raw) == 5
    assert dataset.flip_pairs == [tuple(p) for p in MPII_FLIP_PAIRS] and len(dataset.skeleton) == 15
    for i, (rec, entry) in enumerate(zip(dataset.db, raw)):
        s = entry["scale"]
        assert rec["image_id"] == i and dataset.image_path(i) == str(generated_root / "images" / entry["image"])
        np.testing.assert_allclose(rec["center"], [entry["center"][0] - 1, entry["center"][1] + 15 * s - 1],
                                   rtol=0, atol=1e-4)
        np.testing.assert_allclose(rec["scale"], [1.25 * s, 1.25 * s], rtol=1e-6)
        np.testing.assert_allclose(rec["joints"][:, :2], np.array(entry["joints"]) - 1, atol=1e-4)
        assert (rec["joints"][:, 2] == 0).all()
        np.testing.assert_array_equal(rec["joints_vis"][:, 0], entry["joints_vis"])
        np.testing.assert_array_equal(rec["joints_vis"][:, 1], entry["joints_vis"])


def test_center_minus_one_is_not_moved(generated_root, tmp_path):
    root = tmp_path / "root"
    (root / "annot").mkdir(parents=True)
    with open(root / "annot" / "test.json", "w") as f:
        json.dump([{"image": "a.jpg", "center": [-1, 50], "scale": 2.0}], f)
    rec = make_dataset(root, tmp_path, "test").db[0]
    np.testing.assert_allclose(rec["center"], [-2, 49])
    np.testing.assert_allclose(rec["scale"], [2.0, 2.0])


def test_training_samples_through_joints_dataset(generated_root, tmp_path):
    """Crops are encoded where the transformed joints are, and flipping swaps
    the MPII pairs (the missing right ankle becomes a missing left ankle)."""
    dataset = make_dataset(generated_root, tmp_path, "train", True, "DATASET.ROT_FACTOR", "0",
                           "DATASET.SCALE_FACTOR", "0", "DATASET.FLIP", "True")
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, target, weight, meta = dataset[0]
        assert image.shape == (3, 64, 64) and target.shape == (16, 16, 16) and weight.shape == (16, 1)
        vis = meta["joints_vis"][:, 0]
        flipped = bool(vis[5] == 0)
        assert vis.sum() == 15 and (vis[0] == 0) != flipped
        seen.add(flipped)
        for k in np.flatnonzero((vis > 0) & (weight[:, 0].numpy() > 0)):
            peak = np.unravel_index(int(target[k].argmax()), target[k].shape)
            assert peak == (int(meta["joints"][k, 1] / 4 + 0.5), int(meta["joints"][k, 0] / 4 + 0.5))
        assert weight[5 if flipped else 0, 0] == 0
    assert seen == {False, True}


def test_generated_evaluate_returns_the_official_table(generated_root, tmp_path):
    dataset = make_dataset(generated_root, tmp_path)
    gt = np.stack([rec["joints"][:, :2] for rec in dataset.db]).astype(np.float64)
    preds, boxes = as_preds(gt)
    order = np.array([3, 0, 4, 2, 1])  # any order: image_ids map the predictions back
    table, mean = dataset.evaluate(preds[order], boxes, order, str(tmp_path / "out"))
    assert type(table).__name__ == "OrderedDict"
    assert list(table) == PARTS + ["Mean", "Mean@0.1", MEAN_AT_011_NAME]
    assert mean == table["Mean"] == 100.0 and all(v == 100.0 for v in table.values())
    saved = loadmat(str(tmp_path / "out" / "pred.mat"))["preds"]
    np.testing.assert_allclose(saved, gt + 1)  # official pred.mat: (N, 16, 2), 1-based, in db order

    # one right wrist far off: 4 of 5 right wrists correct, 1 miss among all visible joints
    moved = gt.copy()
    moved[2, 10] += 500.0
    table, mean = dataset.evaluate(*as_preds(moved), np.arange(5), str(tmp_path / "out"))
    visible = 5 * 14 - 5  # 14 joints in the mean, the right ankle missing in everyone
    assert table["Wrist"] == pytest.approx(0.5 * (80.0 + 100.0))
    assert mean == pytest.approx(100.0 * (visible - 1) / visible)
    assert table["Head"] == table["Hip"] == 100.0


def test_missing_predictions_count_as_misses(generated_root, tmp_path, caplog):
    dataset = make_dataset(generated_root, tmp_path)
    gt = np.stack([rec["joints"][:, :2] for rec in dataset.db]).astype(np.float64)
    preds, boxes = as_preds(gt[1:])
    with caplog.at_level(logging.WARNING):
        table, mean = dataset.evaluate(preds, boxes[1:], np.arange(1, 5), str(tmp_path))
    assert "1 of 5 people have no prediction" in caplog.text
    assert mean == pytest.approx(100.0 * 4 / 5) and table["Head"] == pytest.approx(80.0)
    assert np.isnan(loadmat(str(tmp_path / "pred.mat"))["preds"][0]).all()


def test_test_set_writes_pred_mat_and_returns_null(generated_root, tmp_path):
    dataset = make_dataset(generated_root, tmp_path, "test")
    assert len(dataset) == 5 and all(rec["joints_vis"].sum() == 0 for rec in dataset.db)
    preds = np.random.default_rng(0).uniform(0, 100, (5, 16, 3))
    table, mean = dataset.evaluate(preds, np.ones((5, 6)), np.arange(5), str(tmp_path))
    assert dict(table) == {"Null": 0.0} and mean == 0.0
    np.testing.assert_allclose(load_pred_mat(str(tmp_path / "pred.mat")), preds[:, :, :2])  # 0-based back


def test_malformed_annotations_name_file_and_entry(generated_root, tmp_path):
    root = tmp_path / "bad"
    (root / "annot").mkdir(parents=True)
    with pytest.raises(AnnotationError, match=r"annotation file not found: .*annot/valid\.json"):
        make_dataset(root, tmp_path)
    with open(generated_root / "annot" / "valid.json") as f:
        entries = json.load(f)
    cases = [
        (lambda e: e[2].__setitem__("joints", e[2]["joints"][:15]), r"entry 2 \(image '000000001\.jpg'\): "
                                                                    r"joints must be 16 \[x, y\] pairs.*15 entries"),
        (lambda e: e[1].pop("scale"), r"entry 1 .* lacks 'scale'"),
        (lambda e: e[0].__setitem__("center", [1, None]), r"entry 0 .*center \[1, None\] is not 2 finite"),
        (lambda e: e[3].__setitem__("joints_vis", [1] * 3), r"entry 3 .*joints_vis must be 16 numbers"),
    ]
    for corrupt, message in cases:
        bad = json.loads(json.dumps(entries))
        corrupt(bad)
        with open(root / "annot" / "valid.json", "w") as f:
            json.dump(bad, f)
        with pytest.raises(AnnotationError, match=r"annot/valid\.json: " + message):
            make_dataset(root, tmp_path)
    with open(root / "annot" / "valid.json", "w") as f:
        f.write("[{")
    with pytest.raises(AnnotationError, match=r"valid\.json is not valid JSON"):
        make_dataset(root, tmp_path)


def test_ground_truth_errors(generated_root, tmp_path, monkeypatch):
    root = tmp_path / "nogt"
    (root / "annot").mkdir(parents=True)
    os.symlink(generated_root / "annot" / "valid.json", root / "annot" / "valid.json")
    dataset = make_dataset(root, tmp_path)
    preds, boxes = as_preds(np.zeros((5, 16, 2)))
    with pytest.raises(AnnotationError, match=r"no PCKh ground truth for set 'valid'.*gt_valid\.mat"):
        dataset.evaluate(preds, boxes, np.arange(5), str(tmp_path))
    savemat(str(root / "annot" / "gt_valid.mat"), {"jnt_missing": np.zeros((16, 5))})
    with pytest.raises(AnnotationError, match=r"gt_valid\.mat lacks pos_gt_src, headboxes_src"):
        dataset.evaluate(preds, boxes, np.arange(5), str(tmp_path))
    gt = load_mpii_gt(str(generated_root / "annot" / "gt_valid.mat"))
    write_gt_mat(str(root / "annot" / "gt_valid.mat"), gt.joints[:4], gt.visible[:4],
                 np.zeros((4, 2, 2)))
    with pytest.raises(AnnotationError, match=r"has 4 people but .*valid\.json has 5"):
        dataset.evaluate(preds, boxes, np.arange(5), str(tmp_path))
    monkeypatch.setitem(sys.modules, "h5py", None)  # as if h5py were not installed
    h5 = tmp_path / "valid.h5"
    h5.write_bytes(b"not really")
    with pytest.raises(ImportError, match=r"needs h5py"):
        load_mpii_gt(str(h5))


def test_wrong_number_of_joints_is_a_config_error(generated_root, tmp_path):
    cfg = load_config(None, ["DATASET.DATASET", "mpii", "DATASET.ROOT", str(generated_root), "MODEL.NUM_JOINTS",
                             "17", *TINY_MODEL])
    with pytest.raises(ValueError, match="MODEL.NUM_JOINTS = 17 .* has 16 joints"):
        build_dataset(cfg, "valid", False, build_codec(cfg))


# --- real samples ---------------------------------------------------------------------------------

@pytest.fixture
def real_mpii_root(tmp_path):
    """The 5 mmpose samples as ROOT/images + annot/valid.json, by symlinks (never copies)."""
    return link_mpii_samples(tmp_path / "mpii")


@needs_shared
def test_real_samples_follow_the_official_conventions(real_mpii_root, tmp_path):
    dataset = make_dataset(real_mpii_root, tmp_path)
    with open(os.path.join(MPII_SAMPLES, "test_mpii.json")) as f:
        raw = json.load(f)
    assert len(dataset) == 5
    # first sample by hand: center [966, 340], scale 4.718488
    np.testing.assert_allclose(dataset.db[0]["center"], [965.0, 340 + 15 * 4.718488 - 1], atol=1e-4)
    np.testing.assert_allclose(dataset.db[0]["scale"], [5.89811, 5.89811], atol=1e-5)
    np.testing.assert_allclose(dataset.db[0]["joints"][0, :2], [803.0, 710.0])
    for rec, entry in zip(dataset.db, raw):
        center, scale = PRINCETON_CENTER_SCALE[entry["image"]]  # an independent conversion, 1-based
        np.testing.assert_allclose(rec["center"] + 1, center, atol=1e-3)
        np.testing.assert_allclose(rec["scale"], [scale, scale], rtol=1e-6)
        np.testing.assert_allclose(rec["joints"][:, :2] + 1, entry["joints"], atol=1e-4)
        assert os.path.isfile(dataset.image_path(rec["image_id"]))
    image, target, weight, meta = dataset[2]
    assert image.shape == (3, 64, 64) and weight[:, 0].tolist() == [0, 1, 1, 1, 1, 0] + [1] * 10


@needs_shared
@needs_gt
def test_real_samples_evaluated_against_their_columns_of_the_real_gt(real_mpii_root, tmp_path):
    """The 5 samples are MPII valid people 0..4: with those GT columns their own
    joints score 100, and a prediction 1 px off is 1-based correctly."""
    full = load_mpii_gt(BEARPAW_GT)
    write_gt_mat(str(real_mpii_root / "annot" / "gt_valid.mat"), full.joints[:5], full.visible[:5],
                 loadmat(BEARPAW_GT)["headboxes_src"].transpose(2, 0, 1)[:5])
    dataset = make_dataset(real_mpii_root, tmp_path)
    gt0 = np.stack([rec["joints"][:, :2] for rec in dataset.db]).astype(np.float64)
    table, mean = dataset.evaluate(*as_preds(gt0), np.arange(5), str(tmp_path))
    assert mean == 100.0 and all(v == 100.0 for v in table.values())
    np.testing.assert_array_equal(dataset.ground_truth().visible, np.stack([r["joints_vis"][:, 0] > 0
                                                                           for r in dataset.db]))


@needs_gt
def test_real_gt_fed_back_scores_100():
    gt = load_mpii_gt(BEARPAW_GT)
    assert len(gt) == 2958 and (~gt.visible).sum() == 3088
    table = pckh_table(gt.joints, gt)
    assert all(value == 100.0 for value in table.values())


@needs_gt
def test_real_predictions_reproduce_bearpaw_and_hrnet():
    gt = load_mpii_gt(BEARPAW_GT)
    pred = loadmat(BEARPAW_GT)["pos_pred_src"].transpose(2, 0, 1)
    for strict in (False, True):  # HRNet compares with <=, bearpaw with <: same figures here
        details = pckh_details(pred, gt, strict=strict)
        table = details["table"]
        for part, value in BEARPAW.items():
            assert table[part] == pytest.approx(value, abs=0.005), part
        assert details["joint_average"] == pytest.approx(BEARPAW_MEAN, abs=0.005)
        assert table["Mean"] == pytest.approx(HRNET_MEAN, abs=1e-9)
        assert table[MEAN_AT_011_NAME] == pytest.approx(HRNET_MEAN_AT_011, abs=1e-9)
    # Mean@0.1 is the pooled value at 0.1, not at the official curve's index 11 (= 0.11)
    assert OFFICIAL_CURVE[11] == pytest.approx(0.11) and OFFICIAL_CURVE[10] == pytest.approx(0.1)
    dist = np.linalg.norm(pred - gt.joints, axis=2) / gt.head_size[:, None]
    vis = gt.visible[:, INCLUDED]
    for thr, name in ((0.1, "Mean@0.1"), (0.11, MEAN_AT_011_NAME), (0.5, "Mean")):
        pooled = 100.0 * ((dist[:, INCLUDED] <= thr) & vis).sum() / vis.sum()
        assert table[name] == pytest.approx(pooled, abs=1e-9), name
    assert table["Mean@0.1"] < table[MEAN_AT_011_NAME] - 3


@needs_gt
def test_real_gt_with_wrists_shifted_around_the_threshold():
    """Every wrist moved by 0.9 (1.1) x the PCKh@0.5 distance = 0.5 x 0.6 x head
    diagonal: wrists stay at 100 (drop to 0); the other parts stay at 100."""
    gt = load_mpii_gt(BEARPAW_GT)
    counts = gt.visible.sum(axis=0)
    total, wrists = counts[INCLUDED].sum(), counts[WRISTS].sum()
    for factor, wrist_pckh in ((0.9, 100.0), (1.1, 0.0)):
        pred = gt.joints.copy()
        pred[:, WRISTS, 1] += factor * 0.5 * gt.head_size[:, None]
        table = pckh_table(pred, gt)
        assert table["Wrist"] == wrist_pckh
        assert all(table[p] == 100.0 for p in PARTS if p != "Wrist")
        assert table["Mean"] == pytest.approx(100.0 if wrist_pckh else 100.0 * (total - wrists) / total)
        # at 0.1 (and 0.11) the wrists, 0.45 or 0.55 head sizes away, are always missed
        assert table["Mean@0.1"] == pytest.approx(100.0 * (total - wrists) / total)
        assert table[MEAN_AT_011_NAME] == table["Mean@0.1"]


@needs_gt
def test_real_evaluate_through_the_dataset_and_pred_mat_round_trip(tmp_path):
    """A 2958-person valid.json built from the GT, with bearpaw's file found as
    annot/detections_our_format.mat; the predictions go in 0-based."""
    mat = loadmat(BEARPAW_GT)
    gt = load_mpii_gt(BEARPAW_GT)
    root = tmp_path / "mpii"
    (root / "annot").mkdir(parents=True)
    entries = [{"image": f"{i:09d}.jpg", "center": gt.joints[i][gt.visible[i]].mean(axis=0).tolist(), "scale": 2.0,
                "joints": gt.joints[i].tolist(), "joints_vis": gt.visible[i].astype(int).tolist()}
               for i in range(len(gt))]
    with open(root / "annot" / "valid.json", "w") as f:
        json.dump(entries, f)
    os.symlink(BEARPAW_GT, root / "annot" / "detections_our_format.mat")
    dataset = make_dataset(root, tmp_path)
    pred1 = mat["pos_pred_src"].transpose(2, 0, 1)
    order = np.random.default_rng(0).permutation(len(gt))
    preds, boxes = as_preds(pred1[order] - 1.0)
    table, mean = dataset.evaluate(preds, boxes, order, str(tmp_path / "out"))
    assert type(table).__name__ == "OrderedDict" and mean == table["Mean"]
    assert mean == pytest.approx(HRNET_MEAN, abs=1e-9)
    for part, value in BEARPAW.items():
        assert table[part] == pytest.approx(value, abs=0.005)
    saved = loadmat(str(tmp_path / "out" / "pred.mat"))["preds"]
    assert saved.shape == (2958, 16, 2)
    np.testing.assert_allclose(saved, pred1, rtol=0, atol=1e-9)  # 1-based, db order
    np.testing.assert_allclose(load_pred_mat(str(tmp_path / "out" / "pred.mat")), pred1 - 1, atol=1e-9)


@needs_gt
def test_princeton_valid_h5_when_h5py_is_installed():
    pytest.importorskip("h5py")
    h5 = os.path.join(SHARED_DATA, "mpii_hg_eval", "valid.h5")
    gt_h5, gt_mat = load_mpii_gt(h5), load_mpii_gt(BEARPAW_GT)
    np.testing.assert_array_equal(gt_h5.visible, gt_mat.visible)
    np.testing.assert_allclose(gt_h5.head_size, gt_mat.head_size, atol=1e-4)
    # its joints are integer-truncated: the same predictions score within a few tenths
    pred = loadmat(BEARPAW_GT)["pos_pred_src"].transpose(2, 0, 1)
    assert pckh_table(pred, gt_h5)["Mean"] == pytest.approx(HRNET_MEAN, abs=0.1)


# --- generic PCK maths ----------------------------------------------------------------------------

def test_pck_hand_example():
    """Thresholds 0.1 x (100, 200) = 10 and 20 px. Instance 0: 10 px (hit, a tie),
    11 px (miss), 5 px (hit); instance 1: 20 px (hit, a tie), 25 px (miss),
    invisible. Per joint 100 / 0 / 100 %, pooled 3 of 5 = 60 %."""
    gt = np.zeros((2, 3, 2))
    pred = np.array([[[6, 8], [0, 11], [3, 4]], [[12, 16], [0, 25], [1e6, 1e6]]], dtype=np.float64)
    visible = np.array([[1, 1, 1], [1, 1, 0]])
    result = pck(pred, gt, visible, np.array([100.0, 200.0]), alpha=0.1)
    np.testing.assert_array_equal(result.per_joint, [100.0, 0.0, 100.0])
    np.testing.assert_array_equal(result.counts, [2, 2, 1])
    assert result.mean == pytest.approx(60.0)
    strict = pck(pred, gt, visible, np.array([100.0, 200.0]), alpha=0.1, strict=True)  # ties miss with <
    np.testing.assert_array_equal(strict.per_joint, [0.0, 0.0, 100.0])
    assert strict.mean == pytest.approx(20.0)
    several = pck(pred, gt, visible, np.array([100.0, 200.0]), alpha=[0.05, 0.2])
    np.testing.assert_array_equal(several.per_joint, [[0.0, 0.0, 100.0], [100.0, 100.0, 100.0]])
    np.testing.assert_allclose(several.mean, [20.0, 100.0])


def test_pck_normalisers():
    boxes = np.array([[10, 20, 30, 40], [0, 0, 50, 10]], dtype=np.float64)
    np.testing.assert_allclose(bbox_sizes(boxes, "max"), [40, 50])
    np.testing.assert_allclose(bbox_sizes(boxes, "diag"), [50, np.hypot(50, 10)])
    np.testing.assert_allclose(bbox_sizes(boxes, "wh"), [[30, 40], [50, 10]])
    with pytest.raises(ValueError, match="mode"):
        bbox_sizes(boxes, "area")
    gt = np.zeros((2, 4, 2))
    gt[:, 3] = [[6, 8], [0, 2]]
    np.testing.assert_allclose(torso_sizes(gt, 0, 3), [10, 2])
    np.testing.assert_allclose(head_sizes(np.array([[[0, 0], [30, 40]]])), [0.6 * 50])
    # per-axis (w, h): 3 px in x of a 30 px wide box and 4 px in y of a 40 px box = 0.1 + 0.1 -> 0.141
    pred = gt.copy()
    pred[0, 0] = [3, 4]
    result = pck(pred[:1], gt[:1], np.ones((1, 4)), bbox_sizes(boxes[:1], "wh"), alpha=0.14)
    assert result.per_joint[0] == 0.0 and result.mean == pytest.approx(75.0)
    result = pck(pred[:1], gt[:1], np.ones((1, 4)), bbox_sizes(boxes[:1], "wh"), alpha=0.15)
    assert result.mean == 100.0


def test_pckh_edge_cases():
    gt = np.zeros((2, 2, 2))
    pred = np.zeros((2, 2, 2))
    pred[0, 0] = np.nan  # a missing prediction is a miss
    visible = np.array([[1, 0], [1, 0]])  # joint 1 never visible: NaN, left out of the mean
    per_joint, counts = pckh(pred, gt, np.array([10.0, 0.0]), visible, 0.5)  # head size 0: a miss
    assert per_joint[0] == 0.0 and np.isnan(per_joint[1]) and counts.tolist() == [2, 0]
    result = pck(np.zeros((2, 2, 2)), gt, visible, np.array([1.0, 1.0]), alpha=0.5)
    assert result.mean == 100.0
    curve, _ = pckh(np.zeros((2, 2, 2)), gt, np.ones(2), visible, OFFICIAL_CURVE)
    assert curve.shape == (51, 2)
    with pytest.raises(ValueError, match=r"head_size must be \(2,\)"):
        pckh(pred, gt, np.ones(3), visible)
    with pytest.raises(ValueError, match=r"visible must be \(N, K\)"):
        pck(pred, gt, np.ones((2, 3)), np.ones(2))
