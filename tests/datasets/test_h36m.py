"""Human3.6M reader on the real samples (mmpose's tests/data/h36m), the safe
cameras loader, the 3D flip, and evaluate()."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, needs_shared
from posezoo.config import load_config
from posezoo.datasets import keypoint_info
from posezoo.datasets.h36m import (FLIP_PAIRS, CameraFileError, H36MDataset, load_cameras, parse_image_name,
                                   project, save_cameras_json, world_to_camera)
from posezoo.utils.transforms import get_affine_transform

SAMPLES = os.path.join(SHARED_DATA, "h36m_mmpose_tests")
SUBJECTS = "[S1, S5, S7, S8]"


class RecordingCodec:
    """Records what the dataset hands the codec (the interface under test)."""

    def __init__(self):
        self.calls = []

    def encode(self, joints, joints_vis, **sample):
        self.calls.append((joints.copy(), joints_vis.copy(), sample))
        return np.zeros((len(joints), 4, 4), np.float32), joints_vis[:, :1].copy()


def _cfg(root=SAMPLES, image_set="test_h36m_body3d.npz", extra=()):
    return load_config(None, ["DATASET.DATASET", "h36m", "DATASET.ROOT", root, "DATASET.TRAIN_SET", image_set,
                              "DATASET.TEST_SET", image_set, "DATASET.SUBJECTS", SUBJECTS, "MODEL.NUM_JOINTS", "17",
                              "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]", *extra])


@needs_shared
def test_cameras_pickle_loads_through_the_plain_data_unpickler():
    cameras = load_cameras(os.path.join(SAMPLES, "cameras.pkl"))
    assert len(cameras) == 44
    cam = cameras["S1/54138969"]
    assert cam["R"].shape == (3, 3) and cam["T"].shape == (3,) and (cam["w"], cam["h"]) == (1000, 1002)
    assert cam["f"] == pytest.approx([1145.04940459, 1143.78109572])
    assert np.allclose(cam["R"] @ cam["R"].T, np.eye(3), atol=1e-6)


def test_malicious_pickle_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "cameras.pkl"
    path.write_bytes(pickle.dumps({("S1", "1"): Exploit()}))
    with pytest.raises(CameraFileError, match=r"refusing (posix|os|nt)\.system"):
        load_cameras(str(path))
    assert not (tmp_path / "pwned").exists()
    path.write_bytes(pickle.dumps({("S1", "1"): {"R": np.eye(3), "T": np.zeros(3), "f": np.ones(2),
                                                  "c": np.zeros(2), "evil": pickle.loads}}))
    with pytest.raises(CameraFileError, match=r"refusing _pickle\.loads"):
        load_cameras(str(path))
    path.write_bytes(b"not a pickle")
    with pytest.raises(CameraFileError, match="not a readable pickle"):
        load_cameras(str(path))


def test_cameras_json_round_trip(tmp_path):
    cams = {("S9", "54138969"): {"R": np.eye(3), "T": np.arange(3.0).reshape(3, 1), "f": np.array([[1000.], [990.]]),
                                 "c": np.array([[500.], [501.]]), "w": 1000, "h": 1002}}
    (tmp_path / "cameras.pkl").write_bytes(pickle.dumps(cams, protocol=3))
    loaded = load_cameras(str(tmp_path / "cameras.pkl"))
    save_cameras_json(loaded, str(tmp_path / "cameras.json"))
    again = load_cameras(str(tmp_path / "cameras.json"))
    assert np.array_equal(again["S9/54138969"]["T"], [0.0, 1.0, 2.0]) and again["S9/54138969"]["k"].shape == (3,)


@needs_shared
def test_world_to_camera_and_distorted_projection_reproduce_the_npz():
    """The json's world joints through the cameras give the npz's camera joints,
    and H36M's distortion model gives its 2D labels: the camera convention is right."""
    cameras = load_cameras(os.path.join(SAMPLES, "cameras.pkl"))
    npz = np.load(os.path.join(SAMPLES, "test_h36m_body3d.npz"))
    coco = json.load(open(os.path.join(SAMPLES, "h36m_coco.json")))
    for i, ann in enumerate(coco["annotations"]):
        subject, camera, _ = parse_image_name(coco["images"][i]["file_name"])
        cam = cameras[f"{subject}/{camera}"]
        world = np.asarray(ann["keypoints_3d"]).reshape(17, 4)[:, :3]
        assert np.abs(world_to_camera(world, cam) - npz["S"][i, :, :3]).max() < 1e-6
        assert np.abs(project(npz["S"][i, :, :3], cam) - npz["part"][i, :, :2]).max() < 1e-3
        assert np.abs(project(npz["S"][i, :, :3], cam, distort=False) - npz["part"][i, :, :2]).max() > 1.0


