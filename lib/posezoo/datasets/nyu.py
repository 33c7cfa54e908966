"""NYU hand pose (Tompson et al., SIGGRAPH 2014), depth frames from kinect 1.

What is here so far: the camera, depth-PNG decoding, the 14-joint evaluation
subset, and the metrics every NYU paper reports (mean 3D joint error in mm,
per-joint error, success-frame curve). The crop recipes and the dataset class
for training A2J/AWR come with those models.
"""
from __future__ import annotations

import csv
import os

import cv2
import numpy as np

from ..utils.transforms import uvd_to_xyz, xyz_to_uvd

# Kinect 1 intrinsics as used by A2J, AWR and the common evaluation scripts; fy is
# negative because NYU's y axis points up.
FX, FY, U0, V0 = 588.03, -587.07, 320.0, 240.0
# The 14 evaluated joints among the 36 of joint_data.mat, in the usual order:
# pinky tip/mid, ring tip/mid, middle tip/mid, index tip/mid, thumb tip/mid/root,
# wrist back, wrist, palm.
EVAL_JOINTS = [0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32]
JOINT_NAMES = ("pinky_tip", "pinky_mid", "ring_tip", "ring_mid", "middle_tip", "middle_mid", "index_tip",
               "index_mid", "thumb_tip", "thumb_mid", "thumb_root", "wrist_back", "wrist", "palm")
# Bones for drawing: each finger tip -> mid -> palm, thumb tip -> mid -> root -> palm, palm -> both wrist points.
SKELETON = [[0, 1], [1, 13], [2, 3], [3, 13], [4, 5], [5, 13], [6, 7], [7, 13], [8, 9], [9, 10], [10, 13],
            [11, 13], [12, 13]]


def nyu_uvd_to_xyz(uvd: np.ndarray) -> np.ndarray:
    return uvd_to_xyz(uvd, FX, FY, U0, V0)


def nyu_xyz_to_uvd(xyz: np.ndarray) -> np.ndarray:
    return xyz_to_uvd(xyz, FX, FY, U0, V0)


def read_depth(path: str) -> np.ndarray:
    """A NYU ``depth_*.png`` as float32 millimetres: the high byte is stored in
    green, the low byte in blue. Computed in uint16 (AWR's ``B + G*256`` on uint8
    arrays relies on numpy 1 promotion and overflows under numpy 2)."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read depth image {path} (missing or corrupt)")
    blue, green = image[:, :, 0].astype(np.uint16), image[:, :, 1].astype(np.uint16)
    return (blue + (green << 8)).astype(np.float32)


def load_uvd_predictions(path: str, num_joints: int = 14) -> np.ndarray:
    """A results file with one frame per line of ``num_joints x (u, v, d)``
    floats (the format A2J and AWR release) -> (N, num_joints, 3)."""
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read predictions {path}: {str(err).splitlines()[0]}") from None
    if values.shape[1] != 3 * num_joints:
        raise ValueError(f"predictions {path}: {values.shape[1]} values per line, expected {3 * num_joints}")
    return values.reshape(len(values), num_joints, 3)


def joint_errors(pred_uvd: np.ndarray, gt_uvd: np.ndarray) -> np.ndarray:
    """Euclidean 3D error (N, K) in mm of uvd predictions against uvd ground
    truth, both back-projected with the NYU camera."""
    pred_uvd, gt_uvd = np.asarray(pred_uvd), np.asarray(gt_uvd)
    if pred_uvd.shape != gt_uvd.shape:
        raise ValueError(f"predictions {pred_uvd.shape} and ground truth {gt_uvd.shape} differ in shape")
    return np.linalg.norm(nyu_uvd_to_xyz(pred_uvd) - nyu_uvd_to_xyz(gt_uvd), axis=-1)


def success_curve(errors: np.ndarray, max_threshold: float = 80.0, step: float = 1.0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fraction of frames whose worst joint error is <= t, for t = 0..max (Tang et
    al. 2014's success-frame curve, the standard NYU plot)."""
    thresholds = np.arange(0.0, max_threshold + step / 2, step)
    worst = np.asarray(errors).max(axis=1)
    return thresholds, (worst[None, :] <= thresholds[:, None]).mean(axis=1)


def save_success_curve(errors: np.ndarray, out_dir: str, name: str = "success_frames") -> tuple[str, str]:
    """Write the success-frame curve as ``<name>.csv`` and ``<name>.png``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    thresholds, fraction = success_curve(errors)
    csv_path, png_path = os.path.join(out_dir, f"{name}.csv"), os.path.join(out_dir, f"{name}.png")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["threshold_mm", "fraction_of_frames"])
        writer.writerows(zip(thresholds.tolist(), fraction.tolist()))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(thresholds, fraction * 100)
    ax.set(xlabel="maximum joint error threshold (mm)", ylabel="frames within threshold (%)", xlim=(0, 80),
           ylim=(0, 100), title=f"mean error {float(np.mean(errors)):.2f} mm")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return csv_path, png_path
