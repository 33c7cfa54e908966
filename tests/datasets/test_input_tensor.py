"""to_input_tensor's per-channel table for uint8 crops gives the float32 formula's values bit for bit."""
import numpy as np
import pytest

from posezoo.utils.normalise import MEAN, STD, to_input_tensor


def _formula(crop, mean, std):
    return ((crop.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)


@pytest.mark.parametrize("mean,std", [(MEAN, STD), (np.array([0.5, 0.1, 0.9], np.float32),
                                                    np.array([0.3, 0.7, 0.05], np.float32))])
def test_uint8_table_equals_the_formula(mean, std):
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (37, 29, 3), dtype=np.uint8)
    crop[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 1, 254]]
    flipped = crop[:, ::-1]  # a strided view, as a mirrored crop may be
    for image in (crop, flipped):
        got = to_input_tensor(image, mean, std).numpy()
        assert got.shape == (3, 37, 29) and got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, _formula(image, mean, std))
    as_float = to_input_tensor(crop.astype(np.float32), mean, std).numpy()
    np.testing.assert_array_equal(as_float, _formula(crop, mean, std))