def test_parse_image_name():
    assert parse_image_name("S11_WalkDog_1.55011271_000026.jpg") == ("S11", "55011271", 12)
    assert parse_image_name("S9/S9_Directions.54138969/S9_Directions.54138969_000001.jpg")[2] == 0
    assert parse_image_name("S5_TakingPhoto.60457274_000001.jpg")[2] == 5
    with pytest.raises(ValueError, match="not a Human3.6M frame name"):
        parse_image_name("frame_0001.jpg")


@needs_shared
def test_reader_npz_and_json_give_the_same_frames():
    from_npz = H36MDataset(_cfg(), "test_h36m_body3d.npz", False, RecordingCodec())
    from_json = H36MDataset(_cfg(image_set="h36m_coco.json"), "h36m_coco.json", False, RecordingCodec())
    assert len(from_npz) == len(from_json) == 4
    for a, b in zip(from_npz.db, from_json.db):
        assert a["image"] == b["image"] and os.path.isfile(a["image"])
        assert np.allclose(a["joints_cam"], b["joints_cam"], atol=1e-3)
        assert np.allclose(a["center"], b["center"], atol=1e-3) and np.allclose(a["scale"], b["scale"], atol=1e-5)
    assert [r["subject"] for r in from_npz.db] == [1, 5, 7, 8]
    assert [r["action"] for r in from_npz.db] == [0, 9, 3, 12]  # Directions, SittingDown, Greeting, WalkDog
    assert np.abs(from_npz.db[0]["joints_cam"][0] - [-176.73077, -321.04862, 5203.88206]).max() < 1e-3


@needs_shared
def test_protocol_one_split_and_empty_split_error():
    cfg = load_config(None, ["DATASET.DATASET", "h36m", "DATASET.ROOT", SAMPLES, "MODEL.NUM_JOINTS", "17"])
    with pytest.raises(ValueError, match="no frame of subjects S9, S11"):
        H36MDataset(cfg, "test_h36m_body3d.npz", False, RecordingCodec())
    with pytest.raises(FileNotFoundError, match="h36m_train.npz"):
        H36MDataset(cfg, "train", True, RecordingCodec())


@needs_shared
def test_sample_interface_on_a_real_frame():
    codec = RecordingCodec()
    dataset = H36MDataset(_cfg(), "test_h36m_body3d.npz", False, codec)
    inputs, target, weight, meta = dataset[0]
    joints, vis, _ = codec.calls[-1]
    rec = dataset.db[0]
    trans = get_affine_transform(rec["center"], rec["scale"], 0.0, (64, 64))
    assert inputs.shape == (3, 64, 64) and joints.shape == (17, 3) and vis.shape == (17, 3)
    assert np.allclose(joints[:, :2], rec["part"] @ trans[:, :2].T + trans[:, 2], atol=1e-3)
    assert np.allclose(joints[:, 2], rec["joints_cam"][:, 2] - rec["joints_cam"][0, 2], atol=1e-3)
    assert joints[0, 2] == 0.0
    assert np.allclose(meta["root_cam"], rec["joints_cam"][0]) and np.allclose(meta["joints_cam"], rec["joints_cam"])
    assert np.allclose(meta["focal"], [1145.04940459, 1143.78109572]) and meta["action"] == 0 and meta["subject"] == 1
    # the crop's joints go back to camera mm with the meta's camera (pinhole: up to the lens distortion)
    inv = get_affine_transform(meta["center"], meta["scale"], 0.0, (64, 64), inv=True)
    uv = joints[:, :2] @ inv[:, :2].T + inv[:, 2]
    z = meta["root_cam"][2] + joints[:, 2]
    back = np.concatenate([(uv - meta["princpt"]) * z[:, None] / meta["focal"], z[:, None]], axis=1)
    assert np.abs(back - rec["joints_cam"]).max() < 15.0  # 2.4 px of distortion at ~5 m


