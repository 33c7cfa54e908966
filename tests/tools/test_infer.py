"""tools/infer.py on images, a folder and a video of the tiny synthetic COCO set,
on synthetic NYU depth PNGs with a depth config (results_uvd.txt, drawn frames, 3D
plots), and the visual output of training and testing (TensorBoard debug images,
the best/worst gallery)."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import types

import cv2
import infer
import numpy as np
import pytest
import torch
from conftest import ROOT, deterministic_state, synthetic_opts, write_cfg
from posezoo.api import PoseEstimator
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.function import (
    TrainContext,
    _write_best_worst,
    train_one_epoch,
    validate,
)
from posezoo.core.evaluate import instance_oks
from posezoo.core.inference import predict
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.datasets.nyu import SKELETON, load_centers, read_depth
from posezoo.models import build_model
from posezoo.utils.vis import draw_hand_uvd
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader


@pytest.fixture(scope="module")
def setup(synthetic_root, tmp_path_factory):
    """A YAML for the tiny model on the synthetic set and deterministic weights for it."""
    tmp = tmp_path_factory.mktemp("infer")
    opts = synthetic_opts(synthetic_root, str(tmp / "output"))
    cfg_path = write_cfg(tmp / "tiny.yaml", opts)
    cfg = load_config(cfg_path)
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, 0))
    weights = str(tmp / "w.pth")
    torch.save(model.state_dict(), weights)
    return {"cfg_path": str(cfg_path), "weights": weights, "cfg": cfg, "root": synthetic_root,
            "val": os.path.join(synthetic_root, "images", "val2017"),
            "dets": os.path.join(synthetic_root, "person_detection_results",
                                 "COCO_val2017_detections_synthetic.json"),
            "estimator": PoseEstimator(cfg, model, device="cpu")}


def run_infer(setup, images, out, *extra):
    return infer.main(["--cfg", setup["cfg_path"], "--weights", setup["weights"], "--images", str(images),
                       "--output", str(out), *extra])


def assert_coco_results(results, num_joints=17):
    for r in results:
        assert r["category_id"] == 1 and isinstance(r["score"], float)
        assert len(r["keypoints"]) == 3 * num_joints and all(np.isfinite(r["keypoints"]))


def test_folder_with_detections(setup, tmp_path):
    results = run_infer(setup, setup["val"], tmp_path / "out", "--boxes", setup["dets"], "--score-thr", "0.3")
    with open(tmp_path / "out" / "keypoints_results.json") as f:
        assert json.load(f) == results
    with open(setup["dets"]) as f:
        dets = [d for d in json.load(f) if d["score"] >= 0.3]
    assert len(results) == len(dets) > 0
    assert_coco_results(results)
    # each result is the API's prediction for its box, and the score the official rescoring
    for r in results:
        image = cv2.imread(os.path.join(setup["val"], r["file_name"]))
        box = next(d for d in dets if d["image_id"] == r["image_id"] and np.allclose(d["bbox"], r["bbox"], atol=1e-3))
        kp = setup["estimator"].estimate(image, np.array([box["bbox"] + [box["score"]]]))[0]
        np.testing.assert_allclose(r["keypoints"], kp.reshape(-1).round(4), atol=2e-4)
        assert r["score"] == pytest.approx(box["score"] * kp[:, 2][kp[:, 2] > 0.0].mean()
                                           if (kp[:, 2] > 0).any() else 0.0)
    # valid COCO results for the synthetic ground truth (image ids = numeric file-name stems)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(os.path.join(setup["root"], "annotations", "person_keypoints_val2017.json"))
        evaluator = COCOeval(gt, gt.loadRes(str(tmp_path / "out" / "keypoints_results.json")), "keypoints")
        evaluator.evaluate()
    assert {r["image_id"] for r in results} <= set(gt.getImgIds())
    # every input image is drawn, and the drawing changed it where there are people (all boxes here score
    # >= --draw-thr 0.3, so each gets its outline)
    for name in sorted(os.listdir(setup["val"])):
        drawn = cv2.imread(str(tmp_path / "out" / "images" / name))
        original = cv2.imread(os.path.join(setup["val"], name))
        assert drawn.shape == original.shape
        people = [r for r in results if r["file_name"] == name]
        changed = np.abs(drawn.astype(int) - original).sum(axis=2) > 60
        assert changed.any() == bool(people)


def test_single_file_whole_image(setup, tmp_path):
    path = os.path.join(setup["val"], "000000100002.jpg")
    results = run_infer(setup, path, tmp_path / "one", "--kpt-thr", "-1")
    image = cv2.imread(path)
    h, w = image.shape[:2]
    assert len(results) == 1 and results[0]["image_id"] == 100002 and results[0]["file_name"] == "000000100002.jpg"
    assert results[0]["bbox"] == [0.0, 0.0, w - 1.0, h - 1.0]
    assert_coco_results(results)
    np.testing.assert_allclose(results[0]["keypoints"],
                               setup["estimator"].estimate(image)[0].reshape(-1).round(4), atol=2e-4)
    drawn = cv2.imread(str(tmp_path / "one" / "images" / "000000100002.jpg"))
    kp = np.reshape(results[0]["keypoints"], (17, 3))
    # every joint (threshold -1) is drawn: its pixel now has a skeleton colour, far from the JPEG's
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < w - 0.5) & (kp[:, 1] >= 0) & (kp[:, 1] < h - 0.5)
    xy = np.round(kp[inside, :2]).astype(int)
    assert len(xy) and (np.abs(drawn[xy[:, 1], xy[:, 0]].astype(int) - image[xy[:, 1], xy[:, 0]]).sum(1) > 0).all()


def test_video(setup, tmp_path):
    names = sorted(os.listdir(setup["val"]))[:5]
    size = (160, 120)
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for name in names:
        writer.write(cv2.resize(cv2.imread(os.path.join(setup["val"], name)), size))
    writer.release()
    dets = [{"image_id": 2, "bbox": [20, 10, 60, 100], "score": 0.9},
            {"image_id": 2, "bbox": [80, 10, 60, 100], "score": 0.8},
            {"image_id": 4, "bbox": [30, 20, 50, 90], "score": 0.7}]
    with open(tmp_path / "dets.json", "w") as f:
        json.dump(dets, f)
    for boxes, expected_ids in (([], [0, 1, 2, 3, 4]), (["--boxes", str(tmp_path / "dets.json")], [2, 2, 4])):
        out = tmp_path / ("boxes" if boxes else "whole")
        results = run_infer(setup, video, out, *boxes)
        assert [r["image_id"] for r in results] == expected_ids
        assert_coco_results(results)
        capture = cv2.VideoCapture(str(out / "clip.avi"))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        assert len(frames) == 5 and frames[0].shape == (120, 160, 3)
    # the boxes of frame 2 were estimated on that frame
    capture = cv2.VideoCapture(video)
    for _ in range(3):
        _, frame = capture.read()
    kp = setup["estimator"].estimate(frame, np.array([d["bbox"] + [d["score"]] for d in dets[:2]]))
    np.testing.assert_allclose([r["keypoints"] for r in results[:2]], kp.reshape(2, -1).round(4), atol=2e-4)


def test_errors_are_one_clear_line(setup, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        run_infer(setup, tmp_path / "missing", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="the folder has no image"):
        run_infer(setup, tmp_path / "empty", tmp_path / "o")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(OSError, match="cannot read image .*broken.jpg"):
        run_infer(setup, bad, tmp_path / "o")
    # skipped and counted with DATASET.SKIP_CORRUPT_IMAGES
    shutil.copy(os.path.join(setup["val"], "000000100001.jpg"), bad / "000000100001.jpg")
    results = run_infer(setup, bad, tmp_path / "o", "DATASET.SKIP_CORRUPT_IMAGES", "True")
    assert [r["image_id"] for r in results] == [100001]
    with open(tmp_path / "o" / "skipped.json") as f:  # the end-of-run summary, beside the results
        assert json.load(f) == {"unreadable_images": [str(bad / "broken.jpg")], "dropped_boxes": 0}
    with open(tmp_path / "other.json", "w") as f:
        json.dump([{"image_id": 7, "bbox": [0, 0, 10, 10], "score": 1.0}], f)
    with pytest.raises(ValueError, match="no box above --score-thr matches any input image"):
        run_infer(setup, setup["val"], tmp_path / "o", "--boxes", str(tmp_path / "other.json"))
    with open(tmp_path / "malformed.json", "w") as f:
        json.dump([{"image_id": 100000, "bbox": [0, 0, 10], "score": 1.0}], f)
    with pytest.raises(ValueError, match=r"entry #0 needs bbox \[x, y, w, h\]"):
        run_infer(setup, setup["val"], tmp_path / "o", "--boxes", str(tmp_path / "malformed.json"))
    video = tmp_path / "fake.mp4"
    video.write_bytes(b"\x00" * 100)
    with pytest.raises(OSError, match="cannot open the video"):
        run_infer(setup, video, tmp_path / "o")


def test_boxes_from_annotation_file_by_file_name(setup, tmp_path):
    """A COCO annotation dict: boxes reach images through images[].file_name."""
    folder = tmp_path / "renamed"
    folder.mkdir()
    shutil.copy(os.path.join(setup["val"], "000000100003.jpg"), folder / "street.jpg")
    ann = {"images": [{"id": 5, "file_name": "sub/street.jpg"}],
           "annotations": [{"image_id": 5, "bbox": [30, 20, 80, 150]}, {"image_id": 5, "bbox": [1, 1, 0, 5]}]}
    with open(tmp_path / "ann.json", "w") as f:
        json.dump(ann, f)
    results = run_infer(setup, folder, tmp_path / "o", "--boxes", str(tmp_path / "ann.json"))
    assert len(results) == 1 and results[0]["image_id"] == "street" and results[0]["bbox"] == [30, 20, 80, 150]


def test_command_line_error_is_one_line(setup, tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--cfg", setup["cfg_path"],
                           "--weights", setup["weights"], "--images", str(tmp_path / "nope")],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such file or directory" in lines[0]


# --- visual output of training and testing ---------------------------------------


class RecordingWriter:
    """Stands in for SummaryWriter: records every image logged."""

    def __init__(self):
        self.images = {}

    def add_scalar(self, *args, **kwargs):
        pass

    def add_image(self, tag, image, step, dataformats="CHW"):
        assert dataformats == "HWC" and image.dtype == np.uint8
        self.images[tag] = image


def test_tensorboard_debug_images(setup, tmp_path):
    cfg = load_config(setup["cfg_path"], ["PRINT_FREQ", "1000", "DEBUG.DEBUG", "True",
                                          "DEBUG.SAVE_HEATMAPS_GT", "True"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    loader = DataLoader(torch.utils.data.Subset(dataset, range(8)), batch_size=8)
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, 0))
    writer = RecordingWriter()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    ctx = TrainContext(cfg, model, codec, build_loss(cfg), optimizer, output_dir=str(tmp_path), writer=writer,
                       dataset=dataset)
    train_one_epoch(ctx, loader, 0)
    assert set(writer.images) == {"train/gt", "train/pred", "train/hm_gt", "train/hm_pred"}
    # 8 crops of 64x64 in one row with 2 px padding; 8 rows of (1 + 17) heatmap tiles of 16x16
    assert writer.images["train/gt"].shape == (68, 8 * 66 + 2, 3)
    assert writer.images["train/hm_gt"].shape == (8 * 16, 18 * 16, 3)
    assert not np.array_equal(writer.images["train/hm_gt"], writer.images["train/hm_pred"])
    # only the DEBUG switch that is on writes a file
    assert sorted(os.listdir(tmp_path / "debug")) == ["train_0_0_hm_gt.jpg"]
    written = cv2.imread(str(tmp_path / "debug" / "train_0_0_hm_gt.jpg"))
    assert written.shape == writer.images["train/hm_gt"].shape


def test_instance_oks_equals_cocoeval(setup):
    cfg = load_config(setup["cfg_path"])
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, build_codec(cfg))
    rng = np.random.default_rng(0)
    preds = np.stack([r["joints"] for r in dataset.db]).astype(np.float64)
    preds[:, :, :2] += rng.normal(0, 4, preds[:, :, :2].shape)
    preds[:, :, 2] = 1.0
    image_ids = np.array([r["image_id"] for r in dataset.db])
    oks, matched = instance_oks(dataset, preds, image_ids)
    results = [{"image_id": int(i), "category_id": 1, "keypoints": p.reshape(-1).tolist(), "score": 1.0 - k * 1e-3}
               for k, (i, p) in enumerate(zip(image_ids, preds))]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(dataset.coco, dataset.coco.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = dataset.sigmas
        evaluator.evaluate()
    for image_id in np.unique(image_ids):
        rows = np.flatnonzero(image_ids == image_id)
        # COCOeval's OKS matrix: detections (by descending score, our order here) x GTs
        expected = evaluator.ious[int(image_id), 1]
        labelled = [j for j, a in enumerate(evaluator._gts[int(image_id), 1]) if a["num_keypoints"] > 0]
        np.testing.assert_allclose(oks[rows], np.asarray(expected)[:, labelled].max(axis=1), rtol=1e-12)
    assert 0.3 < oks.mean() < 1.0
    np.testing.assert_array_equal(matched[:, :, :2] != 0, np.stack([r["joints"][:, :2] for r in dataset.db]) != 0)


def test_best_and_worst_gallery(setup, tmp_path):
    cfg = load_config(setup["cfg_path"], ["TEST.USE_GT_BBOX", "False"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    out = predict(cfg, DataLoader(dataset, batch_size=16), setup["estimator"].model, codec, dataset.flip_pairs,
                  torch.device("cpu"))
    # a few predictions replaced by the truth, so that there is a spread of OKS
    truth = {ann["image_id"]: ann for ann in dataset.coco.dataset["annotations"] if ann["num_keypoints"] > 5}
    for row in range(0, len(out["preds"]), 3):
        ann = truth.get(int(out["image_ids"][row]))
        if ann:
            out["preds"][row] = np.reshape(ann["keypoints"], (17, 3))
            out["preds"][row, :, 2] = 0.9
    writer = RecordingWriter()
    ranking = _write_best_worst(dataset, out, str(tmp_path / "gallery"), writer, count=3)
    for name in ("best_val2017.png", "worst_val2017.png", "val2017.json"):
        assert (tmp_path / "gallery" / name).is_file()
    best, worst = [r["oks"] for r in ranking["best"]], [r["oks"] for r in ranking["worst"]]
    assert ranking["metric"] == "oks" and best == sorted(best, reverse=True) and worst == sorted(worst)
    assert best[0] >= 0.9 and best[-1] >= worst[0] and worst[0] < 0.5
    oks, _ = instance_oks(dataset, out["preds"], out["image_ids"])
    assert best[0] == pytest.approx(oks.max()) and worst[0] == pytest.approx(oks.min())
    assert writer.images["gallery/best"].shape == cv2.imread(str(tmp_path / "gallery" / "best_val2017.png")).shape
    # without ground truth the instances are ranked by predicted score
    no_gt = types.SimpleNamespace(image_path=dataset.image_path, skeleton=dataset.skeleton,
                                  flip_pairs=dataset.flip_pairs, image_set="val2017")
    ranking = _write_best_worst(no_gt, out, str(tmp_path / "by_score"), count=2)
    scores = out["preds"][:, :, 2].mean(axis=1) * out["boxes"][:, 5]
    assert ranking["metric"] == "score" and ranking["best"][0]["score"] == pytest.approx(scores.max())
    assert ranking["worst"][0]["score"] == pytest.approx(scores.min())


def test_validate_writes_the_galleries(setup, tmp_path):
    cfg = load_config(setup["cfg_path"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    writer = RecordingWriter()
    ctx = TrainContext(cfg, setup["estimator"].model, codec, output_dir=str(tmp_path), writer=writer)
    validate(ctx, DataLoader(dataset, batch_size=16), dataset)
    assert {"predictions", "gallery/best", "gallery/worst"} <= set(writer.images)
    with open(tmp_path / "gallery" / "val2017.json") as f:
        ranking = json.load(f)
    assert ranking["metric"] == "oks" and len(ranking["best"]) == min(8, len(dataset))
    assert ranking["best"][0]["oks"] >= ranking["worst"][0]["oks"]
    assert cv2.imread(str(tmp_path / "gallery" / "worst_val2017.png")).shape == writer.images["gallery/worst"].shape


# --- depth configs: 3D hand joints from NYU depth PNGs ------------------------------


@pytest.fixture(scope="module")
def depth_setup(synthetic_nyu_root, tmp_path_factory):
    """The 64x64 AWR of experiments/nyu/awr_synthetic.yaml with deterministic weights,
    the 4 synthetic test frames in a folder and their centres as 'u v d' lines."""
    tmp = tmp_path_factory.mktemp("infer_depth")
    opts = ["DATASET.ROOT", synthetic_nyu_root, "OUTPUT_DIR", str(tmp / "output"), "WORKERS", "0"]
    cfg_path = os.path.join(ROOT, "experiments", "nyu", "awr_synthetic.yaml")
    cfg = load_config(cfg_path, opts)
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, 0))
    weights = str(tmp / "awr.pth")
    torch.save(model.state_dict(), weights)
    frames = tmp / "frames"
    frames.mkdir()
    names = sorted(f for f in os.listdir(os.path.join(synthetic_nyu_root, "test")) if f.endswith(".png"))
    for name in names:
        shutil.copy(os.path.join(synthetic_nyu_root, "test", name), frames / name)
    centers = load_centers(synthetic_nyu_root, "test")
    np.savetxt(tmp / "centers.txt", centers, fmt="%.6f")
    return {"cfg_path": cfg_path, "opts": opts, "weights": weights, "frames": frames, "names": names,
            "centers": centers, "centers_file": str(tmp / "centers.txt"), "root": synthetic_nyu_root,
            "estimator": PoseEstimator(cfg, model, device="cpu")}


def run_infer_depth(depth_setup, images, out, *extra):
    return infer.main(["--cfg", depth_setup["cfg_path"], "--weights", depth_setup["weights"], "--images",
                       str(images), "--output", str(out), *extra, *depth_setup["opts"]])


def test_depth_folder_with_centres(depth_setup, tmp_path):
    out = tmp_path / "out"
    result = run_infer_depth(depth_setup, depth_setup["frames"], out, "--centers", depth_setup["centers_file"])
    names = depth_setup["names"]
    assert len(names) == 4 and result["file_names"] == names
    written = np.loadtxt(out / "results_uvd.txt")
    assert written.shape == (4, 14 * 3)
    assert (out / "results_files.txt").read_text().split() == names
    depths = [read_depth(str(depth_setup["frames"] / n)) for n in names]
    # the API's joints for the same frames and centres, in one batch as infer.py runs them
    expected = np.concatenate(depth_setup["estimator"].estimate_depth_batch(depths, list(depth_setup["centers"])))
    np.testing.assert_allclose(written.reshape(4, 14, 3), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(result["uvd"], expected)
    for name, depth, uvd in zip(names, depths, expected):
        drawn = cv2.imread(str(out / "images" / name))
        np.testing.assert_array_equal(drawn, draw_hand_uvd(depth, uvd, SKELETON))
        plot = cv2.imread(str(out / "plots" / name.replace(".png", "_3d.png")))
        assert plot is not None and plot.shape[0] > 200 and plot.std() > 10

    # A2J's .mat (uvd) and AWR's refined .txt (xyz) give the same centres, hence the same joints
    for centres in ("nyu_center_test.mat", "center_test_refined.txt"):
        other = run_infer_depth(depth_setup, depth_setup["frames"], tmp_path / centres, "--centers",
                                os.path.join(depth_setup["root"], centres))
        np.testing.assert_allclose(other["uvd"], expected, rtol=0, atol=1e-4)


def test_depth_centre_fallback_and_16_bit_png(depth_setup, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    name = depth_setup["names"][1]
    depth = read_depth(str(depth_setup["frames"] / name))
    cv2.imwrite(str(folder / "frame.png"), depth.astype(np.uint16))  # a plain 16-bit depth PNG in mm
    result = run_infer_depth(depth_setup, folder, tmp_path / "out")
    np.testing.assert_allclose(result["uvd"], depth_setup["estimator"].estimate_depth(depth), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "out" / "results_uvd.txt"), result["uvd"].reshape(-1),
                               rtol=0, atol=1e-6)


def test_depth_errors_are_one_clear_line(depth_setup, setup, tmp_path):
    short = tmp_path / "short.txt"
    np.savetxt(short, depth_setup["centers"][:3])
    with pytest.raises(ValueError, match="has 3 centres for 4 depth frames; give one per frame, in sorted file-name"):
        run_infer_depth(depth_setup, depth_setup["frames"], tmp_path / "o", "--centers", str(short))
    mixed = tmp_path / "mixed"
    shutil.copytree(depth_setup["frames"], mixed)
    photo = np.zeros((48, 64, 3), np.uint8)
    photo[..., 2] = 200  # a red channel: not NYU's encoding
    cv2.imwrite(str(mixed / "depth_1_0000002_photo.png"), photo)  # sorted between frames 2 and 3
    with pytest.raises(ValueError, match=r"_photo.png is not a depth frame \(uint8 with 3 channel\(s\), red not 0\)"):
        run_infer_depth(depth_setup, mixed, tmp_path / "o")
    cv2.imwrite(str(mixed / "depth_1_0000002_photo.png"), photo[..., 2])  # 8-bit grayscale
    with pytest.raises(ValueError, match=r"not a depth frame \(uint8 with 1 channel\(s\)\)"):
        run_infer_depth(depth_setup, mixed, tmp_path / "o")
    # left out by --glob, or skipped with DATASET.SKIP_CORRUPT_IMAGES (the centres stay with their own frames)
    chosen = run_infer_depth(depth_setup, mixed, tmp_path / "glob", "--glob", "depth_1_???????.png", "--centers",
                             depth_setup["centers_file"])
    assert chosen["file_names"] == depth_setup["names"]
    centers = np.insert(depth_setup["centers"], 2, [320.0, 240.0, 700.0], axis=0)  # the photo's row
    np.savetxt(tmp_path / "five.txt", centers)
    result = run_infer_depth(depth_setup, mixed, tmp_path / "skip", "--centers", str(tmp_path / "five.txt"),
                             "DATASET.SKIP_CORRUPT_IMAGES", "True")
    assert result["file_names"] == depth_setup["names"]
    with open(tmp_path / "skip" / "skipped.json") as f:
        assert json.load(f) == {"unreadable_images": [str(mixed / "depth_1_0000002_photo.png")], "dropped_boxes": 0}
    np.testing.assert_array_equal(result["uvd"], chosen["uvd"])
    with pytest.raises(ValueError, match="no .png depth frame matching --glob 'rgb_\\*'"):
        run_infer_depth(depth_setup, mixed, tmp_path / "o", "--glob", "rgb_*")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="not a video"):
        run_infer_depth(depth_setup, video, tmp_path / "o")
    with pytest.raises(ValueError, match="--boxes is for 2D configs"):
        run_infer_depth(depth_setup, depth_setup["frames"], tmp_path / "o", "--boxes", setup["dets"])
    with pytest.raises(ValueError, match="--centers is for depth configs"):
        run_infer(setup, setup["val"], tmp_path / "o", "--centers", depth_setup["centers_file"])


def test_degenerate_and_off_image_boxes_are_dropped_and_counted(setup, tmp_path, caplog):
    """The three silent cases of issue 17: a box far outside the image and boxes
    of zero or negative size are not people; they are dropped, counted in one
    warning, and the other boxes of the same image are still scored."""
    with open(setup["dets"]) as f:
        dets = json.load(f)
    image_id = dets[0]["image_id"]
    same = [d for d in dets if d["image_id"] == image_id]
    bad = [dict(same[0], bbox=[5000.0, 5000.0, 10.0, 10.0], score=0.99), dict(same[0], bbox=[10.0, 10.0, 0.0, 20.0]),
           dict(same[0], bbox=[10.0, 10.0, 30.0, -5.0])]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(same + bad))
    with caplog.at_level("WARNING"):
        results = run_infer(setup, setup["val"], tmp_path / "o", "--boxes", str(path), "--score-thr", "0")
    assert len(results) == len(same)
    assert all(r["bbox"][0] < 5000 and r["bbox"][2] > 0 and r["bbox"][3] > 0 for r in results)
    summary = [r.getMessage() for r in caplog.records if "skipped:" in r.getMessage()]
    assert summary == ["=> skipped: 0 unreadable images (DATASET.SKIP_CORRUPT_IMAGES; none) and 3 boxes with a "
                       "width or height <= 0 or lying outside their image"]
    with open(tmp_path / "o" / "skipped.json") as f:
        assert json.load(f) == {"unreadable_images": [], "dropped_boxes": 3}


def test_pictures_show_confident_people_with_box_outlines(setup, tmp_path):
    """--draw-thr hides low-score boxes from the picture, not from the results;
    the drawn boxes get an outline (so the picture differs from skeletons alone)."""
    with open(setup["dets"]) as f:
        dets = json.load(f)
    image_id = dets[0]["image_id"]
    same = [dict(d, score=0.9) for d in dets if d["image_id"] == image_id][:1]
    low = [dict(same[0], bbox=[same[0]["bbox"][0] + 3, same[0]["bbox"][1] + 3] + same[0]["bbox"][2:], score=0.05)]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(same + low))
    out = tmp_path / "o"
    results = run_infer(setup, setup["val"], out, "--boxes", str(path), "--score-thr", "0")
    assert sorted(r["bbox"][0] for r in results) == sorted(d["bbox"][0] for d in same + low)
    name = results[0]["file_name"]
    drawn = cv2.imread(str(out / "images" / name))
    image = cv2.imread(os.path.join(setup["val"], name))
    x, y, w, h = (int(round(v)) for v in same[0]["bbox"])
    edge = np.abs(drawn[y, x + 5:x + w - 5].astype(int) - image[y, x + 5:x + w - 5].astype(int)).sum(axis=1)
    assert (edge > 60).mean() > 0.8, "the confident box has an outline"
    run_infer(setup, setup["val"], tmp_path / "o2", "--boxes", str(path), "--score-thr", "0", "--draw-thr", "0.95")
    bare = cv2.imread(str(tmp_path / "o2" / "images" / name))
    assert np.abs(bare.astype(int) - image.astype(int)).max() <= 40, "nothing above --draw-thr: nothing drawn"


def test_3d_body_config_writes_image_and_camera_joints(tmp_path):
    """c2f_vol through tools/infer.py: each result has keypoints (x, y, score),
    keypoints_3d (x, y px, depth to the root in mm) and with --camera
    keypoints_cam, equal to PoseEstimator.estimate_3d; a 3D plot per image."""
    from posezoo.datasets.synthetic_h36m import generate_synthetic_h36m

    root = str(tmp_path / "h36m")
    generate_synthetic_h36m(root, seed=3, num_train=2, num_test=2)
    cfg_path = os.path.join(ROOT, "experiments", "h36m", "c2f_vol_synthetic.yaml")
    opts = ["DATASET.ROOT", root, "MODEL.EXTRA.NUM_FEATURES", "16", "VOLUMETRIC.RES_Z", "[1, 8]",
            "OUTPUT_DIR", str(tmp_path / "o")]
    cfg = load_config(cfg_path, opts)
    model = build_model(cfg)
    model.load_state_dict(deterministic_state(model, seed=2))
    weights = str(tmp_path / "c2f.pth")
    torch.save(model.state_dict(), weights)
    image = sorted(p for p in (tmp_path / "h36m").rglob("*.jpg"))[0]
    camera = {"focal": [1145.0, 1144.0], "princpt": [512.5, 515.5], "root_depth": 5200.0}
    (tmp_path / "camera.json").write_text(json.dumps(camera))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"file_name": image.name, "image_id": 0, "bbox": [20.0, 30.0, 300.0, 400.0],
                                  "score": 0.9}]))
    results = infer.main(["--cfg", cfg_path, "--weights", weights, "--images", str(image), "--boxes", str(boxes),
                          "--camera", str(tmp_path / "camera.json"), "--output", str(tmp_path / "out"), *opts])
    assert len(results) == 1 and len(results[0]["keypoints"]) == 3 * 17
    pose = PoseEstimator(cfg, model, device="cpu").estimate_3d(cv2.imread(str(image)),
                                                               np.array([[20.0, 30.0, 300.0, 400.0, 0.9]]), camera)
    np.testing.assert_allclose(results[0]["keypoints_3d"], pose["uvz"][0], atol=1e-3)
    np.testing.assert_allclose(results[0]["keypoints_cam"], pose["xyz"][0], atol=1e-3)
    np.testing.assert_allclose(np.reshape(results[0]["keypoints"], (17, 3))[:, :2], pose["uvz"][0, :, :2], atol=1e-3)
    assert (tmp_path / "out" / "plots" / f"{image.stem}_3d.png").stat().st_size > 0
    with pytest.raises(ValueError, match="--camera .*: expected"):
        (tmp_path / "bad.json").write_text("[1, 2]")
        infer.main(["--cfg", cfg_path, "--weights", weights, "--images", str(image), "--camera",
                    str(tmp_path / "bad.json"), "--output", str(tmp_path / "out2"), *opts])
