"""The lifting datasets: the noisy-depth sampler's statistics, seeded test noise,
the mean-pose baseline, and the real Human3.6M samples projected onto their labels."""
import math
import os

import numpy as np
import pytest
import torch

from conftest import SHARED_DATA, lifting_cfg, needs_shared
from posezoo.codecs import build_codec
from posezoo.codecs.lifting import LiftingCodec, normalise_2d
from posezoo.datasets import build_dataset
from posezoo.datasets.h36m import project
from posezoo.datasets.h36m_lifting import noisy_observation

K = 17


def test_noisy_depth_sampler_statistics():
    rng = np.random.default_rng(0)
    uv, depth = np.zeros((K, 2)), np.linspace(-400.0, 400.0, K)
    draws = [noisy_observation(uv, depth, rng, 3.0, 50.0) for _ in range(20000)]
    noise_uv = np.stack([d[0] for d in draws]) - uv
    noise_z = np.stack([d[1] for d in draws]) - depth
    assert abs(noise_z.mean()) < 3 * 50.0 / math.sqrt(noise_z.size)
    assert noise_z.std() == pytest.approx(50.0, rel=0.01) and noise_uv.std() == pytest.approx(3.0, rel=0.01)
    assert abs(np.corrcoef(noise_z[:, 0], noise_z[:, 1])[0, 1]) < 0.03
    # ordinal effect: two joints 50 mm apart under 50 mm noise swap their order with
    # probability Phi(-50 / (50 sqrt 2)) = 0.2398
    codec = LiftingCodec(2, "ranks")
    swaps = np.mean([codec.depth_code(noisy_observation(np.zeros((2, 2)), np.array([0.0, 50.0]), rng, 0.0,
                                                        50.0)[1])[0] > 0 for _ in range(20000)])
    assert swaps == pytest.approx(0.5 * math.erfc(50.0 / (50.0 * math.sqrt(2)) / math.sqrt(2)), abs=0.01)
    np.testing.assert_array_equal(noisy_observation(uv, depth, None, 3.0, 50.0)[1], depth)


def test_dataset_noise_is_seeded_on_test_and_exact_without_it():
    cfg = lifting_cfg()
    codec = build_codec(cfg)
    test_set = build_dataset(cfg, "test", False, codec)
    assert len(test_set) == 16 and torch.equal(test_set[3][0], test_set[3][0])
    exact = build_dataset(lifting_cfg(["LIFTING.TEST_NOISE", "False"]), "test", False, codec)
    joints = exact.poses["joints_cam"][3]
    uv = project(joints, exact.poses["cameras"][3])
    np.testing.assert_allclose(exact[3][0].numpy(), codec.make_input(uv, joints[:, 2] - joints[0, 2]), atol=1e-6)
    assert not torch.equal(exact[3][0], test_set[3][0])
    inputs, target, weight, meta = test_set[3]
    assert inputs.shape == (51,) and target.shape == (51,) and weight.shape == (17, 1)
    np.testing.assert_allclose(target.numpy(), codec.encode(joints, np.ones((K, 1)))[0])
    train_set = build_dataset(cfg, "train", True, codec)
    torch.manual_seed(0)
    assert not torch.equal(train_set[0][0], train_set[0][0])  # fresh noise per draw
    # the mean-pose baseline is the training set's mean root-relative pose
    train_joints = train_set.poses["joints_cam"]
    np.testing.assert_allclose(test_set.baseline, (train_joints - train_joints[:, :1]).mean(axis=0))


@needs_shared
def test_h36m_lifting_projects_the_real_samples_onto_their_labels():
    root = os.path.join(SHARED_DATA, "h36m_mmpose_tests")
    cfg = lifting_cfg(["DATASET.DATASET", "h36m_lifting", "DATASET.ROOT", root, "DATASET.TRAIN_SET",
                "test_h36m_body3d.npz", "DATASET.TEST_SET", "test_h36m_body3d.npz", "DATASET.SUBJECTS",
                "[S1, S5, S7, S8]", "LIFTING.TEST_NOISE", "False"])
    data = build_dataset(cfg, cfg.DATASET.TEST_SET, False, build_codec(cfg))
    with np.load(os.path.join(root, "test_h36m_body3d.npz")) as npz:
        part = npz["part"][:, :, :2]
    assert len(data) == len(part)
    for i in range(len(data)):
        uv = project(data.poses["joints_cam"][i], data.poses["cameras"][i])
        assert np.abs(uv - part[i]).max() < 1e-3
        np.testing.assert_allclose(data[i][0][:2 * K].numpy(), np.concatenate(normalise_2d(part[i]).T), atol=1e-5)