@needs_shared
def test_training_flip_mirrors_2d_and_3d_consistently():
    codec = RecordingCodec()
    dataset = H36MDataset(_cfg(extra=["DATASET.ROT_FACTOR", "0", "DATASET.SCALE_FACTOR", "0"]),
                          "test_h36m_body3d.npz", True, codec)
    rec = dataset.db[1]
    flipped = None
    for seed in range(12):
        torch.manual_seed(seed)
        _, _, _, meta = dataset[1]
        if meta["princpt"][0] != rec["princpt"][0]:
            flipped = meta
            break
    assert flipped is not None, "no flip in 12 draws of p = 0.5"
    joints, _, _ = codec.calls[-1]
    width = 1000
    perm = list(range(17))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    expected_cam = rec["joints_cam"][perm] * [-1, 1, 1]
    assert np.allclose(flipped["joints_cam"], expected_cam)
    assert flipped["princpt"][0] == pytest.approx(width - 1 - rec["princpt"][0])
    # the flipped camera projects the flipped 3D joints onto the flipped 2D labels (pinhole part of the model)
    pin = expected_cam[:, :2] / expected_cam[:, 2:] * flipped["focal"] + flipped["princpt"]
    orig = rec["joints_cam"][perm][:, :2] / rec["joints_cam"][perm][:, 2:] * rec["focal"] + rec["princpt"]
    assert np.allclose(pin[:, 0], width - 1 - orig[:, 0]) and np.allclose(pin[:, 1], orig[:, 1])
    trans = get_affine_transform(flipped["center"], flipped["scale"], 0.0, (64, 64))
    labels = np.stack([width - 1 - rec["part"][perm][:, 0], rec["part"][perm][:, 1]], axis=1)
    assert np.allclose(joints[:, :2], labels @ trans[:, :2].T + trans[:, 2], atol=1e-3)
    assert np.allclose(joints[:, 2], rec["joints_cam"][perm][:, 2] - rec["joints_cam"][0, 2], atol=1e-3)


@needs_shared
def test_evaluate_writes_results_and_known_errors(tmp_path):
    dataset = H36MDataset(_cfg(), "test_h36m_body3d.npz", False, RecordingCodec())
    gt = dataset.ground_truth(range(4))
    preds = gt.copy()
    preds[:, 13, 0] += 10.0  # one wrist 10 mm off: exactly 10/17 mm MPJPE
    preds[3] = gt[3] * 1.1 + [5.0, 0.0, 0.0]  # frame 3 scaled and shifted: P-MPJPE 0 there
    stats, perf = dataset.evaluate(preds, None, np.arange(4), str(tmp_path))
    mp = np.array([10 / 17] * 3 + [np.linalg.norm((gt[3] - gt[3, :1]) * 0.1, axis=1).mean()])
    assert stats["MPJPE (mm)"] == pytest.approx(mp.mean()) and perf == pytest.approx(-mp.mean())
    assert stats["MPJPE Directions"] == pytest.approx(10 / 17) and stats["MPJPE WalkDog"] == pytest.approx(mp[3])
    results = json.load(open(tmp_path / "results" / "h36m_test_h36m_body3d_results.json"))
    assert results["format"] == "posezoo-h36m-results-1" and results["unit"] == "mm"
    assert results["frames"][3]["p_mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert results["per_action"]["MPJPE"]["Average"] == pytest.approx(mp.mean())
    assert stats["Ordinal acc (%)"] == pytest.approx(100.0)
    sheets = dataset.write_gallery(preds, np.arange(4), str(tmp_path / "gallery"))
    assert sheets["best"].shape == (192, 4 * 192, 3)
    assert os.path.isfile(tmp_path / "gallery" / "worst_test_h36m_body3d_3d.png")
    assert sheets["worst_3d"].shape == (500, 500, 3)  # the 3D plot, for TensorBoard with the sheets


def test_keypoint_info_is_registered():
    cfg = load_config(None, ["DATASET.DATASET", "h36m", "MODEL.NUM_JOINTS", "17"])
    info = keypoint_info(cfg)
    assert len(info.joint_names) == 17 and (4, 1) in info.flip_pairs and len(info.skeleton) == 16
