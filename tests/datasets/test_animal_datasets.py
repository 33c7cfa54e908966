"""Animal datasets (Animal-Pose, AP-10K, TigDog in CC-SSL's format, synthetic
quadrupeds) read from files the tests write, and the animal metrics (CC-SSL's
PCK@0.05, box PCK, OKS AP with the set's sigmas) on hand-computed cases.

No animal samples exist in ../shared/data (its README lists coco, mpii, h36m,
interhand2.6m, nvgesture and nyu fixtures only), so every file here is written
by the test."""
import json
import os

import cv2
import numpy as np
import pytest
import scipy.io

from conftest import SHARED_DATA, TINY_MODEL
from pycocotools.cocoeval import COCOeval

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.pck import ccssl_pck, keypoint_crop_sizes
from posezoo.datasets import build_dataset
from posezoo.datasets.animal import ANIMALPOSE, AP10K, TIGDOG, box_pck_table
from posezoo.datasets.synthetic_animal import QUADRUPED, generate_synthetic_animals
from posezoo.datasets.tigdog import TIGER_TO_HORSE



@pytest.mark.skipif(not any(os.path.isdir(os.path.join(SHARED_DATA, d)) for d in ("animalpose", "ap10k", "tigdog")),
                    reason="no animal samples in ../shared/data (its README lists coco, mpii, h36m, "
                           "interhand2.6m, nvgesture and nyu fixtures only); readers are tested on written files")
def test_real_animal_samples():
    found = [d for d in ("animalpose", "ap10k", "tigdog") if os.path.isdir(os.path.join(SHARED_DATA, d))]
    assert found, "a real animal sample folder should exist when this test runs"


def _cfg(dataset, root, train, test, joints, extra=()):
    return load_config(None, ["DATASET.DATASET", dataset, "DATASET.ROOT", str(root), "DATASET.TRAIN_SET", train,
                              "DATASET.TEST_SET", test, "MODEL.NUM_JOINTS", str(joints), "WORKERS", "0",
                              "TEST.USE_GT_BBOX", "True", "OUTPUT_DIR", str(root / "out")] + TINY_MODEL + list(extra))


def _coco_file(path, names, species, rng, image_prefix=""):
    """A COCO-format multi-species file: one animal per image, species ids 1..S."""
    k = len(names)
    images, anns = [], []
    for i, cat in enumerate(species):
        image_id = 10 + i
        file_name = f"{image_prefix}{image_id}.jpg"
        images.append({"id": image_id, "file_name": file_name, "width": 80, "height": 60})
        kp = np.zeros((k, 3))
        kp[:, 0], kp[:, 1], kp[:, 2] = rng.uniform(15, 65, k), rng.uniform(10, 50, k), 2
        kp[0] = 0  # one unlabelled joint
        anns.append({"id": 100 + i, "image_id": image_id, "category_id": cat, "bbox": [10, 5, 60, 50],
                     "area": 1500.0, "iscrowd": 0, "num_keypoints": k - 1,
                     "keypoints": kp.reshape(-1).round(2).tolist()})
    cats = [{"id": c, "name": f"species{c}", "supercategory": "animal", "keypoints": list(names), "skeleton": []}
            for c in sorted(set(species))]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return images, anns


