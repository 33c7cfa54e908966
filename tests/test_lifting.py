"""The reconstruction component (Pavlakos et al. CVPR 2018 Sec. 3.3): the lifting
MLP's layout, the lifting codec, its loss, the noisy-depth sampler, and one
training run through tools/train.py and tools/test.py."""
import json
import math
import os

import numpy as np
import pytest
import torch

import test as test_tool
import train as train_tool
from conftest import SHARED_DATA, needs_shared, write_cfg
from posezoo.codecs import build_codec
from posezoo.codecs.lifting import LiftingCodec, normalise_2d
from posezoo.config import ConfigError, load_config
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.datasets.h36m import FLIP_PAIRS, project
from posezoo.datasets.h36m_lifting import noisy_observation
from posezoo.models import build_model
from posezoo.utils.transforms import flip_permutation

K = 17
PERM = flip_permutation(K, FLIP_PAIRS)
TINY = ["DATASET.DATASET", "synthetic_h36m_lifting", "MODEL.NAME", "lifting_mlp", "MODEL.TARGET_TYPE", "lifting",
        "MODEL.NUM_JOINTS", "17", "MODEL.EXTRA", "{LINEAR_SIZE: 32, NUM_BLOCKS: 2, DROPOUT: 0.5}",
        "DATASET.TRAIN_SET", "train", "DATASET.TEST_SET", "test", "LIFTING.NUM_TRAIN", "64",
        "LIFTING.NUM_TEST", "16", "WORKERS", "0"]


def _cfg(extra=()):
    return load_config(None, TINY + list(extra))


def _pose(seed=0):
    rng = np.random.default_rng(seed)
    joints = rng.normal(0, 300, (K, 3)) + [100.0, -50.0, 4500.0]
    return joints


def test_model_layout_is_the_martinez_port_and_shapes():
    model = build_model(_cfg(["MODEL.EXTRA", "{LINEAR_SIZE: 48, NUM_BLOCKS: 2}"]))
    size, n_in = 48, 3 * K
    expected = {"w1.weight": (size, n_in), "w1.bias": (size,), "w2.weight": (n_in, size), "w2.bias": (n_in,)}
    bn = {"weight": (size,), "bias": (size,), "running_mean": (size,), "running_var": (size,),
          "num_batches_tracked": ()}
    expected.update({f"batch_norm1.{k}": v for k, v in bn.items()})
    for i in range(2):
        for j in (1, 2):
            expected.update({f"linear_stages.{i}.w{j}.weight": (size, size), f"linear_stages.{i}.w{j}.bias": (size,)})
            expected.update({f"linear_stages.{i}.batch_norm{j}.{k}": v for k, v in bn.items()})
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    model.load_state_dict({k: torch.zeros(v) for k, v in expected.items()}, strict=True)
    assert sum(p.numel() for p in model.parameters()) == (n_in * size + size) + (size * n_in + n_in) \
        + 4 * (size * size + size) + 5 * 2 * size  # 2 outer + 4 block linears, 5 BNs
    assert model(torch.zeros(3, n_in)).shape == (3, n_in)
    with pytest.raises(ValueError, match=r"expected \(N, 51\)"):
        model(torch.zeros(3, 34))
    with pytest.raises(ConfigError, match="DROPOUT"):
        build_model(_cfg(["MODEL.EXTRA", "{DROPOUT: 1.5}"]))


def test_residual_block_is_identity_plus_its_two_layers():
    model = build_model(_cfg(["MODEL.EXTRA", "{LINEAR_SIZE: 8, NUM_BLOCKS: 1, DROPOUT: 0.0}"])).eval()
    block, x = model.linear_stages[0], torch.randn(5, 8)
    y = torch.relu(block.batch_norm1(block.w1(x)))
    y = torch.relu(block.batch_norm2(block.w2(y)))
    torch.testing.assert_close(block(x), x + y)


def test_codec_round_trip_within_a_thousandth_of_a_mm():
    codec = build_codec(_cfg())
    joints = np.stack([_pose(s) for s in range(4)])
    targets = np.stack([codec.encode(j, np.ones((K, 1)))[0] for j in joints])
    assert targets.shape == (4, 3 * K)
    # coordinate-major metres, as ordinal-pose3d main.lua:89 reads the output
    np.testing.assert_allclose(targets[0, :K], (joints[0, :, 0] - joints[0, 0, 0]) / 1000.0, atol=1e-7)
    decoded, scores = codec.decode(torch.from_numpy(targets), {})
    assert decoded.shape == (4, K, 3) and torch.equal(scores, torch.ones(4, K, 1, dtype=scores.dtype))
    assert np.abs(decoded.numpy() - (joints - joints[:, :1])).max() < 1e-3


