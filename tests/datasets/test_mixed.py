"""DATASET.MIX (datasets/mixed.py): Human3.6M-format frames with full 3D and a
COCO-format set with 2D + ordinal labels (remapped onto the 17 Human3.6M
joints) in one loader; every batch holds both kinds in the configured shares,
the meta has one schema with the has_depth / has_ordinal flags, and the
volumetric loss of such a batch equals the direct formula: the volume L2 on
the 3D samples, the 2D term and the ranking term on the ordinal samples."""
import json
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import synthetic_opts
from oracles.volumetric_loss import direct_ordinal, direct_volume_loss, soft_depth
from posezoo.codecs import build_codec
from posezoo.codecs.volumetric import ORDINAL_UNKNOWN, ordinal_from_depth
from posezoo.config import load_config
from posezoo.core.strategy import stage_loss
from posezoo.datasets import build_dataset
from posezoo.datasets.mixed import MIX_META, MixedBatchSampler, batch_counts
from posezoo.datasets.synthetic_h36m import generate_synthetic_h36m

# the Human3.6M joint k is COCO joint COCO_TO_H36M[k] (-1: none): hips, knees, ankles, shoulders, elbows, wrists
COCO_TO_H36M = [-1, 12, 14, 16, 11, 13, 15, -1, -1, -1, -1, 5, 7, 9, 6, 8, 10]


@pytest.fixture(scope="module")
def h36m_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic_h36m"))
    generate_synthetic_h36m(root, seed=3, num_train=6, num_test=2)
    return root


def ordinal_labels(synthetic_root, path):
    """Codes from random depths for every COCO person of train2017 -> {ann id: (17, 17)}."""
    with open(os.path.join(synthetic_root, "annotations", "person_keypoints_train2017.json")) as f:
        ids = [a["id"] for a in json.load(f)["annotations"]]
    rng = np.random.default_rng(5)
    codes = {str(i): ordinal_from_depth(rng.normal(0, 300, 17), same_depth=50.0) for i in ids}
    path.write_text(json.dumps({"num_joints": 17, "annotations": {k: v.tolist() for k, v in codes.items()}}))
    return codes


def mix_cfg(synthetic_root, h36m_root, tmp_path, ratios=(1, 1), joints=COCO_TO_H36M, extra=()):
    labels = ordinal_labels(synthetic_root, tmp_path / "ordinal.json")
    mix = [{"DATASET": "synthetic_h36m", "ROOT": h36m_root, "SET": "train", "RATIO": ratios[0]},
           {"DATASET": "synthetic", "ROOT": synthetic_root, "SET": "train2017", "RATIO": ratios[1],
            "ORDINAL_FILE": str(tmp_path / "ordinal.json"), "JOINTS": list(joints)}]
    opts = synthetic_opts(synthetic_root, str(tmp_path / "out")) + [
        "DATASET.DATASET", "synthetic_h36m", "DATASET.ROOT", h36m_root, "DATASET.TRAIN_SET", "train",
        "DATASET.TEST_SET", "test", "DATASET.FLIP", "False", "MODEL.NAME", "c2f_vol",
        "MODEL.TARGET_TYPE", "volumetric", "MODEL.NUM_JOINTS", "17", "VOLUMETRIC.RES_Z", "[1, 4]",
        "VOLUMETRIC.ORDINAL_WEIGHT", "0.5", "MODEL.EXTRA", "{}", "DATASET.MIX", json.dumps(mix), *extra]
    return load_config(None, opts), labels


