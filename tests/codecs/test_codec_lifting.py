"""The lifting codec: the release's input normalisation, the encode -> decode
round trip, the flip rule (also through the shared forward_test) and its L2 loss."""
import numpy as np
import pytest
import torch

from conftest import lifting_cfg
from posezoo.codecs import build_codec
from posezoo.codecs.lifting import LiftingCodec
from posezoo.config import ConfigError
from posezoo.core.loss import build_loss
from posezoo.datasets.h36m import FLIP_PAIRS, project
from posezoo.models import build_model
from posezoo.utils.transforms import flip_permutation

K = 17
PERM = flip_permutation(K, FLIP_PAIRS)


def _pose(seed=0):
    rng = np.random.default_rng(seed)
    joints = rng.normal(0, 300, (K, 3)) + [100.0, -50.0, 4500.0]
    return joints


def test_codec_round_trip_within_a_thousandth_of_a_mm():
    codec = build_codec(lifting_cfg())
    joints = np.stack([_pose(s) for s in range(4)])
    targets = np.stack([codec.encode(j, np.ones((K, 1)))[0] for j in joints])
    assert targets.shape == (4, 3 * K)
    # coordinate-major metres, as ordinal-pose3d main.lua:89 reads the output
    np.testing.assert_allclose(targets[0, :K], (joints[0, :, 0] - joints[0, 0, 0]) / 1000.0, atol=1e-7)
    decoded, scores = codec.decode(torch.from_numpy(targets), {})
    assert decoded.shape == (4, K, 3) and torch.equal(scores, torch.ones(4, K, 1, dtype=scores.dtype))
    assert np.abs(decoded.numpy() - (joints - joints[:, :1])).max() < 1e-3


def test_inputs_follow_the_release_normalisation():
    codec = build_codec(lifting_cfg())
    uv = np.random.default_rng(1).uniform(0, 1000, (K, 2))
    depth = np.linspace(-1000.0, 970.0, K)
    depth[0] = 0.0
    x = codec.make_input(uv, depth)
    rel = uv - uv[0]
    np.testing.assert_allclose(x[:K], rel[:, 0] / np.abs(rel).max(), atol=1e-6)
    np.testing.assert_allclose(x[K:2 * K], rel[:, 1] / np.abs(rel).max(), atol=1e-6)
    assert np.abs(x[:2 * K]).max() == pytest.approx(1.0)
    # bins: (b - 32) / 32 with b the 0-based 64-bin index (main.lua:78 (zind - 33) / 32, zind 1-based)
    lo, hi = codec.depth_range
    bins = np.clip(np.floor((depth - lo) / ((hi - lo) / 64)), 0, 63)
    np.testing.assert_allclose(x[2 * K:], (bins - 32) / 32, atol=1e-7)
    assert x[2 * K] == 0.0 and codec.depth_code(np.array([lo - 5.0, hi + 5.0])).tolist() == [-1.0, 31 / 32]
    assert LiftingCodec(3, "ranks").depth_code(np.array([30.0, -10.0, 5.0])).tolist() == [1.0, -1.0, 0.0]
    with pytest.raises(ValueError, match=r"expected \(17, 2\)"):
        codec.make_input(uv[:5], depth)
    with pytest.raises(ConfigError, match="DEPTH_INPUT"):
        build_codec(lifting_cfg(["LIFTING.DEPTH_INPUT", "metric"]))


def test_flip_rule_mirrors_inputs_and_outputs():
    codec = build_codec(lifting_cfg())
    joints = _pose(3)
    uv, depth = project(joints, {"f": np.array([1000.0, 1000.0]), "c": np.array([500.0, 500.0])}, False), \
        joints[:, 2] - joints[0, 2]
    mirrored_uv = np.stack([999.0 - uv[:, 0], uv[:, 1]], axis=1)[PERM]
    flipped = codec.flip_input(torch.from_numpy(codec.make_input(uv, depth))[None], FLIP_PAIRS)
    np.testing.assert_allclose(flipped[0].numpy(), codec.make_input(mirrored_uv, depth[PERM]), atol=1e-6)
    target = torch.from_numpy(codec.encode(joints, np.ones((K, 1)))[0])[None]
    mirrored = torch.from_numpy(codec.encode(joints[PERM] * [-1.0, 1.0, 1.0], np.ones((K, 1)))[0])[None]
    torch.testing.assert_close(codec.flip_back(mirrored, FLIP_PAIRS), target)


def test_flip_test_through_the_shared_forward():
    from posezoo.core.inference import forward_test

    cfg = lifting_cfg(["TEST.FLIP_TEST", "True"])
    codec = build_codec(cfg)
    model = build_model(cfg).eval()
    x = torch.randn(4, 3 * K)
    with torch.no_grad():
        both = forward_test(model, x, codec, FLIP_PAIRS, codec.flip_test(cfg))
        mirrored = model(codec.flip_input(x, FLIP_PAIRS))
        expected = (model(x) + codec.flip_back(mirrored, FLIP_PAIRS)) / 2
    torch.testing.assert_close(both, expected)
    torch.testing.assert_close(codec.flip_input(codec.flip_input(x, FLIP_PAIRS), FLIP_PAIRS), x)


def test_loss_is_the_weighted_mean_square_error():
    cfg = lifting_cfg()
    criterion = build_loss(cfg)
    torch.manual_seed(0)
    out, gt = torch.randn(3, 3 * K), torch.randn(3, 3 * K)
    weight = torch.ones(3, K, 1)
    weight[1, 4], weight[2, 0] = 0.0, 0.0
    direct = 0.0
    for n in range(3):
        for c in range(3):
            for k in range(K):
                direct += float(weight[n, k, 0] * (out[n, c * K + k] - gt[n, c * K + k])) ** 2
    assert float(criterion(out, gt, weight)) == pytest.approx(direct / (3 * 3 * K), rel=1e-6)