def test_inputs_follow_the_release_normalisation():
    codec = build_codec(_cfg())
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
        build_codec(_cfg(["LIFTING.DEPTH_INPUT", "metric"]))


def test_flip_rule_mirrors_inputs_and_outputs():
    codec = build_codec(_cfg())
    joints = _pose(3)
    uv, depth = project(joints, {"f": np.array([1000.0, 1000.0]), "c": np.array([500.0, 500.0])}, False), \
        joints[:, 2] - joints[0, 2]
    mirrored_uv = np.stack([999.0 - uv[:, 0], uv[:, 1]], axis=1)[PERM]
    flipped = codec.flip_input(torch.from_numpy(codec.make_input(uv, depth))[None], FLIP_PAIRS)
    np.testing.assert_allclose(flipped[0].numpy(), codec.make_input(mirrored_uv, depth[PERM]), atol=1e-6)
    target = torch.from_numpy(codec.encode(joints, np.ones((K, 1)))[0])[None]
    mirrored = torch.from_numpy(codec.encode(joints[PERM] * [-1.0, 1.0, 1.0], np.ones((K, 1)))[0])[None]
    torch.testing.assert_close(codec.flip_back(mirrored, FLIP_PAIRS), target)


def test_loss_is_the_weighted_mean_square_error():
    cfg = _cfg()
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
    cfg = _cfg()
    codec = build_codec(cfg)
    test_set = build_dataset(cfg, "test", False, codec)
    assert len(test_set) == 16 and torch.equal(test_set[3][0], test_set[3][0])
    exact = build_dataset(_cfg(["LIFTING.TEST_NOISE", "False"]), "test", False, codec)
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
    cfg = _cfg(["DATASET.DATASET", "h36m_lifting", "DATASET.ROOT", root, "DATASET.TRAIN_SET",
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


def test_train_and_test_through_the_tools(tmp_path):
    cfg_path = write_cfg(tmp_path / "lift.yaml", TINY + [
        "OUTPUT_DIR", str(tmp_path / "out"), "TRAIN.END_EPOCH", "1", "TRAIN.BATCH_SIZE_PER_GPU", "16",
        "TRAIN.OPTIMIZER", "adam", "TRAIN.LR", "0.001", "TEST.BATCH_SIZE_PER_GPU", "8", "GPUS", "(0,)"])
    perf = train_tool.main(["--cfg", cfg_path])
    out_dir = tmp_path / "out" / "synthetic_h36m_lifting" / "lifting_mlp" / "lift"
    results = json.loads((out_dir / "results" / "lifting_test_results.json").read_text())
    assert results["format"] == "posezoo-lifting-results-1" and len(results["frames"]) == 16
    assert perf == pytest.approx(-results["metrics"]["MPJPE"])
    assert (out_dir / "gallery" / "worst_test_3d.png").is_file()
    table = test_tool.main(["--cfg", cfg_path])
    assert table["MPJPE (mm)"] == pytest.approx(results["metrics"]["MPJPE"], rel=1e-6)
    assert math.isfinite(table["P-MPJPE (mm)"]) and table["P-MPJPE (mm)"] <= table["MPJPE (mm)"] + 1e-9
    assert table["Mean-pose MPJPE (mm)"] > 0


def test_flip_test_through_the_shared_forward():
    from posezoo.core.inference import forward_test

    cfg = _cfg(["TEST.FLIP_TEST", "True"])
    codec = build_codec(cfg)
    model = build_model(cfg).eval()
    x = torch.randn(4, 3 * K)
    with torch.no_grad():
        both = forward_test(model, x, codec, FLIP_PAIRS, codec.flip_test(cfg))
        mirrored = model(codec.flip_input(x, FLIP_PAIRS))
        expected = (model(x) + codec.flip_back(mirrored, FLIP_PAIRS)) / 2
    torch.testing.assert_close(both, expected)
    torch.testing.assert_close(codec.flip_input(codec.flip_input(x, FLIP_PAIRS), FLIP_PAIRS), x)
