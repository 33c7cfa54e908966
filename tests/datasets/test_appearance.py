"""Appearance randomisation of training crops (datasets/appearance.py):
identity at strength 0 (no draw), determinism given a seed, shapes and dtypes,
each step's effect on constructed images, bad values, and the dataset wiring
(training crops only)."""
import numpy as np
import pytest
import torch

from conftest import synthetic_opts
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.datasets.appearance import AppearanceJitter
from posezoo.utils.normalise import MEAN, STD

FULL = AppearanceJitter(color_jitter=0.5, gray_prob=0.5, blur_prob=0.5, blur_sigma=1.5, noise_std=8.0)


def _image(seed=0, shape=(12, 10, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_strength_zero_is_the_identity_and_draws_nothing():
    x = _image()
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    assert AppearanceJitter()(x, rng) is x
    assert rng.bit_generator.state == state
    assert not AppearanceJitter().active and FULL.active


def test_deterministic_given_a_seed_with_shape_and_dtype_kept():
    x = _image()
    a, b = FULL(x, np.random.default_rng(7)), FULL(x, np.random.default_rng(7))
    assert a.dtype == np.uint8 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, FULL(x, np.random.default_rng(8)))
    f = FULL(x.astype(np.float32) / 255, np.random.default_rng(7))  # a codec's own [0, 1] crop
    assert f.dtype == np.float32 and f.shape == x.shape and 0.0 <= f.min() and f.max() <= 1.0


def test_each_step_on_constructed_images():
    x = _image()
    gray = AppearanceJitter(gray_prob=1.0, rgb=True)(x, np.random.default_rng(0)).astype(np.int64)
    luma = np.rint(x @ np.array([0.299, 0.587, 0.114]))
    assert (gray == gray[..., :1]).all() and np.abs(gray[..., 0] - luma).max() <= 1
    flat = np.full((9, 9, 3), 100, np.uint8)
    flat[4, 4] = 255
    blurred = AppearanceJitter(blur_prob=1.0, blur_sigma=1.0)(flat, np.random.default_rng(0))
    assert blurred[4, 4, 0] < 255 and blurred[4, 5, 0] > 100 and blurred[0, 0, 0] == 100
    noisy = AppearanceJitter(noise_std=20.0)(np.full((64, 64, 3), 128, np.uint8), np.random.default_rng(0))
    assert 0 < noisy.astype(np.float64).std() <= 20.5
    # colour jitter: the per-image factors of a seeded draw, applied to a flat grey (hue and saturation inert)
    rng = np.random.default_rng(5)
    b, c, s = rng.uniform(0.5, 1.5, size=3)
    jittered = AppearanceJitter(color_jitter=0.5)(np.full((4, 4, 3), 100, np.uint8), np.random.default_rng(5))
    assert np.abs(jittered.astype(np.float64) - min(255.0, 100 * b)).max() <= 1


@pytest.mark.parametrize("kwargs, match", [({"color_jitter": 1.5}, "COLOR_JITTER"), ({"gray_prob": -0.1}, "GRAY_PROB"),
                                           ({"blur_prob": 0.5}, "BLUR_SIGMA"), ({"noise_std": -1.0}, "NOISE_STD")])
def test_bad_values_are_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AppearanceJitter(**kwargs)


def test_dataset_greys_training_crops_only(synthetic_root, tmp_path):
    cfg = load_config(None, synthetic_opts(synthetic_root, str(tmp_path)) + ["DATASET.GRAY_PROB", "1.0"])
    codec = build_codec(cfg)
    torch.manual_seed(0)
    train = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)[0][0].numpy()
    pixels = train.transpose(1, 2, 0) * STD + MEAN
    np.testing.assert_allclose(pixels[..., 0], pixels[..., 1], atol=1e-5)
    test = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)[0][0].numpy().transpose(1, 2, 0) * STD + MEAN
    assert np.abs(test[..., 0] - test[..., 1]).max() > 0.05


def test_princeton_pipeline_refuses_crop_randomisation(synthetic_root, tmp_path):
    cfg = load_config(None, synthetic_opts(synthetic_root, str(tmp_path)) + [
        "DATASET.AUGMENTATION", "princeton", "TEST.HEATMAP_DECODE", "princeton", "DATASET.GRAY_PROB", "0.5"])
    with pytest.raises(ValueError, match="princeton cuts its own"):
        build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, build_codec(cfg))