def test_batch_counts_and_epoch_length():
    assert batch_counts([1, 1], 4) == [2, 2]
    assert batch_counts([3, 1], 4) == [3, 1]
    assert batch_counts([1, 1, 1], 4) == [2, 1, 1]  # the remainder to the earliest part
    assert batch_counts([100, 1], 4) == [3, 1]  # every part keeps one slot
    with pytest.raises(ValueError, match="cannot hold all 3"):
        batch_counts([1, 1, 1], 2)
    sampler = MixedBatchSampler([10, 3], [2, 2], shuffle=True, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5  # part 0 once per epoch
    assert sorted(i for b in batches for i in b[:2]) == list(range(10))
    assert all(10 <= i < 13 for b in batches for i in b[2:])  # part 1 cycled
    sampler.set_epoch(1)
    assert list(sampler) != batches and list(sampler) == list(sampler)  # a function of (seed, epoch)
    ranks = [list(MixedBatchSampler([10, 3], [2, 2], True, r, 2, seed=1)) for r in range(2)]
    assert ranks[0] + ranks[1] != [] and not set(map(tuple, ranks[0])) & set(map(tuple, ranks[1]))
    assert sorted(ranks[0] + ranks[1]) == sorted(batches[:4])


def test_one_batch_holds_both_kinds_and_the_loss_is_the_direct_formula(synthetic_root, h36m_root, tmp_path):
    torch.set_num_threads(1)
    cfg, labels = mix_cfg(synthetic_root, h36m_root, tmp_path)
    codec = build_codec(cfg)
    mix = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    loader = DataLoader(mix, batch_sampler=mix.batch_sampler(4, shuffle=True, seed=0))
    inputs, target, weight, meta = next(iter(loader))
    assert set(meta) == set(MIX_META)
    assert meta["part"].tolist() == [0, 0, 1, 1]
    assert meta["has_depth"].tolist() == [True, True, False, False]
    assert meta["has_ordinal"].tolist() == [False, False, True, True]
    assert torch.isnan(meta["root_cam"][2:]).all() and torch.isfinite(meta["root_cam"][:2]).all()
    assert meta["subject"][2:].tolist() == [-1, -1] and meta["joints"].shape == (4, 17, 3)

    # the COCO people's codes, remapped onto the Human3.6M joints; joints it lacks: weight 0, pairs unknown
    missing = [k for k, j in enumerate(COCO_TO_H36M) if j < 0]
    present = [k for k, j in enumerate(COCO_TO_H36M) if j >= 0]
    idx = [COCO_TO_H36M[k] for k in present]
    for n in (2, 3):
        rec = mix.parts[1].db[meta["part_index"][n]]
        codes = labels[rec["ordinal_key"]]
        got = target[-1]["ordinal"][n].numpy()
        np.testing.assert_array_equal(got[np.ix_(present, present)], codes[np.ix_(idx, idx)])
        assert (got[missing] == ORDINAL_UNKNOWN).all() and (got[:, missing] == ORDINAL_UNKNOWN).all()
        assert (weight[n, missing] == 0).all()
        np.testing.assert_array_equal(weight[n, present, 0].numpy(), (rec["joints_vis"][idx, 0] > 0) * 1.0)
    assert (target[-1]["ordinal"][:2] == ORDINAL_UNKNOWN).all()  # 3D frames: no ordinal pair
    assert (target[-1]["depth_weight"][:2] == weight[:2, :, 0]).all() and (target[-1]["depth_weight"][2:] == 0).all()

    rng = np.random.default_rng(7)
    outputs = [torch.from_numpy(rng.uniform(0, 1, tuple(t["volume"].shape)).astype(np.float32)) for t in target]
    loss = stage_loss(codec.loss(cfg), outputs, target, weight).item()
    expected = 0.0
    for out, t in zip(outputs, target):
        expected += direct_volume_loss(out, t, weight)
        d = out.shape[1] // 17
        if d > 1:  # the ranking term, on the 2D + ordinal samples only (the 3D frames' pairs are unknown)
            vol = out.double().reshape(4, 17, d, *out.shape[2:])
            ranks = []
            for n in (2, 3):  # an unlabelled joint (weight 0) drops its pairs, as the loss defines
                labelled = weight[n, :, 0] > 0
                codes = torch.where(labelled[:, None] & labelled[None, :], t["ordinal"][n], ORDINAL_UNKNOWN)
                ranks.append(direct_ordinal(soft_depth(vol[n], codec.beta), codes.int().tolist()))
            assert all(r > 0 for r in ranks)
            expected += 0.5 * sum(ranks) / 4
    assert loss == pytest.approx(expected, rel=1e-5)


def test_shares_and_bad_mix_are_one_clear_error(synthetic_root, h36m_root, tmp_path):
    cfg, _ = mix_cfg(synthetic_root, h36m_root, tmp_path, ratios=(3, 1))
    mix = build_dataset(cfg, "ignored", True, build_codec(cfg))
    counts = [np.bincount([mix.locate(i)[0] for i in b], minlength=2).tolist() for b in mix.batch_sampler(8)]
    assert counts and all(c == [6, 2] for c in counts)
    assert not hasattr(build_dataset(cfg, "test", False, build_codec(cfg)), "batch_sampler")  # test sets: unmixed
    with pytest.raises(ValueError, match="has 17 joints: JOINTS names joint 17"):
        cfg, _ = mix_cfg(synthetic_root, h36m_root, tmp_path, joints=[17] + COCO_TO_H36M[1:])
        build_dataset(cfg, "train", True, build_codec(cfg))
    with pytest.raises(ValueError, match="JOINTS must list MODEL.NUM_JOINTS = 17"):
        cfg, _ = mix_cfg(synthetic_root, h36m_root, tmp_path, joints=[0, 1])
        build_dataset(cfg, "train", True, build_codec(cfg))
