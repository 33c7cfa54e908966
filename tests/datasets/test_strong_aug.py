"""CC-SSL's strong augmentation (``datasets/strong_aug.py``) against imgaug 0.3.0: each op with
fixed parameters equals the golden output of imgaug's own augmenter
(``tests/oracles/imgaug_strong_aug.py``, recorded under a side environment; no imgaug here)."""
import numpy as np
import pytest

from oracles.imgaug_strong_aug import (AFFINE, BLUR, CONTRAST, HEIGHT, NOISE_SEEDS, POINTS, WIDTH, decode,
                                       input_image, load_golden, noise_map)

from posezoo.datasets.strong_aug import (add_noise, affine_matrix, blur_kernel_size, ccssl_strong_augment,
                                      gaussian_blur, linear_contrast, strong_augmentation, transform_points,
                                      warp_affine)

GOLDEN = load_golden()


def test_golden_file_is_imgaug_0_3_0_with_the_2019_shear():
    assert GOLDEN["imgaug"] == "0.3.0" and GOLDEN["skimage"] == "0.20.0"


@pytest.mark.parametrize("name", sorted(AFFINE))
def test_affine_equals_imgaug_bit_for_bit(name):
    scale, translate, rotate, shear, order, cval = AFFINE[name]
    shift = [int(np.round(translate[0] * WIDTH)), int(np.round(translate[1] * HEIGHT))]
    matrix = affine_matrix(WIDTH, HEIGHT, scale, shift, rotate, shear)
    out = warp_affine(input_image(), matrix, order, cval)
    np.testing.assert_array_equal(out, decode(GOLDEN["affine"][name]["image"]))
    points = transform_points(np.array(POINTS), matrix)
    # imgaug hands keypoints back as float32
    np.testing.assert_allclose(points, GOLDEN["affine"][name]["points"], rtol=0, atol=1e-5)


def test_affine_moves_a_point_as_the_formula_says():
    """Pure rotation by 90 deg about the centre (w/2 - 0.5, h/2 - 0.5): (x, y) -> (c_x - (y - c_y), c_y + (x - c_x))."""
    m = affine_matrix(22, 18, (1, 1), (0, 0), 90.0, 0.0)
    cx, cy = 10.5, 8.5
    np.testing.assert_allclose(transform_points(np.array([[14.5, 8.5]]), m), [[cx, cy + 4.0]], atol=1e-12)
    # shear tilts the y axis by the shear angle: (0, 1) -> (-sin 20, cos 20) about the centre
    m = affine_matrix(22, 18, (1, 1), (0, 0), 0.0, 20.0)
    got = transform_points(np.array([[cx, cy + 1.0]]), m)[0] - [cx, cy]
    np.testing.assert_allclose(got, [-np.sin(np.radians(20)), np.cos(np.radians(20))], atol=1e-12)


@pytest.mark.parametrize("name", sorted(NOISE_SEEDS))
def test_additive_noise_equals_imgaug(name):
    out = add_noise(input_image(), noise_map(name))
    np.testing.assert_array_equal(out, decode(GOLDEN["noise"][name]))


@pytest.mark.parametrize("name", sorted(BLUR))
def test_gaussian_blur_equals_imgaug(name):
    np.testing.assert_array_equal(gaussian_blur(input_image(), BLUR[name]), decode(GOLDEN["blur"][name]))


def test_blur_kernel_sizes():
    assert [blur_kernel_size(s) for s in (1.0, 1.6, 2.9, 3.0, 4.4, 5.0)] == [5, 5, 9, 9, 13, 13]


@pytest.mark.parametrize("name", sorted(CONTRAST))
def test_linear_contrast_equals_imgaug(name):
    alpha = CONTRAST[name]
    out = linear_contrast(input_image(), alpha if len(alpha) > 1 else alpha[0])
    np.testing.assert_array_equal(out, decode(GOLDEN["contrast"][name]))


def test_pipeline_draw_applies_each_op_half_the_time_in_random_order():
    image = input_image()
    joints = np.array([[5.0, 5.0, 0], [11.0, 9.0, 0], [0.5, 17.5, 0]], np.float32)
    vis = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], np.float32)
    rng = np.random.default_rng(0)
    counts, orders, lost = {"affine": 0, "noise": 0, "blur": 0, "contrast": 0}, set(), 0
    for _ in range(400):
        out, j, v, applied = ccssl_strong_augment(image, joints, vis, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert v[2, 0] == 0 and np.array_equal(j[2], joints[2])  # an unlabelled joint is never moved
        if "affine" not in applied:
            np.testing.assert_array_equal(j, joints)
        lost += int(v[0, 0] == 0)
        for op in applied:
            counts[op] += 1
        orders.add(tuple(applied))
    assert all(150 < c < 250 for c in counts.values()), counts
    assert len(orders) > 30  # 65 ordered subsets exist; the order is drawn, not fixed
    assert 0 < lost < counts["affine"]  # the affine pushes joint 0 (near a corner) out of the image sometimes


def test_pipeline_marks_joints_pushed_outside_unlabelled():
    image = np.zeros((40, 40, 3), np.uint8)
    joints = np.array([[1.0, 1.0, 0], [20.0, 20.0, 0]], np.float32)
    vis = np.ones((2, 3), np.float32)
    rng = np.random.default_rng(3)
    for _ in range(200):
        _, j, v, applied = ccssl_strong_augment(image, joints, vis, rng)
        inside = (j[:, 0] >= 0) & (j[:, 1] >= 0) & (j[:, 0] <= 40) & (j[:, 1] <= 40)
        assert np.array_equal(v[:, 0] > 0, inside)


def test_unknown_strong_aug_is_refused():
    assert strong_augmentation("none") is None and strong_augmentation("ccssl") is ccssl_strong_augment
    with pytest.raises(ValueError, match="DATASET.STRONG_AUG 'imgaug'"):
        strong_augmentation("imgaug")


def test_warped_image_and_points_agree():
    """A lone bright pixel lands (nearest warp) where transform_points sends its coordinates."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        image = np.zeros((60, 80, 3), np.uint8)
        x, y = int(rng.integers(25, 55)), int(rng.integers(20, 40))
        image[y, x] = 255
        m = affine_matrix(80, 60, rng.uniform(1.0, 1.5, 2), (int(rng.integers(-3, 4)), 0), rng.uniform(-30, 30),
                          rng.uniform(-20, 20))
        out = warp_affine(image, m, 0, (0, 0, 0))
        px, py = transform_points(np.array([[x, y]]), m)[0]
        ys, xs = np.nonzero(out[..., 0])
        assert len(xs) and np.abs(xs - px).max() <= 1.0 and np.abs(ys - py).max() <= 1.0
