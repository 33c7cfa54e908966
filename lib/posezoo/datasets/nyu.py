"""NYU hand pose (Tompson et al., SIGGRAPH 2014), depth frames from kinect 1.

The dataset as distributed (``<root>/{train,test}/depth_1_XXXXXXX.png`` +
``joint_data.mat``), the hand centres of A2J (``nyu_center_<set>.mat``, uvd) or
AWR (``center_<set>_refined.txt``, xyz), and the two official crop recipes
(``DATASET.DEPTH_CROP``):

- ``a2j`` (Xiong et al., ICCV 2019; A2J's ``src/nyu.py``): a box of +-110 mm
  around the centre projected to pixels and clamped to the frame, resized to
  176x176, depths beyond +-150 mm of the centre set to the centre depth, then
  ``(d - centre_d - mean) / std`` with the released statistics; joints' depth in
  mm relative to the centre.
- ``awr`` (Huang et al., AAAI 2020; AWR's ``dataloader/loader.py``): a 300 mm
  cube (250 mm for test frames from 2440 on, the second subject), the longer
  side resized to 128 and the other padded, depth clipped to the cube and mapped
  to [-1, 1]; joints' depth in half-cubes relative to the centre.

Each sample carries its image -> crop affine, so predictions go back to image
uvd exactly (the inverse affine and the depth scale), then to xyz with the NYU
camera for the metrics every NYU paper reports: mean 3D joint error (mm),
per-joint error and the success-frame curve.
"""
from __future__ import annotations

import csv
import logging
import math
import os
import random
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.io as sio
import torch
from torch.utils.data import Dataset

from ..utils.transforms import uvd_to_xyz, xyz_to_uvd
from . import KeypointInfo
from .joints_dataset import ImageReadError

logger = logging.getLogger(__name__)

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


# A2J's released input statistics (data/nyu/nyu_mean.npy, nyu_std.npy), in mm.
A2J_MEAN, A2J_STD = -0.66877532422628, 28.329582076876047
# AWR shrinks the cube to 5/6 for the test frames of the second subject.
AWR_SMALL_CUBE_FROM, AWR_SMALL_CUBE_RATIO = 2440, 5.0 / 6.0
DEFAULT_CUBES = {"a2j": (220.0, 220.0, 300.0), "awr": (300.0, 300.0, 300.0)}
DEFAULT_SIZES = {"a2j": 176, "awr": 128}


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


@dataclass
class DepthCrop:
    """A network input cut out of a depth frame. ``image_to_crop`` (3x3) maps
    frame pixels to crop pixels; a crop-space joint (u_c, v_c, dz) is the frame
    joint (u, v, d) with (u_c, v_c) = image_to_crop @ (u, v, 1) and
    dz = (d - center[2]) / depth_scale."""
    depth: np.ndarray  # (S, S) float32, normalised as the network expects
    image_to_crop: np.ndarray
    center: np.ndarray  # (u, v, d) of the hand centre
    depth_scale: float
    foreground: bool  # any pixel of the hand's depth range in the crop


def _scale_translate(sx: float, sy: float, tx: float, ty: float) -> np.ndarray:
    return np.array([[sx, 0.0, tx], [0.0, sy, ty], [0.0, 0.0, 1.0]])


