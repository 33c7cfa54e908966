"""posezoo.api.PoseEstimator: the same crops, flip test and decoding as the test
pipeline (core.function.predict), on the tiny synthetic COCO set; for depth
configs (A2J, AWR) the same crops and decode as core.inference.predict on tiny
synthetic NYU frames, and the hand-centre fallback."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, deterministic_state, synthetic_opts
from posezoo.api import (
    PoseEstimator,
    instance_scores,
    keypoint_metadata,
    whole_image_box,
)
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.inference import predict
from posezoo.datasets import build_dataset
from posezoo.datasets.coco import COCO_FLIP_PAIRS, COCO_SKELETON
from posezoo.datasets.mpii import MPII_FLIP_PAIRS, MPII_SKELETON
from posezoo.datasets.nyu import (
    SKELETON,
    a2j_crop,
    awr_crop,
    estimate_hand_center,
    load_centers,
    nyu_uvd_to_xyz,
    read_depth,
)
from posezoo.models import build_model
from posezoo.utils.transforms import PIXEL_STD
from torch.utils.data import DataLoader


def make_estimator(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, seed))
    return PoseEstimator(cfg, model, device="cpu")


def detections_by_image(cfg):
    with open(cfg.TEST.COCO_BBOX_FILE) as f:
        dets = json.load(f)
    by_image = {}
    for det in dets:
        if det.get("category_id", 1) == 1 and det["score"] >= cfg.TEST.IMAGE_THRE:
            by_image.setdefault(det["image_id"], []).append(det["bbox"] + [det["score"]])
    return by_image


@pytest.mark.parametrize("extra", [
    ["TEST.FLIP_TEST", "True", "DATASET.COLOR_RGB", "True"],
    ["TEST.FLIP_TEST", "False"],
    ["MODEL.TARGET_TYPE", "udp", "TEST.FLIP_TEST", "True"],
    ["TEST.AMP", "bf16", "MODEL.CHANNELS_LAST", "True"],
], ids=["gaussian-flip-rgb", "gaussian-noflip-bgr", "udp-flip", "bf16-channels-last"])
def test_estimate_equals_predict_for_the_same_boxes(synthetic_root, tmp_path, extra):
    cfg = load_config(None, synthetic_opts(synthetic_root, str(tmp_path)) + ["TEST.USE_GT_BBOX", "False"] + extra)
    estimator = make_estimator(cfg)
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    loader = DataLoader(dataset, batch_size=16, shuffle=False, num_workers=0)
    out = predict(cfg, loader, estimator.model, codec, dataset.flip_pairs, torch.device("cpu"))
    assert estimator.flip_pairs == dataset.flip_pairs

    # The loader's batches (16 crops, dataset order) give bit-identical results;
    # other batch compositions change the convolutions in the last float32 bits,
    # which DARK/UDP's Taylor step on these random-weight heatmaps amplifies to ~1e-3 px.
    dets = detections_by_image(cfg)
    image_ids = list(dict.fromkeys(out["image_ids"].tolist()))
    images = [cv2.imread(dataset.image_path(i), cv2.IMREAD_COLOR) for i in image_ids]
    boxes = [np.asarray([d for d in dets[i] if d[2] > 0 and d[3] > 0]) for i in image_ids]
    estimator.batch_size = loader.batch_size
    batched = estimator.estimate_batch(images, boxes)
    np.testing.assert_array_equal(np.concatenate(batched), out["preds"])
    assert len(out["preds"]) > 10
    for image_id, image, image_boxes in zip(image_ids, images, boxes):
        keypoints = estimator.estimate(image, image_boxes)
        rows = out["image_ids"] == image_id
        assert keypoints.shape == (rows.sum(), 17, 3) and keypoints.dtype == np.float64
        np.testing.assert_allclose(keypoints, out["preds"][rows], rtol=0, atol=1e-3)


def test_whole_image_box_and_batching(synthetic_cfg):
    estimator = make_estimator(synthetic_cfg)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (90, 70, 3), dtype=np.uint8), rng.integers(0, 256, (48, 120, 3), dtype=np.uint8)]
    whole = estimator.estimate(images[0])
    assert whole.shape == (1, 17, 3)
    explicit = estimator.estimate(images[0], np.array([[0.0, 0.0, 69.0, 89.0]]))
    np.testing.assert_array_equal(whole, explicit)
    # the crop around the whole image: centre on the middle pixel, 1.25 x the longer side (aspect 1:1 here)
    _, center, scale = estimator.crop(images[0], whole_image_box(90, 70))
    np.testing.assert_allclose(center, [[34.5, 44.5]])
    np.testing.assert_allclose(scale * PIXEL_STD, [[89 * 1.25, 89 * 1.25]], rtol=1e-6)

    boxes = [None, np.array([[10, 5, 30, 30, 0.9], [60, 10, 40, 30, 0.5]])]
    batched = estimator.estimate_batch(images, boxes)
    one_by_one = [estimator.estimate(im, b) for im, b in zip(images, boxes)]
    assert [b.shape for b in batched] == [(1, 17, 3), (2, 17, 3)]
    for a, b in zip(batched, one_by_one):
        np.testing.assert_allclose(a, b, atol=1e-5)
    estimator.batch_size = 1  # chunking does not change the result
    for a, b in zip(estimator.estimate_batch(images, boxes), batched):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert estimator.estimate(images[1], np.zeros((0, 4))).shape == (0, 17, 3)


def test_from_config_loads_weights_strictly(synthetic_cfg, synthetic_root, tmp_path):
    estimator = make_estimator(synthetic_cfg, seed=1)
    path = str(tmp_path / "w.pth")
    torch.save(estimator.model.state_dict(), path)
    opts = synthetic_opts(synthetic_root, str(tmp_path / "out"))
    loaded = PoseEstimator.from_config(None, path, opts, device="cpu")
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(loaded.estimate(image), estimator.estimate(image))
    torch.save({k: v for k, v in estimator.model.state_dict().items() if "final_layer" not in k}, path)
    with pytest.raises(Exception, match="final_layer"):
        PoseEstimator.from_config(None, path, opts, device="cpu")


def test_bad_input_is_one_clear_error(synthetic_cfg):
    estimator = make_estimator(synthetic_cfg)
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        estimator.estimate(image, np.ones((2, 3)))
    with pytest.raises(ValueError, match="width or height <= 0"):
        estimator.estimate(image, [[0, 0, 10, 10], [5, 5, 0, 4]])
    with pytest.raises(ValueError, match="NaN"):
        estimator.estimate(image, [[0, 0, np.nan, 4]])
    with pytest.raises(ValueError, match="BGR uint8"):
        estimator.estimate(image.astype(np.float32))
    with pytest.raises(ValueError, match="2 images but 1 box sets"):
        estimator.estimate_batch([image, image], [None])


def test_keypoint_metadata_and_scores(synthetic_root, tmp_path):
    base = synthetic_opts(synthetic_root, str(tmp_path))
    pairs, skeleton = keypoint_metadata(load_config(None, base))
    assert pairs == [tuple(p) for p in COCO_FLIP_PAIRS] and skeleton == COCO_SKELETON
    pairs, skeleton = keypoint_metadata(load_config(None, base + ["DATASET.DATASET", "mpii", "MODEL.NUM_JOINTS", "16"]))
    assert pairs == [tuple(p) for p in MPII_FLIP_PAIRS] and skeleton == list(MPII_SKELETON)
    custom = load_config(None, base + ["MODEL.NUM_JOINTS", "4", "DATASET.FLIP_PAIRS", "[[0, 1]]"])
    assert keypoint_metadata(custom) == ([(0, 1)], [])

    kpts = np.zeros((2, 4, 3))
    kpts[0, :, 2] = [0.9, 0.5, 0.1, 0.3]
    kpts[1, :, 2] = [0.1, 0.1, 0.1, 0.1]
    # mean over joints above 0.2: (0.9 + 0.5 + 0.3) / 3; none above for the second
    np.testing.assert_allclose(instance_scores(kpts, [0.5, 1.0], 0.2), [0.5 * 1.7 / 3, 0.0])


# --- depth configs (A2J, AWR) ---------------------------------------------------

DEPTH_YAMLS = {"awr": "experiments/nyu/awr_synthetic.yaml", "a2j": "experiments/nyu/a2j_synthetic.yaml"}


def depth_estimator(root, out, name, seed=0):
    """A 64x64 A2J or AWR from its synthetic YAML, deterministic random weights, CPU."""
    cfg = load_config(os.path.join(ROOT, DEPTH_YAMLS[name]), ["DATASET.ROOT", root, "OUTPUT_DIR", out,
                                                              "WORKERS", "0", "MODEL.IMAGE_SIZE", "[64, 64]",
                                                              "TEST.BATCH_SIZE_PER_GPU", "4"])
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, seed))
    return PoseEstimator(cfg, model, device="cpu")


@pytest.mark.parametrize("name", ["awr", "a2j"])
def test_estimate_depth_equals_predict_3d(synthetic_nyu_root, tmp_path, name):
    estimator = depth_estimator(synthetic_nyu_root, str(tmp_path), name)
    cfg = estimator.cfg
    assert estimator.prediction == "keypoints3d" and estimator.flip_pairs == []
    assert estimator.skeleton == [tuple(b) for b in SKELETON]
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "test", False, codec)
    loader = DataLoader(dataset, batch_size=4, shuffle=False, num_workers=0)
    out = predict(cfg, loader, estimator.model, codec, dataset.flip_pairs, torch.device("cpu"))
    depths = [read_depth(dataset.image_path(i)) for i in range(len(dataset))]
    centers = load_centers(synthetic_nyu_root, "test")
    assert len(depths) == 4
    # the loader's batch (all 4 frames): the same numbers
    batched = estimator.estimate_depth_batch(depths, list(centers))
    assert [b.shape for b in batched] == [(1, 14, 3)] * 4
    assert np.abs(np.concatenate(batched) - out["preds"]).max() <= 1e-5  # 0.0 seen
    # one frame per forward changes the convolutions' float32 rounding only
    for depth, center, pred in zip(depths, centers, out["preds"]):
        np.testing.assert_allclose(estimator.estimate_depth(depth, center), pred[None], rtol=0, atol=1e-3)
    # several centres in one frame; a second centre shifted by 5 px crops elsewhere
    two = estimator.estimate_depth(depths[0], np.stack([centers[0], centers[0] + [5.0, 0.0, 0.0]]))
    assert two.shape == (2, 14, 3) and not np.allclose(two[0], two[1])

    # independently: the recipe's crop by hand, the model, the codec, and numpy's inverse of the crop matrix
    crop = (awr_crop if name == "awr" else a2j_crop)(depths[1], centers[1], 64)
    with torch.no_grad():
        output = estimator.model(torch.from_numpy(crop.depth[None, None]))
        joints = codec.decode_crop(output, torch.from_numpy(crop.depth[None, None]))[0].double().numpy()
    back = np.linalg.inv(crop.image_to_crop) @ np.concatenate([joints[:, :2], np.ones((14, 1))], axis=1).T
    expected = np.concatenate([back[:2].T, joints[:, 2:] * crop.depth_scale + centers[1][2]], axis=1)
    np.testing.assert_allclose(batched[1][0], expected, rtol=0, atol=1e-3)  # float32 depths near 1 m: ulp 6e-5 mm


def test_estimate_hand_center_fallback(synthetic_nyu_root, tmp_path):
    errors = []
    for split in ("train", "test"):
        true_xyz = np.loadtxt(os.path.join(synthetic_nyu_root, f"center_{split}_refined.txt"))
        for i, xyz in enumerate(true_xyz):
            depth = read_depth(os.path.join(synthetic_nyu_root, split, f"depth_1_{i + 1:07d}.png"))
            errors.append(np.linalg.norm(nyu_uvd_to_xyz(estimate_hand_center(depth)) - xyz))
    # 12 frames; the worst (41 mm) has a tilted wall reaching nearer than the hand in a corner
    errors = np.array(errors)
    assert len(errors) == 12 and errors.mean() < 25.0 and np.median(errors) < 20.0 and errors.max() < 45.0

    depth = read_depth(os.path.join(synthetic_nyu_root, "test", "depth_1_0000001.png"))
    center = estimate_hand_center(depth)
    flying = depth.copy()
    flying[5:7, 5:7] = 300.0  # a few flying pixels far nearer than the hand change nothing
    np.testing.assert_array_equal(estimate_hand_center(flying), center)
    with pytest.raises(ValueError, match="no valid depth"):
        estimate_hand_center(np.zeros((48, 64), np.float32))

    estimator = depth_estimator(synthetic_nyu_root, str(tmp_path), "awr")
    np.testing.assert_array_equal(estimator.estimate_depth(depth), estimator.estimate_depth(depth, center))


def test_depth_and_image_misuse_are_clear_errors(synthetic_nyu_root, synthetic_cfg, tmp_path):
    depth_model = depth_estimator(synthetic_nyu_root, str(tmp_path), "awr")
    depth = read_depth(os.path.join(synthetic_nyu_root, "test", "depth_1_0000001.png"))
    center = load_centers(synthetic_nyu_root, "test")[0]
    with pytest.raises(ValueError, match=r"predicts keypoints3d from depth crops: use estimate_depth\(depth_mm, center_uvd\), not estimate"):
        depth_model.estimate(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match=r"predicts keypoints2d from image crops: use estimate\(image, boxes\), not estimate_depth"):
        make_estimator(synthetic_cfg).estimate_depth(depth, center)
    with pytest.raises(ValueError, match=r"expected an \(H, W\) depth map in mm, got uint8 \(480, 640, 3\)"):
        depth_model.estimate_depth(np.zeros((480, 640, 3), np.uint8), center)
    with pytest.raises(ValueError, match=r"\(3,\) or \(M, 3\)"):
        depth_model.estimate_depth(depth, center[:2])
    with pytest.raises(ValueError, match="depth d > 0"):
        depth_model.estimate_depth(depth, [320.0, 240.0, 0.0])
    with pytest.raises(ValueError, match="outside the 640x480 frame"):
        depth_model.estimate_depth(depth, [2000.0, 240.0, 600.0])
    with pytest.raises(ValueError, match="2 depth maps but 1 centre sets"):
        depth_model.estimate_depth_batch([depth, depth], [center])


@pytest.fixture(scope="module")
def body3d_estimator(tmp_path_factory):
    """A tiny c2f_vol (2 stacks, 1 then 8 depth bins) on synthetic Human3.6M frames."""
    from posezoo.datasets.synthetic_h36m import generate_synthetic_h36m

    root = str(tmp_path_factory.mktemp("h36m"))
    generate_synthetic_h36m(root, seed=3, num_train=4, num_test=4)
    cfg = load_config(os.path.join(ROOT, "experiments", "h36m", "c2f_vol_synthetic.yaml"),
                      ["DATASET.ROOT", root, "WORKERS", "0", "MODEL.EXTRA.NUM_FEATURES", "16",
                       "VOLUMETRIC.RES_Z", "[1, 8]", "OUTPUT_DIR", str(tmp_path_factory.mktemp("out"))])
    return make_estimator(cfg, seed=1)


def test_estimate_3d_equals_the_test_pipeline(body3d_estimator):
    """A box that maps to a frame's own crop gives, through estimate_3d with the
    frame's camera and root depth, the camera-mm joints predict() decodes for
    that frame; uvz is their projection with the depth relative to the root."""
    from posezoo.datasets.h36m import ROOT_JOINT

    est = body3d_estimator
    dataset = build_dataset(est.cfg, "test", False, est.codec)
    out = predict(est.cfg, DataLoader(dataset, batch_size=4), est.model, est.codec, dataset.flip_pairs,
                  torch.device("cpu"))
    for i in (0, 3):
        rec = dataset.db[i]
        side = float(rec["scale"][0]) * PIXEL_STD / 1.25  # box_to_center_scale pads by 25 %
        box = np.array([[rec["center"][0] - side / 2, rec["center"][1] - side / 2, side, side, 1.0]])
        camera = {"focal": rec["focal"], "princpt": rec["princpt"], "root_depth": rec["joints_cam"][ROOT_JOINT, 2]}
        pose = est.estimate_3d(cv2.imread(rec["image"]), box, camera)
        assert pose["uvz"].shape == (1, 17, 3) and pose["score"].shape == (1, 17)
        np.testing.assert_allclose(pose["xyz"][0], out["preds"][i][:, :3], atol=1e-3)
        z = pose["xyz"][0, :, 2]
        np.testing.assert_allclose(pose["uvz"][0, :, 2], z - rec["joints_cam"][ROOT_JOINT, 2], atol=1e-6)
        np.testing.assert_allclose(pose["uvz"][0, :, :2], pose["xyz"][0, :, :2] / z[:, None] * rec["focal"]
                                   + rec["princpt"], atol=1e-6)
    no_camera = est.estimate_3d(cv2.imread(dataset.db[0]["image"]))  # the whole image, no camera: no xyz
    assert set(no_camera) == {"uvz", "score"} and no_camera["uvz"].shape == (1, 17, 3)


def test_3d_misuse_is_one_line(body3d_estimator):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"predicts keypoints3d from image crops: use estimate_3d\(image, boxes\)"):
        body3d_estimator.estimate(image)
    with pytest.raises(ValueError, match=r"missing \['root_depth'\]"):
        body3d_estimator.estimate_3d(image, None, {"focal": (1, 1), "princpt": (0, 0)})