def _write_images(folder, images):
    for im in images:
        path = os.path.join(folder, im["file_name"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        cv2.imwrite(path, np.full((im["height"], im["width"], 3), 127, np.uint8))


@pytest.mark.parametrize("name,kp,ann,img_dir,prefix", [
    ("animalpose", ANIMALPOSE, "annotations/animalpose_{}.json", "", "VOC2012/JPEGImages/"),
    ("ap10k", AP10K, "annotations/ap10k-{}.json", "data", ""),
])
def test_coco_format_animal_sets_read_every_species(tmp_path, name, kp, ann, img_dir, prefix):
    """All species categories are read (not only id 1), with the set's flip
    pairs and sigmas; evaluation of the GT itself gives AP 1 and PCK 100."""
    rng = np.random.default_rng(0)
    images, anns = _coco_file(str(tmp_path / ann.format("val")), kp.names, [1, 2, 3, 2], rng, prefix)
    _write_images(str(tmp_path / img_dir), images)
    cfg = _cfg(name, tmp_path, "val", "val", kp.num_joints)
    ds = build_dataset(cfg, "val", False, build_codec(cfg))
    assert len(ds.db) == 4 and ds.category_ids == {1, 2, 3}
    assert ds.flip_pairs == [tuple(p) for p in kp.flip_pairs]
    np.testing.assert_allclose(ds.sigmas, kp.sigmas)
    assert ds.skeleton == list(kp.skeleton)
    assert os.path.isfile(ds.db[0]["image"])
    image, target, weight, _ = ds[0]
    assert target.shape[0] == kp.num_joints and weight[0, 0] == 0 and weight[1, 0] == 1

    preds = np.stack([np.concatenate([r["joints"][:, :2], np.ones((kp.num_joints, 1))], 1) for r in ds.db])
    boxes = np.stack([np.r_[r["center"], r["scale"], 1.0, 1.0] for r in ds.db])
    stats, ap = ds.evaluate(preds, boxes, [r["image_id"] for r in ds.db], str(tmp_path / "out"))
    assert ap == pytest.approx(1.0) and stats["PCK@0.05"] == pytest.approx(100.0)
    assert np.isnan(stats[f"PCK {kp.names[0]}"])  # never labelled


# mmpose configs/_base_/datasets/{animalpose,ap10k}.py (open-mmlab/mmpose 759b39c): the sigmas its
# published Animal-Pose / AP-10K APs were scored with (docs/adaptation.md, "Published numbers").
MMPOSE_ANIMALPOSE_SIGMAS = (0.025, 0.025, 0.026, 0.035, 0.035, 0.10, 0.10, 0.10, 0.107, 0.107,
                            0.107, 0.107, 0.087, 0.087, 0.087, 0.087, 0.089, 0.089, 0.089, 0.089)
MMPOSE_AP10K_SIGMAS = (0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072,
                       0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089)


@pytest.mark.parametrize("kp, official", [(ANIMALPOSE, MMPOSE_ANIMALPOSE_SIGMAS), (AP10K, MMPOSE_AP10K_SIGMAS)])
def test_sigmas_match_the_published_model_zoo(kp, official):
    """OKS AP here is comparable to mmpose's published tables only with their sigmas."""
    assert len(kp.sigmas) == kp.num_joints == len(official)
    np.testing.assert_array_equal(np.asarray(kp.sigmas), np.asarray(official))


def test_ap10k_oks_uses_its_sigmas(tmp_path):
    """One prediction off by d on one joint: the per-instance OKS COCOeval
    computes with AP-10K's sigma for that joint, checked by hand."""
    rng = np.random.default_rng(1)
    images, anns = _coco_file(str(tmp_path / "annotations/ap10k-val.json"), AP10K.names, [5], rng)
    _write_images(str(tmp_path / "data"), images)
    cfg = _cfg("ap10k", tmp_path, "val", "val", 17)
    ds = build_dataset(cfg, "val", False, build_codec(cfg))

    pred = np.array(anns[0]["keypoints"], float).reshape(17, 3)
    pred[:, 2] = 1
    pred[7, 0] += 4.0  # L_F_Paw, sigma 0.062
    dt = ds.coco.loadRes([{"image_id": 10, "category_id": 5, "keypoints": pred.reshape(-1).tolist(), "score": 1.0}])
    ev = COCOeval(ds.coco, dt, "keypoints")
    ev.params.kpt_oks_sigmas = ds.sigmas
    ev.evaluate()
    oks = ev.ious[(10, 5)][0, 0]
    var = (2 * np.asarray(AP10K.sigmas)) ** 2
    labelled = np.arange(17) != 0
    e = np.zeros(17)
    e[7] = 16.0 / var[7] / (1500.0 + np.spacing(1)) / 2
    assert oks == pytest.approx(np.exp(-e)[labelled].mean(), rel=1e-9)


def test_custom_coco_animal_set_by_config_alone(tmp_path):
    """A COCO-format set with its own 5 keypoints still needs config only
    (``DATASET.DATASET: coco``), the category id being anything."""
    rng = np.random.default_rng(2)
    names = ["a", "b", "c", "d", "e"]
    images, _ = _coco_file(str(tmp_path / "annotations/person_keypoints_val.json"), names, [7, 7], rng)
    _write_images(str(tmp_path / "images/val"), images)
    cfg = _cfg("coco", tmp_path, "val", "val", 5, ["DATASET.FLIP_PAIRS", "[[1, 2]]",
                                                 "DATASET.OKS_SIGMAS", "[0.05, 0.05, 0.05, 0.05, 0.05]"])
    ds = build_dataset(cfg, "val", False, build_codec(cfg))
    assert len(ds.db) == 2 and ds.flip_pairs == [(1, 2)] and ds.category_id == 7


def _tigdog_files(root, animal, shots, rng):
    """behaviorDiscovery2.0 .mat files in the layout CC-SSL's load_animal reads."""
    base = os.path.join(root, "behaviorDiscovery2.0")
    os.makedirs(os.path.join(base, "ranges", animal), exist_ok=True)
    os.makedirs(os.path.join(base, "landmarks", animal), exist_ok=True)
    os.makedirs(os.path.join(base, animal), exist_ok=True)
    ranges, truth = [], {}
    frame = 1
    for shot, count in shots:
        ranges.append([shot, frame, frame + count - 1])
        cells = np.empty((count, 1), dtype=object)
        for k in range(count):
            coords = rng.uniform(20, 200, size=(19, 2))
            vis = np.ones((19, 1))
            if k == 0:
                vis[:12] = 0  # 6 visible landmarks of 18 <= 9: filtered out as in dataset_filter
            coords[vis[:, 0] == 0] = 0
            rec = np.empty((1, 1), dtype=[("coords", object), ("visibility", object)])
            rec[0, 0] = (coords, vis)
            cells[k, 0] = rec
            truth[frame + k] = np.hstack([coords, vis])[:18]
            cv2.imwrite(os.path.join(base, animal, f"{frame + k:08d}.jpg"), np.zeros((240, 320, 3), np.uint8))
        scipy.io.savemat(os.path.join(base, "landmarks", animal, f"{shot}.mat"), {"landmarks": cells})
        frame += count
    scipy.io.savemat(os.path.join(base, "ranges", animal, "ranges.mat"), {"ranges": np.array(ranges, float)})
    return truth


@pytest.mark.parametrize("animal", ["horse", "tiger"])
def test_tigdog_reads_ccssl_layout(tmp_path, animal):
    rng = np.random.default_rng(3)
    truth = _tigdog_files(str(tmp_path), animal, [(7, 3), (9, 2), (12, 2)], rng)
    split = tmp_path / "real_animal" / animal
    split.mkdir(parents=True)
    np.save(split / "train_idxs_by_video.npy", np.array([1, 2, 3, 4]))  # indices into all frames
    np.save(split / "valid_idxs_by_video.npy", np.array([5, 6]))
    cfg = _cfg("tigdog", tmp_path, f"{animal}_train", f"{animal}_valid", 18)
    ds = build_dataset(cfg, f"{animal}_valid", False, build_codec(cfg))
    assert [r["image_id"] for r in ds.db] == [5, 6]
    assert ds.flip_pairs == [tuple(p) for p in TIGDOG.flip_pairs]
    rows = truth[6]  # frame index 5 is the file 00000006.jpg
    expect = rows[TIGER_TO_HORSE] if animal == "tiger" else rows
    np.testing.assert_allclose(ds.db[0]["joints"][:, :2], expect[:, :2], rtol=1e-6)
    assert ds.db[0]["image"].endswith(os.path.join(animal, "00000006.jpg"))
    xs, ys = expect[expect[:, 0] > 0, 0], expect[expect[:, 1] > 0, 1]  # frame 6 opens shot 12: 6 labelled
    side = 1.5 * max(np.ptp(xs), np.ptp(ys))
    assert ds.db[0]["crop_size"] == pytest.approx(side)
    assert all(rec["video"] == ds.frames[rec["image_id"]][1] for rec in ds.db)  # the shot, for ADAPT.TEMPORAL
    np.testing.assert_allclose(ds.db[0]["scale"] * 200, [side, side], rtol=1e-5)
    _, target, weight, _ = ds[0]
    assert target.shape == (18, 16, 16) and weight.sum() > 0

    stats, mean = ds.evaluate(np.stack([r["joints"] for r in ds.db]), None, [], str(tmp_path))
    assert mean == pytest.approx(100.0) and stats["PCK L_Eye"] == pytest.approx(100.0)


def test_tigdog_default_split_by_video_filters_frames(tmp_path):
    """Without CC-SSL's split files: frames with <= 9 visible landmarks are
    dropped and whole videos go to one split."""
    _tigdog_files(str(tmp_path), "horse", [(1, 2), (2, 2), (3, 2), (4, 2), (5, 2)], np.random.default_rng(4))
    cfg = _cfg("tigdog", tmp_path, "horse_train", "horse_valid", 18)
    codec = build_codec(cfg)
    train, valid = (build_dataset(cfg, s, False, codec) for s in ("horse_train", "horse_valid"))
    ids = [r["image_id"] for r in train.db] + [r["image_id"] for r in valid.db]
    assert sorted(ids) == [1, 3, 5, 7, 9]  # the first frame of each shot is filtered
    assert len(valid.db) == 1
    with pytest.raises(ValueError, match="horse_valid"):
        build_dataset(cfg, "zebra_valid", False, codec)


def test_ccssl_pck_hand_computed():
    """Two batches of 2 (batch_size 2), 2 joints, crop side 100 (threshold 5 px,
    strict). Batch 1: joint 0 hits 1/2, joint 1 hits 2/2 -> mean 0.75. Batch 2:
    joint 0 1/1 (second unlabelled), joint 1 0/2 -> mean 0.5. Mean over crops
    (0.75 x 2 + 0.5 x 2) / 4 = 62.5 %; per joint the mean of batch accuracies:
    joint 0 (0.5 + 1) / 2 = 75 %, joint 1 (1 + 0) / 2 = 50 %."""
    gt = np.zeros((4, 2, 2))
    d = np.array([[4.9, 0.0], [5.0, 3.0], [1.0, 7.0], [9.0, 5.0]])  # x offsets
    pred = gt.copy()
    pred[:, :, 0] = d
    visible = np.array([[1, 1], [1, 1], [1, 1], [0, 1]], bool)
    res = ccssl_pck(pred, gt, visible, np.full(4, 100.0), alpha=0.05, batch_size=2)
    assert res.mean == pytest.approx(62.5)
    np.testing.assert_allclose(res.per_joint, [75.0, 50.0])
    pooled = ccssl_pck(pred, gt, visible, np.full(4, 100.0), alpha=0.05, batch_size=4)
    np.testing.assert_allclose(pooled.per_joint, [2 / 3 * 100, 50.0])
    assert pooled.mean == pytest.approx((2 / 3 + 0.5) / 2 * 100)


def test_keypoint_crop_sizes_follow_ccssl():
    """x > 0 bounds x and y > 0 bounds y; 1.5 x the longer side."""
    gt = np.array([[[10, 20], [50, 0], [0, 90], [30, 40]]], float)
    # x from {10, 50, 30}: 40 wide; y from {20, 90, 40}: 70 tall
    assert keypoint_crop_sizes(gt)[0] == pytest.approx(105.0)


def test_box_pck_table_hand_computed():
    gt = np.zeros((2, 2, 2))
    pred = gt.copy()
    pred[0, 0, 0], pred[1, 0, 1], pred[1, 1, 0] = 2.0, 2.55, 10.0
    boxes = np.array([[0, 0, 40, 50], [0, 0, 52, 20]], float)  # longer sides 50, 52: thresholds 2.5, 2.6
    table = box_pck_table(pred, gt, np.ones((2, 2), bool), boxes, ["a", "b"])
    assert table["PCK a"] == pytest.approx(100.0) and table["PCK b"] == pytest.approx(50.0)
    assert table["PCK@0.05"] == pytest.approx(75.0)


def test_synthetic_quadrupeds(tmp_path):
    counts = {"source_train": 4, "source_val": 2, "target_train": 3, "target_test": 2}
    a = generate_synthetic_animals(str(tmp_path / "a"), seed=5, counts=counts)
    generate_synthetic_animals(str(tmp_path / "b"), seed=5, counts=counts)
    for split in ("source_train", "target_test"):
        name = sorted(os.listdir(tmp_path / "a" / "images" / split))[0]
        assert (tmp_path / "a" / "images" / split / name).read_bytes() == \
            (tmp_path / "b" / "images" / split / name).read_bytes()
    assert a["target_train"]["images"] == 3
    cfg = _cfg("synthetic_animal", tmp_path / "a", "source_train", "target_test", QUADRUPED.num_joints)
    codec = build_codec(cfg)
    src = build_dataset(cfg, "source_train", True, codec)
    unl = build_dataset(cfg, "target_train", False, codec)
    gt = build_dataset(cfg, "target_train_gt", False, codec)
    assert len(unl.db) == len(gt.db) == a["target_train"]["animals"]
    assert all(r["joints_vis"].sum() == 0 for r in unl.db) and all(r["joints_vis"].sum() > 0 for r in gt.db)
    assert os.path.isfile(gt.db[0]["image"]) and gt.db[0]["image"] == unl.db[0]["image"]
    _, _, weight, _ = unl[0]
    assert float(weight.sum()) == 0.0
    ann = json.loads((tmp_path / "a" / "annotations" / "quadruped_source_train.json").read_text())
    kp = np.array([x["keypoints"] for x in ann["annotations"]]).reshape(-1, 18, 3)
    assert set(np.unique(kp[:, :, 2]).tolist()) <= {0, 1, 2} and (kp[:, :, 2] == 2).any()
    # the far eye is always behind the head: v = 1 for exactly one eye of each animal
    eyes = kp[:, 1:3, 2]
    both = (eyes > 0).all(axis=1)
    assert both.any() and ((eyes[both] == 1).sum(axis=1) == 1).all()
    assert src.flip_pairs == [tuple(p) for p in QUADRUPED.flip_pairs]
    # the labelled target_test is scored (a "test" set is skipped only when it has no labels, as COCO test-dev)
    test = build_dataset(cfg, "target_test", False, codec)
    preds = np.stack([np.concatenate([r["joints"][:, :2], np.ones((18, 1))], 1) for r in test.db])
    boxes = np.stack([np.r_[r["center"], r["scale"], 1.0, 1.0] for r in test.db])
    stats, ap = test.evaluate(preds, boxes, [r["image_id"] for r in test.db], str(tmp_path / "out"))
    assert ap == pytest.approx(1.0) and stats["PCK@0.05"] == pytest.approx(100.0)
    assert stats["PCK@0.1"] == pytest.approx(100.0)
