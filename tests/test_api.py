"""posezoo.api.PoseEstimator: the same crops, flip test and decoding as the test
pipeline (core.function.predict), on the tiny synthetic COCO set."""
import json

import cv2
import numpy as np
import pytest
import torch
from conftest import deterministic_state, synthetic_opts
from posezoo.api import (
    PoseEstimator,
    instance_scores,
    keypoint_metadata,
    whole_image_box,
)
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import predict
from posezoo.datasets import build_dataset
from posezoo.datasets.coco import COCO_FLIP_PAIRS
from posezoo.datasets.mpii import MPII_FLIP_PAIRS, MPII_SKELETON
from posezoo.models import build_model
from posezoo.utils.transforms import PIXEL_STD
from posezoo.utils.vis import COCO_SKELETON
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

