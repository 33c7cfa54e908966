"""The stacked-hourglass releases' training augmentation (``DATASET.AUGMENTATION`` bearpaw /
princeton, ``datasets/release_augment.py``) through the release YAMLs' MPII dataset.

Golden values (``release_augmentation_golden.json``): per shared MPII image and draw set, the
training sample of the official code run under /tmp (never committed) with the same draws fed
to its random calls: bearpaw/pytorch-pose @edc7aec ``pose/datasets/mpii.py:Mpii.__getitem__``
(``torch.randn``, ``random.random``, ``random.uniform`` scripted; ``imutils`` 0.5.4) and
princeton-vl/pytorch_stacked_hourglass @ceedc14 ``data/MPII/dp.py:Dataset.loadImage``
(``np.random.random`` / ``randint`` scripted; valid.h5-style boxes and (0, 0) for missing
joints). Side by side, all 20 bearpaw and 20 princeton samples (mirrored or not, turned or not)
were bit-identical in input, targets and weights; the goldens hold the input sum and three
pixels, the target sum, each joint's target peak and bearpaw's weights.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import posezoo.datasets.joints_dataset as joints_dataset
from conftest import MPII_SAMPLES, ROOT, needs_shared
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset

GOLDEN = os.path.join(os.path.dirname(__file__), "release_augmentation_golden.json")
PIXELS = [(0, 0, 0), (1, 128, 77), (2, 201, 250)]  # (channel, y, x)
FLIP_DRAW = [0.2, 0.7, 0.9, 0.4]  # bearpaw: mirrored when <= 0.5
ROT_DRAW = [0.3, 0.9, 0.5, 0.1]  # bearpaw: turned when <= 0.6


class ScriptedDraws:
    """A numpy Generator stand-in that returns the draws the official run was given."""

    def __init__(self, normals=(), randoms=(), uniforms=(), ints=()):
        self.normals, self.randoms, self.uniforms, self.ints = list(normals), list(randoms), list(uniforms), list(ints)

    def standard_normal(self) -> float:
        return self.normals.pop(0)

    def random(self) -> float:
        return self.randoms.pop(0)

    def uniform(self, low: float, high: float) -> float:
        return self.uniforms.pop(0)

    def integers(self, n: int) -> int:
        return self.ints.pop(0)


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory):
    """The shared MPII samples with joints 0 and 13 made unlabelled (HRNet's (-1, -1)), so that
    mirrored samples meet a left/right pair with one side missing."""
    root = str(tmp_path_factory.mktemp("mpii_aug"))
    with open(os.path.join(MPII_SAMPLES, "test_mpii.json")) as f:
        annotations = json.load(f)
    for entry in annotations:
        for j in (0, 13):
            entry["joints_vis"][j], entry["joints"][j] = 0, [-1.0, -1.0]
    os.makedirs(os.path.join(root, "annot"))
    os.makedirs(os.path.join(root, "images"))
    with open(os.path.join(root, "annot", "valid.json"), "w") as f:
        json.dump(annotations, f)
    for entry in annotations:
        os.symlink(os.path.join(MPII_SAMPLES, entry["image"]), os.path.join(root, "images", entry["image"]))
    return root, annotations


def draw_sets(count: int):
    """The draws of the official runs, in their order: per image, 4 sets."""
    rs = np.random.RandomState(7)
    for idx in range(count):
        for k in range(4):
            z_s, z_r = map(float, rs.randn(2))
            gains = [float(g) for g in rs.uniform(0.8, 1.2, 3)]
            rot_r, scale_r = map(float, rs.rand(2))
            colour = [float(c) for c in rs.rand(4)]
            bearpaw = ScriptedDraws([z_s] + ([z_r] if ROT_DRAW[k] <= 0.6 else []), [ROT_DRAW[k], FLIP_DRAW[k]], gains)
            flip = k % 2  # princeton mirrors (and colours) when randint(2) == 0
            princeton = ScriptedDraws(randoms=[rot_r, scale_r] + (colour if flip == 0 else []), ints=[flip])
            yield idx, k, {"bearpaw": bearpaw, "princeton": princeton}


def release_dataset(root: str, yaml: str):
    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", f"{yaml}.yaml"),
                      ["DATASET.ROOT", root, "OUTPUT_DIR", os.path.join(root, "out"), "WORKERS", "0"])
    return build_dataset(cfg, "valid", True, build_codec(cfg))


def summary(inputs: np.ndarray, target: np.ndarray) -> dict:
    peaks = [[int(v) for v in np.unravel_index(m.argmax(), m.shape)] if m.max() > 0 else None for m in target]
    return {"input_sum": float(inputs.astype(np.float64).sum()), "pixels": [float(inputs[c, y, x]) for c, y, x in PIXELS],
            "target_sum": float(target.astype(np.float64).sum()), "peaks": peaks}


@needs_shared
@pytest.mark.parametrize("release,yaml", [("bearpaw", "bearpaw_hg_s2_b1_256x256"), ("princeton", "princeton_hg2_256x256")])
def test_training_samples_equal_the_releases_own(release, yaml, mpii_root, monkeypatch):
    """Mirrored and turned samples included: bearpaw's W - x mirror, colour gains before the
    crop; princeton's second warp, colour jitter on mirrored samples only, and its pre-mirror
    test for missing joints (joint 5 loses its target when mirrored next to a missing joint 0)."""
    root, annotations = mpii_root
    with open(GOLDEN) as f:
        golden = json.load(f)
    dataset = release_dataset(root, yaml)
    for idx, k, draws in draw_sets(len(annotations)):
        monkeypatch.setattr(joints_dataset.np.random, "default_rng", lambda seed, d=draws[release]: d)
        inputs, target, weight, _ = dataset[idx]
        expected = golden[f"{annotations[idx]['image']}/{k}"][release]
        ours = summary(inputs.numpy(), target.numpy())
        where = f"{release} {annotations[idx]['image']} draw set {k}"
        assert ours["peaks"] == expected["peaks"], where
        assert ours["pixels"] == pytest.approx(expected["pixels"], abs=1e-7), where
        assert ours["input_sum"] == pytest.approx(expected["input_sum"], abs=2e-4), where
        assert ours["target_sum"] == pytest.approx(expected["target_sum"], abs=1e-4), where
        if release == "bearpaw":
            assert weight.numpy().reshape(-1).astype(int).tolist() == expected["weight"], where


def test_release_augmentation_needs_its_release_codec(tmp_path):
    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", "princeton_hg2_256x256.yaml"),
                      ["TEST.HEATMAP_DECODE", "msra", "DATASET.ROOT", str(tmp_path)])
    with pytest.raises(ValueError, match="DATASET.AUGMENTATION princeton .* set TEST.HEATMAP_DECODE princeton"):
        build_dataset(cfg, "valid", True, build_codec(cfg))
    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", "princeton_hg2_256x256.yaml"),
                      ["DATASET.AUGMENTATION", "imgaug", "DATASET.ROOT", str(tmp_path)])
    with pytest.raises(ValueError, match="DATASET.AUGMENTATION 'imgaug': expected one of msra, bearpaw, princeton"):
        build_dataset(cfg, "valid", True, build_codec(cfg))


@needs_shared
def test_bearpaw_test_box_keeps_its_float64_scale(mpii_root):
    """bearpaw's test scale is a Python float (``s = a['scale_provided'] * 1.25``, float64 arithmetic in
    ``transform`` and ``crop``; only its training draws are float32 torch scalars): the record keeps it
    as float64, so the codec's float64 branch cuts the test crop. HRNet's records stay float32."""
    root, annotations = mpii_root
    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", "bearpaw_hg_s2_b1_256x256.yaml"),
                      ["DATASET.ROOT", root, "OUTPUT_DIR", os.path.join(root, "out"), "WORKERS", "0"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "valid", False, codec)
    for rec, entry in zip(dataset.db, annotations):
        assert rec["scale"].dtype == np.float64 and rec["scale"].tolist() == [entry["scale"] * 1.25] * 2
    inputs, _, _, meta = dataset[0]
    image = joints_dataset.read_image(dataset.db[0]["image"], dataset.color_rgb)
    crop = codec.crop_image(image, dataset.db[0]["center"], np.full(2, annotations[0]["scale"] * 1.25), 0.0,
                            (256, 256))
    expected = joints_dataset.unit_crop_tensor(crop, dataset.input_mean, dataset.input_std)
    assert torch.equal(inputs, expected) and meta["scale"].dtype == np.float64
    hrnet = load_config(None, ["DATASET.DATASET", "mpii", "DATASET.ROOT", root, "MODEL.NUM_JOINTS", "16"])
    assert build_dataset(hrnet, "valid", False, build_codec(hrnet)).db[0]["scale"].dtype == np.float32