def a2j_crop(depth: np.ndarray, center: np.ndarray, size: int = 176, cube=DEFAULT_CUBES["a2j"],
             box_shift=(0, 0, 0, 0), mean: float = A2J_MEAN, std: float = A2J_STD) -> DepthCrop:
    """A2J's crop: the centre +-cube/2 (x, y) projected to a pixel box, clamped to
    the frame, shifted by ``box_shift`` (x0, y0, x1, y1 pixels; training only),
    resized with nearest neighbour. As released, the pixels are cut at the
    truncated box corners while the joints map through the exact ones, and the
    depths outside +-cube_z/2 become the centre depth (not the background)."""
    height, width = depth.shape
    cu, cv_, cd = (float(c) for c in center)
    half_u, half_v = cube[0] / 2 * FX / cd, cube[1] / 2 * abs(FY) / cd
    x0 = max(cu - half_u + box_shift[0], 0.0)
    y0 = max(cv_ - half_v + box_shift[1], 0.0)
    x1 = min(cu + half_u + box_shift[2], width - 1.0)
    y1 = min(cv_ + half_v + box_shift[3], height - 1.0)
    patch = depth[int(y0):int(y1), int(x0):int(x1)]
    if patch.size == 0:
        raise ValueError(f"hand centre ({cu:.1f}, {cv_:.1f}, {cd:.1f}) gives an empty crop: it lies outside the "
                         f"{width}x{height} frame")
    crop = cv2.resize(patch, (size, size), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    outside = (crop >= cd + cube[2] / 2) | (crop <= cd - cube[2] / 2)
    crop[outside] = cd
    crop = ((crop - cd) - mean) / std
    matrix = _scale_translate(size / (x1 - x0), size / (y1 - y0), 0.0, 0.0) @ _scale_translate(1, 1, -x0, -y0)
    return DepthCrop(crop, matrix, np.array([cu, cv_, cd]), 1.0, bool((~outside).any()))


def awr_crop(depth: np.ndarray, center: np.ndarray, size: int = 128, cube=DEFAULT_CUBES["awr"]) -> DepthCrop:
    """AWR's crop: the cube's pixel bounds (rounded as released), pixels outside
    the frame padded with 0, depths nearer than the cube clamped to its front and
    farther ones dropped, the longer side resized to ``size`` (nearest) and the
    other centred with padding; then background/invalid pixels -> the cube's back
    and depth -> [-1, 1] (AWR's ``normalize``, including its rule that pixels at
    the crop's maximum depth are background)."""
    height, width = depth.shape
    cu, cv_, cd = (float(c) for c in center)
    if cd <= 0:
        raise ValueError(f"hand centre ({cu:.1f}, {cv_:.1f}, {cd:.1f}) has no positive depth")
    u_start = int(cu - cube[0] / 2 / cd * FX + 0.5)
    u_end = int(cu + cube[0] / 2 / cd * FX + 0.5)
    v_start = int(cv_ - cube[1] / 2 / cd * abs(FY) + 0.5)
    v_end = int(cv_ + cube[1] / 2 / cd * abs(FY) + 0.5)
    if u_end <= 0 or v_end <= 0 or u_start >= width or v_start >= height:
        raise ValueError(f"hand centre ({cu:.1f}, {cv_:.1f}, {cd:.1f}) gives an empty crop: it lies outside the "
                         f"{width}x{height} frame")
    box = np.zeros((v_end - v_start, u_end - u_start), dtype=np.float32)
    top, left = max(v_start, 0), max(u_start, 0)
    inner = depth[top:min(v_end, height), left:min(u_end, width)]
    box[top - v_start:top - v_start + inner.shape[0], left - u_start:left - u_start + inner.shape[1]] = inner
    z_near, z_far = cd - cube[2] / 2, cd + cube[2] / 2
    box[(box < z_near) & (box != 0)] = z_near
    box[box > z_far] = 0
    w, h = u_end - u_start, v_end - v_start
    scale = min(size / w, size / h)
    new_w, new_h = int(w * scale), int(h * scale)
    pad_u, pad_v = math.floor(size / 2 - new_w / 2), math.floor(size / 2 - new_h / 2)
    raw = np.zeros((size, size), dtype=np.float32)
    raw[pad_v:pad_v + new_h, pad_u:pad_u + new_w] = cv2.resize(box, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    matrix = _scale_translate(1, 1, pad_u, pad_v) @ _scale_translate(scale, scale, 0, 0) @ _scale_translate(
        1, 1, -u_start, -v_start)
    return _awr_normalize(raw, matrix, np.array([cu, cv_, cd]), cube)


def _awr_normalize(raw: np.ndarray, matrix: np.ndarray, center: np.ndarray, cube) -> DepthCrop:
    cd, half = float(center[2]), cube[2] / 2
    crop = raw.copy()
    crop[crop == crop.max()] = cd + half
    crop[crop == 0] = cd + half
    foreground = bool((crop < cd + half).any())
    crop = (np.clip(crop, cd - half, cd + half) - cd) / half
    return DepthCrop(crop.astype(np.float32), matrix, center, half, foreground)


def _rotation_about(point: tuple[float, float], degrees: float, scale: float = 1.0) -> np.ndarray:
    return np.vstack([cv2.getRotationMatrix2D(point, degrees, scale), [0.0, 0.0, 1.0]])


def depth_crop_settings(cfg) -> tuple[str, int, tuple[float, float, float]]:
    """(recipe, crop side, cube in mm) of a depth config: ``DATASET.DEPTH_CROP``,
    the square ``MODEL.IMAGE_SIZE`` and ``DATASET.CUBE_SIZE`` (empty: the recipe's
    cube), each checked with one clear error."""
    recipe = cfg.DATASET.DEPTH_CROP
    if recipe not in DEFAULT_CUBES:
        raise ValueError(f"DATASET.DEPTH_CROP = {recipe!r}; expected one of {', '.join(DEFAULT_CUBES)}")
    size = int(cfg.MODEL.IMAGE_SIZE[0])
    if list(cfg.MODEL.IMAGE_SIZE) != [size, size]:
        raise ValueError(f"MODEL.IMAGE_SIZE = {list(cfg.MODEL.IMAGE_SIZE)}: depth crops are square")
    cube = tuple(float(c) for c in (cfg.DATASET.CUBE_SIZE or DEFAULT_CUBES[recipe]))
    if len(cube) != 3:
        raise ValueError(f"DATASET.CUBE_SIZE = {list(cfg.DATASET.CUBE_SIZE)}: expected [x, y, z] in mm")
    return recipe, size, cube


def inference_crop(cfg, depth: np.ndarray, center, cube: tuple | None = None) -> DepthCrop:
    """The test-time crop of a depth config around a hand centre (u, v, d mm), with
    no augmentation: the one ``NYUDataset`` evaluates with and ``PoseEstimator``
    infers with. ``cube`` replaces the config's cube; the dataset passes AWR's 5/6
    cube for the NYU test frames of the second subject, which only the frame
    index identifies."""
    recipe, size, config_cube = depth_crop_settings(cfg)
    center = np.asarray(center, dtype=np.float64).reshape(-1)
    if center.shape != (3,) or not np.isfinite(center).all() or center[2] <= 0:
        raise ValueError(f"hand centre {center.tolist()}: expected (u, v, d) with a finite depth d > 0 in mm")
    crop = a2j_crop if recipe == "a2j" else awr_crop
    return crop(depth, center, size, cube or config_cube)


def estimate_hand_center(depth: np.ndarray, max_depth_range: float = 150.0, hand_extent: float = 150.0,
                         continuity: float = 30.0) -> np.ndarray:
    """A rough hand centre (u, v, d mm) for a frame that comes without one, assuming
    the hand is the object nearest to the camera, as in NYU.

    Steps: the nearest depth after a 5x5 median (so that isolated flying pixels do
    not count) seeds a flood fill over pixels within ``max_depth_range`` mm behind
    it whose neighbours differ by at most ``continuity`` mm, which keeps the hand
    and the part of the forearm in that range but not a wall or a body behind it.
    The fill's principal 3D axis runs along the forearm; the points within
    ``hand_extent`` mm of the seed's end of that axis are the hand, and their 3D
    centroid, projected with the NYU camera, is the centre. On synthetic NYU frames
    it lands about 15-20 mm from the labelled centre on average, at worst about
    75 mm; A2J's 220 mm box and AWR's 300 mm cube absorb that, but accuracy drops.

    The published NYU numbers (and ``tools/test.py``) use the centres the A2J/AWR
    authors release (refined by a trained network), never this estimate.
    """
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if depth.ndim != 2 or not valid.any():
        raise ValueError(f"cannot estimate a hand centre: the depth map (shape {depth.shape}) has no valid depth > 0")
    far = np.float32(65535.0)
    smooth = cv2.medianBlur(np.where(valid, np.minimum(depth, far), far).astype(np.uint16), 5)
    seed_v, seed_u = np.unravel_index(np.argmin(np.where(valid, smooth, far)), depth.shape)
    near = float(min(smooth[seed_v, seed_u], depth[seed_v, seed_u]))
    in_band = valid & (depth <= near + max_depth_range)
    field = np.where(in_band, depth, np.float32(-1e6)).astype(np.float32)
    mask = np.zeros((depth.shape[0] + 2, depth.shape[1] + 2), np.uint8)
    cv2.floodFill(field, mask, (int(seed_u), int(seed_v)), 0, loDiff=continuity, upDiff=continuity,
                  flags=8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    v, u = np.nonzero(mask[1:-1, 1:-1].astype(bool) & in_band)
    xyz = nyu_uvd_to_xyz(np.stack([u, v, depth[v, u]], axis=1).astype(np.float64))
    seed = nyu_uvd_to_xyz(np.array([seed_u, seed_v, depth[seed_v, seed_u]], dtype=np.float64))
    if len(xyz) < 3:
        return nyu_xyz_to_uvd(seed)
    mean = xyz.mean(axis=0)
    axis = np.linalg.eigh(np.cov(xyz - mean, rowvar=False))[1][:, -1]
    along = (xyz - mean) @ axis * (1.0 if (seed - mean) @ axis >= 0 else -1.0)
    return nyu_xyz_to_uvd(xyz[along >= along.max() - hand_extent].mean(axis=0))


def _random_erase(image: np.ndarray, probability: float, area=(0.02, 0.4), min_aspect: float = 0.3) -> None:
    """A2J's random erasing (Zhong et al. 2020) as released: with ``probability``,
    add N(0, 1) noise (not a constant) to one random rectangle, in place. Python's
    ``random`` as in the release (DataLoader workers seed it per worker)."""
    if probability <= 0 or random.uniform(0, 1) > probability:
        return
    height, width = image.shape
    for _ in range(100):
        target = random.uniform(*area) * height * width
        aspect = random.uniform(min_aspect, 1 / min_aspect)
        h, w = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if w < width and h < height:
            top, left = random.randint(0, height - h), random.randint(0, width - w)
            image[top:top + h, left:left + w] += np.random.randn(h, w).astype(np.float32)
            return


def _find(root: str, names: list[str], what: str) -> str:
    for name in names:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"NYU {what} not found: looked for {', '.join(os.path.join(root, n) for n in names)}")


def load_labels(root: str, image_set: str) -> np.ndarray:
    """14-joint uvd labels (N, 14, 3): ``<set>/joint_data.mat`` (camera 1, the
    evaluated subset) or A2J's ``nyu_keypointsUVD_<set>.mat``."""
    path = _find(root, [os.path.join(image_set, "joint_data.mat"), f"nyu_keypointsUVD_{image_set}.mat"],
                 f"{image_set} labels")
    try:
        mat = sio.loadmat(path)
    except (ValueError, OSError, TypeError) as err:  # scipy's errors for corrupt files
        raise ValueError(f"cannot read NYU labels {path}: {err}") from None
    if "joint_uvd" in mat:
        uvd = np.asarray(mat["joint_uvd"], dtype=np.float64)
        if uvd.ndim != 4 or uvd.shape[2:] != (36, 3):
            raise ValueError(f"{path}: joint_uvd has shape {uvd.shape}, expected (cameras, N, 36, 3)")
        return uvd[0][:, EVAL_JOINTS]
    if "keypoints3D" in mat:
        uvd = np.asarray(mat["keypoints3D"], dtype=np.float64)
        if uvd.ndim != 3 or uvd.shape[1:] != (14, 3):
            raise ValueError(f"{path}: keypoints3D has shape {uvd.shape}, expected (N, 14, 3)")
        return uvd
    raise ValueError(f"{path} has neither 'joint_uvd' nor 'keypoints3D'")


def load_centers(root: str, image_set: str) -> np.ndarray:
    """Hand centres (N, 3) uvd: A2J's ``nyu_center_<set>.mat`` (uvd) or AWR's
    ``center_<set>_refined.txt`` (xyz, converted with the NYU camera)."""
    path = _find(root, [f"nyu_center_{image_set}.mat", f"center_{image_set}_refined.txt"], f"{image_set} centres")
    try:
        if path.endswith(".mat"):
            return np.asarray(sio.loadmat(path)["centre_pixel"], dtype=np.float64).reshape(-1, 3)
        return nyu_xyz_to_uvd(np.loadtxt(path, dtype=np.float64, ndmin=2).reshape(-1, 3))
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"cannot read NYU centres {path}: {err}") from None


class NYUDataset(Dataset):
    """Frame i of ``<root>/<set>`` is ``depth_1_{i+1:07d}.png`` with label row i and
    centre row i. Samples are ``(input (1, S, S), target, target_weight, meta)``;
    the codec encodes crop-space joints (see :class:`DepthCrop`) into its target."""

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        self.cfg, self.root, self.image_set, self.is_train, self.codec = cfg, cfg.DATASET.ROOT, image_set, \
            is_train, codec
        self.recipe, self.size, self.cube = depth_crop_settings(cfg)
        self.num_joints = cfg.MODEL.NUM_JOINTS
        self.labels = load_labels(self.root, image_set)
        self.centers = load_centers(self.root, image_set)
        if len(self.labels) != len(self.centers):
            raise ValueError(f"NYU {image_set}: {len(self.labels)} labelled frames but {len(self.centers)} centres")
        if self.labels.shape[1] != self.num_joints:
            raise ValueError(f"MODEL.NUM_JOINTS = {self.num_joints} but the NYU labels have {self.labels.shape[1]}")
        self.flip_pairs: list = []
        self.skeleton = SKELETON
        #: how tools/test.py names what it tests on (there are no person boxes)
        self.input_description = f"depth frames ({cfg.DATASET.DEPTH_CROP} crops around the given hand centres)"
        logger.info("=> NYU %s: %d frames, %s crops of %d px", image_set, len(self), self.recipe, self.size)

    def __len__(self) -> int:
        return len(self.labels)

    def image_path(self, index: int) -> str:
        return os.path.join(self.root, self.image_set, f"depth_1_{int(index) + 1:07d}.png")

    def _cube(self, index: int) -> tuple:
        if self.recipe == "awr" and not self.is_train and self.image_set == "test" \
                and index >= AWR_SMALL_CUBE_FROM and not self.cfg.DATASET.CUBE_SIZE:
            return tuple(c * AWR_SMALL_CUBE_RATIO for c in self.cube)
        return self.cube

    def make_crop(self, depth: np.ndarray, center: np.ndarray, index: int) -> DepthCrop:
        """The recipe's crop, with its training augmentation when training."""
        cube = self._cube(index)
        if not self.is_train:
            return inference_crop(self.cfg, depth, center, cube)
        if self.recipe == "a2j":
            return self._a2j_crop(depth, center, cube)
        return self._awr_crop(depth, center, cube)

    def _a2j_crop(self, depth: np.ndarray, center: np.ndarray, cube: tuple) -> DepthCrop:
        """A2J's augmentation (src_train/nyu.py): box corners shifted by
        randint(-SHIFT, SHIFT) px, then a rotation randint(-ROT, ROT) degrees and a
        scale U[1 - SCALE, 1 + SCALE) about the crop centre, the relative depth
        scaled by the same factor. (The release draws Gaussian depth noise but never
        applies it; ``DATASET.DEPTH_NOISE_STD`` > 0 adds it.)"""
        shift, rot, scale_range = int(self.cfg.DATASET.SHIFT_FACTOR), int(self.cfg.DATASET.ROT_FACTOR), \
            self.cfg.DATASET.SCALE_FACTOR
        box_shift = np.random.randint(-shift, shift, size=4) if shift > 0 else (0, 0, 0, 0)
        angle = np.random.randint(-rot, rot) if rot > 0 else 0
        scale = np.random.rand() * 2 * scale_range + 1 - scale_range
        crop = a2j_crop(depth, center, self.size, cube, box_shift)
        relative = crop.depth * A2J_STD + A2J_MEAN  # undo the normalisation to scale the depth offsets
        relative = relative * scale
        noise = self.cfg.DATASET.DEPTH_NOISE_STD
        if noise > 0:
            relative = relative + np.random.normal(0, noise, relative.shape).astype(np.float32)
        rotation = _rotation_about((self.size / 2, self.size / 2), angle, scale)
        warped = cv2.warpAffine(((relative - A2J_MEAN) / A2J_STD).astype(np.float32), rotation[:2],
                                (self.size, self.size))
        _random_erase(warped, self.cfg.DATASET.RANDOM_ERASE_PROB)
        return DepthCrop(warped, rotation @ crop.image_to_crop, crop.center, 1.0 / scale, crop.foreground)

    def _awr_crop(self, depth: np.ndarray, center: np.ndarray, cube: tuple) -> DepthCrop:
        """AWR's augmentation (dataloader/loader.py): one of translation (centre
        moved by N(0, SHIFT) mm per axis), scale (cube times |1 + N(0, SCALE)|),
        rotation (U(-ROT, ROT) degrees in the image plane) or nothing, each with
        probability 1/4. Deliberate differences, for exact labels: translation and
        scale re-crop the full frame (the release re-warps its first crop), and a
        rotation turns the crop about its centre and the joints with the same matrix
        (the release turns the joints about the hand centre's pixel, which the
        rounded crop box puts near, not at, the crop centre)."""
        op = np.random.randint(0, 4)
        if op == 0:
            center = nyu_xyz_to_uvd(nyu_uvd_to_xyz(center) + np.random.randn(3) * self.cfg.DATASET.SHIFT_FACTOR)
        elif op == 1:
            cube = tuple(c * abs(1.0 + np.random.randn() * self.cfg.DATASET.SCALE_FACTOR) for c in cube)
        crop = awr_crop(depth, center, self.size, cube)
        if op != 2:
            return crop
        angle = np.random.uniform(-self.cfg.DATASET.ROT_FACTOR, self.cfg.DATASET.ROT_FACTOR)
        rotation = _rotation_about((self.size // 2, self.size // 2), -angle)
        raw = crop.depth * crop.depth_scale + crop.center[2]
        raw[crop.depth >= 1.0] = 0.0  # background back to "no depth" so the border fill matches it
        raw = cv2.warpAffine(raw, rotation[:2], (self.size, self.size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        return _awr_normalize(raw, rotation @ crop.image_to_crop, crop.center, cube)

    def __getitem__(self, index: int):
        path = self.image_path(index)
        center = self.centers[index]
        valid = 1
        try:
            depth = read_depth(path)
        except OSError:
            if not self.cfg.DATASET.SKIP_CORRUPT_IMAGES:
                raise ImageReadError(f"cannot read NYU frame {path} (missing or corrupt); set "
                                     f"DATASET.SKIP_CORRUPT_IMAGES True to skip and count such frames") from None
            depth, valid = np.zeros((480, 640), np.float32), 0
        if not np.all(np.isfinite(center)) or center[2] <= 0:
            raise ValueError(f"NYU {self.image_set} frame {index + 1}: invalid hand centre {center.tolist()}")
        crop = self.make_crop(depth, center, index)
        joints = self.labels[index]
        uv = joints[:, :2] @ crop.image_to_crop[:2, :2].T + crop.image_to_crop[:2, 2]
        joints_crop = np.concatenate([uv, (joints[:, 2:] - crop.center[2]) / crop.depth_scale], axis=1)
        inputs = crop.depth[None].astype(np.float32)
        target, target_weight = self.codec.encode(joints_crop.astype(np.float32), inputs)
        if not crop.foreground or not valid:
            target_weight = np.zeros_like(target_weight)
            valid = 0 if not valid else valid
        meta = {"image_id": index, "valid": valid, "foreground": int(crop.foreground),
                "center": crop.center.astype(np.float64), "depth_scale": float(crop.depth_scale),
                "crop_to_image": np.linalg.inv(crop.image_to_crop)[:2].astype(np.float64),
                "joints": joints.astype(np.float64)}
        return torch.from_numpy(inputs), target, target_weight, meta

    def evaluate(self, preds: np.ndarray, boxes, image_ids: np.ndarray, output_dir: str) -> tuple[dict, float]:
        """Mean 3D error (mm) of frame-uvd predictions against the labels; writes
        the predictions in A2J/AWR's text format, per-joint errors and the
        success-frame curve under ``output_dir/results``. The returned metric
        (higher is better, for model selection) is the negated mean error."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        errors = joint_errors(preds[:, :, :3], self.labels[image_ids])
        results = os.path.join(output_dir, "results")
        os.makedirs(results, exist_ok=True)
        order = np.argsort(image_ids, kind="stable")
        np.savetxt(os.path.join(results, f"nyu_{self.image_set}_uvd.txt"),
                   preds[order, :, :3].reshape(len(order), -1), fmt="%.6f")
        with open(os.path.join(results, f"nyu_{self.image_set}_joint_errors.csv"), "w", newline="") as f:
            csv.writer(f).writerows([("joint", "mean_error_mm")] + [
                (name, f"{e:.4f}") for name, e in zip(JOINT_NAMES, errors.mean(axis=0))])
        save_success_curve(errors, results, f"nyu_{self.image_set}_success_frames")
        mean = float(errors.mean())
        thresholds, fraction = success_curve(errors)
        name_values = {"Mean error (mm)": mean, "Median (mm)": float(np.median(errors)),
                       "Frames <= 20 mm (%)": 100 * float(fraction[thresholds == 20][0]),
                       "Frames <= 40 mm (%)": 100 * float(fraction[thresholds == 40][0])}
        return name_values, -mean

    def write_gallery(self, preds: np.ndarray, image_ids: np.ndarray, out_dir: str, per_row: int = 4,
                      tile: int = 192) -> dict[str, np.ndarray]:
        """The best and worst frames by mean joint error, each a depth map cut
        around the hand with the predicted skeleton, as ``best_<set>.png`` /
        ``worst_<set>.png``, and a 3D plot of the worst frame against its labels.
        Returns the two tiled BGR images by name."""
        from ..utils.vis import draw_hand_uvd, plot_hand_3d

        image_ids = np.asarray(image_ids, dtype=np.int64)
        errors = joint_errors(preds[:, :, :3], self.labels[image_ids]).mean(axis=1)
        order = np.argsort(errors, kind="stable")
        os.makedirs(out_dir, exist_ok=True)
        sheets = {}
        for name, rows in (("best", order[:per_row]), ("worst", order[::-1][:per_row])):
            tiles = []
            for row in rows:
                frame = self.image_path(image_ids[row])
                try:
                    depth = read_depth(frame)
                except OSError:
                    continue
                drawn = draw_hand_uvd(depth, preds[row, :, :3], self.skeleton)
                joints = self.labels[image_ids[row], :, :2]
                (u0, v0), (u1, v1) = joints.min(axis=0) - 40, joints.max(axis=0) + 40
                side = max(u1 - u0, v1 - v0) / 2
                cu, cv_ = (u0 + u1) / 2, (v0 + v1) / 2
                warp = np.array([[tile / (2 * side), 0, tile / 2 - cu * tile / (2 * side)],
                                 [0, tile / (2 * side), tile / 2 - cv_ * tile / (2 * side)]])
                piece = cv2.warpAffine(drawn, warp, (tile, tile))
                cv2.putText(piece, f"{image_ids[row] + 1}: {errors[row]:.1f} mm", (4, 16), cv2.FONT_HERSHEY_SIMPLEX,
                            0.45, (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(piece)
            if tiles:
                sheets[name] = cv2.hconcat(tiles)
                cv2.imwrite(os.path.join(out_dir, f"{name}_{self.image_set}.png"), sheets[name])
        worst = order[-1]
        plot_hand_3d(nyu_uvd_to_xyz(preds[worst, :, :3]), self.skeleton,
                     os.path.join(out_dir, f"worst_{self.image_set}_3d.png"),
                     title=f"frame {image_ids[worst] + 1}: {errors[worst]:.1f} mm (labels dashed)",
                     gt_xyz=nyu_uvd_to_xyz(self.labels[image_ids[worst]]))
        return sheets


def keypoint_info(cfg) -> KeypointInfo:
    """NYU's 14 evaluated hand joints; no flip pairs (the depth models have no flip test)."""
    return KeypointInfo(JOINT_NAMES, [], SKELETON)


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> NYUDataset:
    """``DATASET.DATASET: nyu``."""
    return NYUDataset(cfg, image_set, is_train, codec)
