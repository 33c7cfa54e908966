"""NYU hand pose: camera, depth decoding and the mm metrics, checked against the
released A2J / AWR predictions and the real test labels in ../shared/data/nyu."""
import os

import numpy as np
import pytest
import scipy.io

from conftest import SHARED_DATA, needs_shared
from posezoo.datasets.nyu import (joint_errors, load_uvd_predictions, nyu_uvd_to_xyz, nyu_xyz_to_uvd, read_depth,
                                  save_success_curve, success_curve)

NYU = os.path.join(SHARED_DATA, "nyu")


def test_uvd_xyz_round_trip_and_known_values():
    rng = np.random.default_rng(0)
    uvd = np.stack([rng.uniform(0, 640, 100), rng.uniform(0, 480, 100), rng.uniform(300, 1500, 100)], 1)
    np.testing.assert_allclose(nyu_xyz_to_uvd(nyu_uvd_to_xyz(uvd)), uvd, rtol=1e-12)
    np.testing.assert_allclose(nyu_uvd_to_xyz([320.0, 240.0, 800.0]), [0, 0, 800])
    # one pixel right of the principal point at 588.03 mm is 1 mm right; one pixel down is 1 mm *down* (y up)
    np.testing.assert_allclose(nyu_uvd_to_xyz([321.0, 241.0, 588.03]), [1.0, -588.03 / 587.07, 588.03])


def test_success_curve_counts_worst_joint():
    errors = np.array([[1.0, 5.0], [10.0, 2.0], [90.0, 0.0]])
    thresholds, fraction = success_curve(errors)
    assert thresholds[0] == 0 and thresholds[-1] == 80 and len(thresholds) == 81
    assert fraction[4] == 0 and fraction[5] == pytest.approx(1 / 3) and fraction[10] == pytest.approx(2 / 3)
    assert fraction[-1] == pytest.approx(2 / 3)  # the 90 mm frame never succeeds


def gt_uvd():
    return scipy.io.loadmat(os.path.join(NYU, "nyu_keypointsUVD_test.mat"))["keypoints3D"]


@needs_shared
@pytest.mark.parametrize("name,expected", [("nyu_861_epoch32_UVD.txt", 8.6098), ("awr_hourglass_1.txt", 7.7002),
                                           ("awr_resnet_18.txt", 7.7538)])
def test_released_predictions_give_the_official_mean_error(name, expected, tmp_path):
    pred = load_uvd_predictions(os.path.join(NYU, name))
    errors = joint_errors(pred, gt_uvd())
    assert errors.shape == (8252, 14)
    assert float(errors.mean()) == pytest.approx(expected, abs=5e-5)
    csv_path, png_path = save_success_curve(errors, str(tmp_path))
    rows = open(csv_path).read().splitlines()
    assert rows[0] == "threshold_mm,fraction_of_frames" and len(rows) == 82
    assert float(rows[-1].split(",")[1]) > 0.9 and os.path.getsize(png_path) > 0


@needs_shared
def test_depth_png_decodes_to_millimetres():
    depth = read_depth(os.path.join(NYU, "test_depth_1_0000001.png"))
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    assert 700 < depth[depth > 0].min() and depth.max() <= 2100
    joints = gt_uvd()[0]  # this frame is test frame 1
    at_joints = depth[np.round(joints[:, 1]).astype(int), np.round(joints[:, 0]).astype(int)]
    assert np.all(np.abs(at_joints - joints[:, 2]) < 40)  # the surface lies just in front of the joint centres


def test_bad_prediction_file(tmp_path):
    bad = tmp_path / "pred.txt"
    bad.write_text("1 2 3\n")
    with pytest.raises(ValueError, match="3 values per line, expected 42"):
        load_uvd_predictions(str(bad))


@needs_shared
def test_eval_tool_scores_the_released_a2j_predictions(tmp_path):
    import eval_nyu

    out = eval_nyu.main(["--pred", os.path.join(NYU, "nyu_861_epoch32_UVD.txt"), "--gt",
                         os.path.join(NYU, "nyu_keypointsUVD_test.mat"), "--out", str(tmp_path)])
    assert out["mean_error_mm"] == pytest.approx(8.6098, abs=5e-5) and len(out["per_joint_mm"]) == 14
    assert (tmp_path / "success_frames.png").is_file()
