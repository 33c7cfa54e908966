"""posezoo.api.PoseEstimator: bad images and boxes."""
from __future__ import annotations


import numpy as np
import pytest

from posezoo.models import build_model


def test_api_refuses_a_box_outside_the_image(synthetic_cfg):
    from posezoo.api import PoseEstimator

    estimator = PoseEstimator(synthetic_cfg, build_model(synthetic_cfg, is_train=False), device="cpu")
    with pytest.raises(ValueError, match=r"box \[5000.0, 5000.0, 10.0, 10.0\] lies outside the 640x425 image"):
        estimator.estimate(np.zeros((425, 640, 3), np.uint8), np.array([[5000, 5000, 10, 10]]))
