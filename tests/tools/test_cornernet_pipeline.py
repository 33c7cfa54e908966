"""Image -> CornerNet person boxes -> pose model, through the API and tools/infer.py."""
import glob
import json
import os
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_MODEL, write_cfg
from posezoo.api import PersonDetector, PoseEstimator
from posezoo.config import load_config
from posezoo.core.detection import detect
from posezoo.datasets.coco_det import detector_input
from posezoo.models import build_model

sys.path.insert(0, os.path.join(ROOT, "tools"))
DET = ["MODEL.NAME", "cornernet", "MODEL.TARGET_TYPE", "cornernet", "MODEL.IMAGE_SIZE", "[127, 127]",
       "MODEL.EXTRA", "{'NUM_CLASSES': 1, 'DIMS': [8, 8, 8], 'MODULES': [1, 1, 1], 'STEM_DIM': 8, 'POOL_DIM': 8, "
       "'HEAD_DIM': 8}", "CORNERNET.CATEGORIES", "[1]", "CORNERNET.TOP_K", "10", "CORNERNET.NUM_DETS", "50",
       "CORNERNET.FLIP_TEST", "False", "GPUS", "[0]"]


class Corners(torch.nn.Module):
    """Stands in for a trained CornerNet: one person, top-left corner at output
    pixel (4, 5), bottom-right at (25, 20), equal embeddings, zero offsets."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        n, h, w = x.shape[0], (x.shape[2] + 1) // 4, (x.shape[3] + 1) // 4
        tl = torch.full((n, 1, h, w), -20.0) + self.p
        br = tl.clone()
        tl[:, 0, 5, 4] = 5.0
        br[:, 0, 20, 25] = 5.0
        zeros = torch.zeros(n, 1, h, w)
        return [{"tl_heat": tl, "br_heat": br, "tl_tag": zeros, "br_tag": zeros, "tl_off": zeros.expand(n, 2, h, w),
                 "br_off": zeros.expand(n, 2, h, w)}]


def _detector(tmp_path):
    """The config, a fixed-corner model and a tiny real CornerNet checkpoint."""
    torch.manual_seed(0)
    cfg = load_config(None, DET)
    path = tmp_path / "det.pth"
    torch.save(build_model(cfg, is_train=False).state_dict(), path)
    return cfg, Corners(), str(path)


# 90x120 image: canvas 127x127, output 32x32, image at left 3, top 18
EXPECTED = np.array([4 * 127 / 32 - 3, 5 * 127 / 32 - 18, (25 - 4) * 127 / 32, (20 - 5) * 127 / 32])


def test_person_detector_finds_the_corners(tmp_path):
    cfg, model, weights = _detector(tmp_path)
    detector = PersonDetector(cfg, model, device="cpu", score_thr=0.3)
    image = (np.random.default_rng(0).uniform(0, 255, (90, 120, 3))).astype(np.uint8)
    boxes = detector.detect(image)
    assert boxes.shape == (1, 5)
    np.testing.assert_allclose(boxes[0, :4], EXPECTED, rtol=1e-5)
    assert boxes[0, 4] == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-5)
    x, meta = detector_input(image, 4, detector.mean, detector.std)
    det = detect(model, detector.codec, x[None], {k: v[None] for k, v in meta.items()}, False)
    assert det["scores"][0, 0].item() == pytest.approx(boxes[0, 4])
    assert len(PersonDetector(cfg, model, device="cpu", score_thr=0.999).detect(image)) == 0
    loaded = PersonDetector.from_config(None, weights, DET, device="cpu")
    assert loaded.detect(image).shape[1] == 5
    with pytest.raises(ValueError, match="does not predict boxes"):
        PersonDetector(load_config(None, ["GPUS", "[0]"]), model)


def test_pose_estimator_uses_the_detector(synthetic_cfg, tmp_path):
    cfg, model, _ = _detector(tmp_path)
    detector = PersonDetector(cfg, model, device="cpu")
    pose = PoseEstimator(synthetic_cfg, build_model(synthetic_cfg, is_train=False), device="cpu", detector=detector)
    image = (np.random.default_rng(1).uniform(0, 255, (90, 120, 3))).astype(np.uint8)
    boxes = detector.detect(image)
    kpts = pose.estimate(image)
    assert kpts.shape == (1, 17, 3) and len(boxes) == 1
    np.testing.assert_array_equal(kpts, pose.estimate(image, boxes))


def test_infer_with_detector_writes_detections(synthetic_root, tmp_path, monkeypatch):
    import infer

    _, _, det_weights = _detector(tmp_path)
    real = PersonDetector.from_config

    def with_fixed_corners(*args, **kwargs):  # the real loading, then the stand-in network
        detector = real(*args, **kwargs)
        detector.model = Corners()
        return detector
    monkeypatch.setattr(infer.PersonDetector, "from_config", with_fixed_corners)
    det_cfg = write_cfg(tmp_path / "det.yaml", DET)
    pose_cfg = write_cfg(tmp_path / "pose.yaml", ["GPUS", "[0]", "OUTPUT_DIR", str(tmp_path)] + TINY_MODEL)
    pose_weights = tmp_path / "pose.pth"
    torch.manual_seed(0)
    torch.save(build_model(load_config(pose_cfg), is_train=False).state_dict(), pose_weights)
    images = os.path.join(synthetic_root, "images", "val2017")
    out = tmp_path / "out"
    results = infer.main(["--cfg", pose_cfg, "--weights", str(pose_weights), "--images", images, "--output", str(out),
                          "--detector-cfg", det_cfg, "--detector-weights", det_weights,
                          "--device", "cpu"])
    dets = json.load(open(out / "detections_results.json"))
    assert len(dets) == len(results) == len(os.listdir(images))  # one person per image
    assert {d["image_id"] for d in dets} <= {int(f[:-4]) for f in os.listdir(images)}
    assert all(len(d["bbox"]) == 4 and d["category_id"] == 1 for d in dets)
    with pytest.raises(ValueError, match="go together"):
        infer.main(["--cfg", pose_cfg, "--weights", str(pose_weights), "--images", images,
                    "--detector-cfg", det_cfg])


def test_test_tool_runs_on_detected_boxes(synthetic_root, tmp_path, monkeypatch):
    import test as test_tool
    from conftest import synthetic_opts

    _, _, det_weights = _detector(tmp_path)
    real = PersonDetector.from_config

    def with_fixed_corners(*args, **kwargs):
        detector = real(*args, **kwargs)
        detector.model = Corners()
        return detector
    monkeypatch.setattr(PersonDetector, "from_config", with_fixed_corners)
    pose_cfg = write_cfg(tmp_path / "pose.yaml", synthetic_opts(synthetic_root, str(tmp_path / "output")))
    pose_weights = tmp_path / "pose.pth"
    torch.manual_seed(0)
    torch.save(build_model(load_config(pose_cfg), is_train=False).state_dict(), pose_weights)
    det_cfg = write_cfg(tmp_path / "det.yaml", DET)
    stats = test_tool.main(["--cfg", pose_cfg, "--detector-cfg", det_cfg, "--detector-weights", det_weights,
                            "--det-score-thr", "0.3", "TEST.MODEL_FILE", str(pose_weights)])
    assert "AP" in stats and 0 <= stats["AP"] <= 1
    det_files = glob.glob(str(tmp_path / "output" / "**" / "detections_val2017.json"), recursive=True)
    assert len(det_files) == 1
    dets = json.load(open(det_files[0]))
    assert len(dets) == len(os.listdir(os.path.join(synthetic_root, "images", "val2017")))
    final = os.path.dirname(os.path.dirname(det_files[0]))
    assert os.path.isfile(os.path.join(final, "results", "keypoints_val2017_cornernet_results_0.json"))
    logs = "".join(open(p).read() for p in glob.glob(os.path.join(final, "*_test.log")))
    assert "person box AP" in logs  # logged once the test's log exists
