"""Tests of the synthetic NYU hand depth generator: the real NYU file layout and
encodings, determinism, and the geometry of the render (joints inside the
surface, hand in front of a planar wall, Kinect-like measurement)."""
import filecmp
import json
import os
from functools import partial

import cv2
import numpy as np
import pytest
import scipy.io
from posezoo.datasets.nyu import EVAL_JOINTS, FX, FY, U0, V0, read_depth
from posezoo.datasets.synthetic_nyu import (
    DISPARITY_NOISE,
    KINECT_DISPARITY,
    MARKER_FILE,
    PART_FOREARM,
    PART_WALL,
    _clip_box,
    _hit_capsule,
    _hit_ellipsoid,
    _pixel_rays,
    _rotation,
    _sphere_extent,
    generate_synthetic_nyu,
    is_generated,
    render_frame,
)

SEED, NUM_TRAIN, NUM_TEST = 7, 24, 8
COUNTS = {"train": NUM_TRAIN, "test": NUM_TEST}
TIPS = [0, 6, 12, 18, 24]          # NYU joints: pinky, ring, middle, index, thumb tip


def project(xyz):
    """Independent pinhole projection with NYU's camera (y up: fy < 0)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    return np.stack([xyz[..., 0] * FX / xyz[..., 2] + U0, xyz[..., 1] * FY / xyz[..., 2] + V0, xyz[..., 2]], -1)


def back_project(uvd):
    uvd = np.asarray(uvd, dtype=np.float64)
    return np.stack([(uvd[..., 0] - U0) * uvd[..., 2] / FX, (uvd[..., 1] - V0) * uvd[..., 2] / FY, uvd[..., 2]], -1)


def png(root, split, index):
    return os.path.join(root, split, f"depth_1_{index + 1:07d}.png")


def measurement_bound(z):
    """Largest |measured - true| depth: a disparity off by at most 0.5 (rounding) +
    3 sigma steps, then rounding to whole mm."""
    e = (0.5 + 3.0 * DISPARITY_NOISE) * z / KINECT_DISPARITY
    return 0.5 + z * e / (1.0 - e) + 1e-6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_nyu"))
    summary = generate_synthetic_nyu(root, seed=SEED, num_train=NUM_TRAIN, num_test=NUM_TEST)
    return root, summary


@pytest.fixture(scope="module")
def frames():
    return [render_frame(11, split, i) for split in ("train", "test") for i in range(20)]


def test_layout_and_marker(dataset, tmp_path):
    root, summary = dataset
    assert is_generated(root)
    for split, count in COUNTS.items():
        names = sorted(os.listdir(os.path.join(root, split)))
        assert names == sorted([f"depth_1_{i:07d}.png" for i in range(1, count + 1)] + ["joint_data.mat"])
        assert summary[split] == {"frames": count}
    assert set(os.listdir(root)) == {"train", "test", MARKER_FILE, "nyu_center_train.mat", "nyu_center_test.mat",
                                     "center_train_refined.txt", "center_test_refined.txt"}
    with open(os.path.join(root, MARKER_FILE)) as f:
        assert json.load(f) == summary
    assert summary["seed"] == SEED
    assert not is_generated(str(tmp_path))


def test_deterministic_and_prefix_stable(dataset, tmp_path):
    root, _ = dataset
    a, b, c = (str(tmp_path / name) for name in "abc")
    generate_synthetic_nyu(a, seed=SEED, num_train=3, num_test=2)
    generate_synthetic_nyu(b, seed=SEED, num_train=3, num_test=2)
    generate_synthetic_nyu(c, seed=SEED + 1, num_train=3, num_test=2)
    files = [os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs]
    assert len(files) == 3 + 2 + 2 + 4 + 1
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(files)
    # A frame depends on (seed, split, index) only, not on how many frames were asked for.
    for split, i in (("train", 0), ("train", 2), ("test", 1)):
        assert filecmp.cmp(png(a, split, i), png(root, split, i), shallow=False)
        assert not filecmp.cmp(png(a, split, i), png(c, split, i), shallow=False)


def test_png_decodes_to_the_rendered_depth(dataset):
    root, _ = dataset
    for split, count in COUNTS.items():
        for i in range(count):
            frame = render_frame(SEED, split, i)
            raw = cv2.imread(png(root, split, i), cv2.IMREAD_UNCHANGED)
            assert raw.shape == (480, 640, 3) and raw.dtype == np.uint8
            assert not raw[..., 2].any()                           # red is 0
            manual = raw[..., 0].astype(np.int64) + 256 * raw[..., 1].astype(np.int64)
            np.testing.assert_array_equal(manual, frame.depth)
            np.testing.assert_array_equal(read_depth(png(root, split, i)), frame.depth.astype(np.float32))
            holes = (frame.depth == 0).mean()
            assert 0.0005 < holes < 0.02


def test_joint_data_mat(dataset):
    root, _ = dataset
    for split, count in COUNTS.items():
        mat = scipy.io.loadmat(os.path.join(root, split, "joint_data.mat"))
        with open(os.path.join(root, split, "joint_data.mat"), "rb") as f:
            assert f.read(19) == b"MATLAB 5.0 MAT-file"
        assert {"joint_uvd", "joint_xyz"} <= set(mat)
        uvd, xyz = mat["joint_uvd"], mat["joint_xyz"]
        assert uvd.shape == xyz.shape == (1, count, 36, 3) and uvd.dtype == xyz.dtype == np.float64
        np.testing.assert_allclose(uvd[0], project(xyz[0]), rtol=0, atol=1e-9)
        for i in (0, count - 1):
            np.testing.assert_array_equal(xyz[0, i], render_frame(SEED, split, i).joints_xyz)
        u, v, d = uvd[0, :, :, 0], uvd[0, :, :, 1], uvd[0, :, :, 2]
        assert u.min() >= 0 and u.max() <= 639 and v.min() >= 0 and v.max() <= 479
        assert 400 < d.min() and d.max() < 1150
        # Plausible hand size: fingertip to palm centre 10 (fist) to 180 mm, wrist points 25-60 mm apart.
        tips_to_palm = np.linalg.norm(xyz[0][:, TIPS] - xyz[0][:, [32]], axis=-1)
        assert 10 < tips_to_palm.min() and tips_to_palm.max() < 180
        wrist_width = np.linalg.norm(xyz[0, :, 30] - xyz[0, :, 31], axis=-1)
        assert 25 < wrist_width.min() and wrist_width.max() < 60


def test_centre_files_agree_and_sit_near_the_joints(dataset):
    root, _ = dataset
    for split, count in COUNTS.items():
        pixel = scipy.io.loadmat(os.path.join(root, f"nyu_center_{split}.mat"))["centre_pixel"]
        assert pixel.shape == (count, 1, 3) and pixel.dtype == np.float64
        xyz = np.loadtxt(os.path.join(root, f"center_{split}_refined.txt"), ndmin=2)
        assert xyz.shape == (count, 3)
        np.testing.assert_allclose(back_project(pixel[:, 0]), xyz, rtol=0, atol=1e-9)
        joints = scipy.io.loadmat(os.path.join(root, split, "joint_data.mat"))["joint_xyz"][0][:, EVAL_JOINTS]
        distance = np.linalg.norm(xyz - joints.mean(axis=1), axis=-1)
        assert distance.max() < 25.0 and 2.0 < distance.mean() < 15.0


def test_mean_pose_baseline(dataset):
    root, summary = dataset

    def load(split):
        joints = scipy.io.loadmat(os.path.join(root, split, "joint_data.mat"))["joint_xyz"][0][:, EVAL_JOINTS]
        return joints, np.loadtxt(os.path.join(root, f"center_{split}_refined.txt"), ndmin=2)

    (train, train_c), (test, test_c) = load("train"), load("test")
    offset = np.mean(train - train_c[:, None], axis=0)
    error = np.linalg.norm(test_c[:, None] + offset - test, axis=-1).mean()
    print(f"mean-pose baseline on {NUM_TEST} test frames: {error:.2f} mm")
    assert summary["mean_pose_error_mm"] == pytest.approx(error, abs=1e-4)
    assert 20.0 < error < 90.0


def test_fingertips_sit_inside_the_surface(frames):
    visible = total = 0
    for frame in frames:
        uvd = project(frame.joints_xyz)
        for k, joint in enumerate(TIPS):
            centre, radius, z = frame.joints_xyz[joint], frame.tip_radius[k], uvd[joint, 2]
            assert 6.0 < radius < 11.5
            u, v = np.rint(uvd[joint, :2]).astype(int)
            ray = np.array([(u - U0) / FX, (v - V0) / FY, 1.0])
            b, a = ray @ centre, ray @ ray
            disc = b * b - a * (centre @ centre - radius * radius)
            assert disc > 0                                      # the ray through the tip's pixel meets the tip cap
            t_cap = (b - np.sqrt(disc)) / a
            surface = frame.surface[v, u]
            assert surface <= t_cap + 1e-9                       # z-buffer: nothing seen behind the cap
            total += 1
            if abs(surface - t_cap) > 1e-6:
                continue                                         # something else (often the finger itself) is in front
            visible += 1
            assert 0 < surface <= z and z - surface <= radius + 1e-9
            measured = frame.depth[v, u]
            if measured:
                assert abs(measured - surface) <= measurement_bound(surface)
                assert z - measured <= radius + measurement_bound(surface)
    assert visible >= 0.4 * total


def test_every_joint_and_bone_is_behind_the_surface_at_its_pixel(frames):
    # Midpoints of bone axes: distal (tip, joint 1 near the DIP), proximal (PIP, MCP) and the thumb's three bones.
    pairs = np.array([[f, f + 1] for f in (0, 6, 12, 18)] + [[f + 3, f + 5] for f in (0, 6, 12, 18)]
                     + [[24, 25], [25, 27], [27, 28]])
    for frame in frames:
        points = np.concatenate([frame.joints_xyz, frame.joints_xyz[pairs].mean(axis=1)])
        uvd = project(points)
        u, v = np.rint(uvd[:, 0]).astype(int), np.rint(uvd[:, 1]).astype(int)
        assert np.all(frame.surface[v, u] < uvd[:, 2])
        assert np.all(frame.parts[v, u] != PART_WALL)


def march(signed, dx, dy, t_lo, t_hi, steps=6000):
    """Brute-force first hit along the rays t * (dx, dy, 1): sample ``signed`` (< 0
    inside) densely, bisect the first crossing. Returns (t or inf, the smallest
    sampled value) so that grazing rays can be told apart from clear hits/misses."""
    t = np.linspace(t_lo, t_hi, steps)
    rays = np.stack([dx, dy, np.ones_like(dx)], -1)
    values = signed(t[None, :, None] * rays[:, None, :])
    inside = values < 0
    first = np.where(inside.any(axis=1), inside.argmax(axis=1), -1)
    lo, hi = t[np.maximum(first - 1, 0)], t[first]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        in_mid = signed(mid[:, None] * rays) < 0
        lo, hi = np.where(in_mid, lo, mid), np.where(in_mid, mid, hi)
    return np.where(first > 0, hi, np.inf), values.min(axis=1)


def box_rays(box, rng, count=300, outside=False):
    """Rays through random pixels of ``box``, or through the ring of pixels just outside it."""
    u_lo, v_lo, u_hi, v_hi = box
    if outside:
        u = np.concatenate([np.arange(u_lo - 1, u_hi + 2), np.arange(u_lo - 1, u_hi + 2),
                            np.full(v_hi - v_lo + 1, u_lo - 1), np.full(v_hi - v_lo + 1, u_hi + 1)])
        v = np.concatenate([np.full(u_hi - u_lo + 3, v_lo - 1), np.full(u_hi - u_lo + 3, v_hi + 1),
                            np.arange(v_lo, v_hi + 1), np.arange(v_lo, v_hi + 1)])
    else:
        u, v = rng.integers(u_lo, u_hi + 1, count), rng.integers(v_lo, v_hi + 1, count)
    return (u - U0) / FX, (v - V0) / FY


def check_primitive(hit, signed, extent, rng, t_lo, t_hi, margin):
    box = _clip_box(extent)
    assert box is not None and box[0] > 0 and box[1] > 0 and box[2] < 639 and box[3] < 479
    dx, dy = box_rays(box, rng)
    analytic = hit(dx, dy)
    brute, closest = march(signed, dx, dy, t_lo, t_hi)
    clear_hit, clear_miss = closest < -margin, closest > margin
    assert clear_hit.sum() > 10 and clear_miss.sum() > 5
    np.testing.assert_allclose(analytic[clear_hit], brute[clear_hit], rtol=0, atol=1e-6)
    assert np.all(np.isinf(analytic[clear_miss]))
    # The pixel box is exact: nothing of the primitive is seen just outside it.
    dx, dy = box_rays(box, rng, outside=True)
    assert np.all(np.isinf(hit(dx, dy)))
    assert np.all(march(signed, dx, dy, t_lo, t_hi)[1] > 0)
    # A full box render agrees with the per-ray calls.
    full_dx, full_dy = _pixel_rays(box)
    assert full_dx.shape == (1, box[2] - box[0] + 1) and full_dy.shape == (box[3] - box[1] + 1, 1)


def test_ray_casting_matches_brute_force_marching():
    rng = np.random.default_rng(0)
    for case in range(7):
        a = np.array([*rng.uniform(-80, 80, 2), rng.uniform(500, 900)])
        direction = a if case == 0 else rng.normal(size=3)       # case 0: the axis points at the camera
        b = a + rng.uniform(20, 60) * direction / np.linalg.norm(direction)
        radius = rng.uniform(7, 25)

        def signed_capsule(p, a=a, b=b, radius=radius):
            ab = b - a
            s = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
            return np.linalg.norm(p - (a + s[..., None] * ab), axis=-1) - radius

        extent = _sphere_extent(np.stack([a, b]), np.array([radius, radius]))
        z_lo, z_hi = min(a[2], b[2]) - radius - 5, max(a[2], b[2]) + radius + 5
        check_primitive(partial(_hit_capsule, a=a, b=b, radius=radius), signed_capsule, extent, rng,
                        z_lo, z_hi, 0.05)
    for _ in range(4):
        centre = np.array([*rng.uniform(-80, 80, 2), rng.uniform(500, 900)])
        rotation = _rotation(*rng.uniform(-np.pi, np.pi, 3))
        axes = rng.uniform([30, 35, 10], [45, 50, 16])

        def signed_ellipsoid(p, centre=centre, rotation=rotation, axes=axes):
            return np.linalg.norm(((p - centre) @ rotation) / axes, axis=-1) - 1.0

        extent = _sphere_extent(centre[None], np.array([axes.max()]))
        check_primitive(partial(_hit_ellipsoid, centre=centre, rotation=rotation, semi_axes=axes), signed_ellipsoid,
                        extent, rng, centre[2] - 60, centre[2] + 60, 0.002)


def test_hand_in_front_of_a_planar_wall(frames):
    for frame in frames:
        hand = (frame.parts != PART_WALL) & (frame.parts != PART_FOREARM)
        assert hand.sum() > 500
        assert np.all(frame.surface[hand] < frame.background[hand] - 150.0)
        wall = frame.parts == PART_WALL
        np.testing.assert_array_equal(frame.surface[wall], frame.background[wall])
        v, u = np.nonzero(wall)
        points = back_project(np.stack([u, v, frame.background[v, u]], -1))[::97]
        design = np.column_stack([np.ones(len(points)), points[:, :2]])
        coef, *_ = np.linalg.lstsq(design, points[:, 2], rcond=None)
        assert np.abs(design @ coef - points[:, 2]).max() < 1e-6
        palm = frame.joints_xyz[32]
        gap = coef[0] + coef[1:] @ palm[:2] - palm[2]
        assert 300.0 - 1e-6 <= gap <= 700.0 + 1e-6


def test_measurement_model(frames):
    spread = []
    for frame in frames:
        valid = frame.depth > 0
        z = frame.surface[valid]
        error = frame.depth[valid] - z
        assert np.all(np.abs(error) <= measurement_bound(z))
        spread.append(np.abs(error).mean())
        # Holes gather on depth edges: most silhouette pixels of the hand are kept, far more than elsewhere.
        edge = np.zeros_like(valid)
        edge[:, 1:] |= frame.surface[:, 1:] - frame.surface[:, :-1] > 40
        edge[:, :-1] |= frame.surface[:, :-1] - frame.surface[:, 1:] > 40
        assert 0.3 < (~valid[edge]).mean() < 0.7
        assert (~valid[~edge]).mean() < 0.01
    assert 0.3 < np.mean(spread) < 5.0


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_train and num_test must be >= 1"):
        generate_synthetic_nyu(str(tmp_path), num_train=2, num_test=0)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        render_frame(0, "val", 0)
