"""The stacked-hourglass releases' own crops (``codecs/hourglass.py``: ``bearpaw_crop``,
``princeton_crop``, chosen through ``Codec.crop_image`` by ``TEST.HEATMAP_DECODE``) and the
MPII dataset built from a release YAML, on the shared MPII images.

The GOLDEN_* values were obtained by running, under /tmp and never committed, bearpaw/pytorch-pose
@edc7aec ``pose/utils/transforms.py:crop`` (``load_image``'s /255 first; ``imutils`` 0.5.4's
``rotate``) and ``transform``, and princeton-vl/pytorch_stacked_hourglass @ceedc14
``utils/img.py:crop``/``transform`` (then ``test.py``'s / 255) on the same images and valid.h5
boxes (centres as the releases hold them: posezoo's + 1). Side by side, the crops were
bit-identical for 25 boxes per release (these 4 variants and two more: larger, partly outside)
and bearpaw's rotated crops at 17 and -30 degrees; the dataset inputs of the release YAMLs
were bit-identical to the releases' own dataset code (bearpaw's float32 centres included).
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from conftest import MPII_SAMPLES, ROOT, SHARED_DATA, link_mpii_samples, needs_shared
from posezoo.codecs import build_codec
from posezoo.codecs.hourglass import HourglassReleaseCodec
from posezoo.config import load_config
from posezoo.datasets import build_dataset

# (y, x, channel) of the crop pixels the goldens hold
PIXELS = [(0, 0, 0), (128, 77, 1), (201, 250, 2)]
# (centre shift in px, scale factor, rotation): the box, partly outside, small (no shrink), turned
VARIANTS = [((0.0, 0.0), 1.0, 0.0), ((-300.0, -200.0), 1.0, 0.0), ((0.0, 0.0), 0.3, 0.0), ((0.0, 0.0), 1.0, 17.0)]

GOLDEN_CROPS = {  # image: per VARIANT, [bearpaw, princeton] each [sum, *PIXELS values] (None: not run)
    "005808361.jpg": [
        [[45384.5389, 0.0, 0.8322359919548035, 0.0],
         [45214.4913, 0.0, 0.840287983417511, 0.0]],
        [[62318.415, 0.0, 0.8402812480926514, 0.886274516582489],
         [62231.8428, 0.0, 0.8377833962440491, 0.886274516582489]],
        [[100106.5589, 0.24197305738925934, 0.827068030834198, 0.5037857890129089],
         [100029.8259, 0.19623595476150513, 0.8364155292510986, 0.5012078881263733]],
        [[46719.2417, 0.0, 0.5194281339645386, 0.0],
         None],
    ],
    "052475643.jpg": [
        [[36945.4491, 0.11795343458652496, 0.16078431904315948, 0.08235294371843338],
         [37147.3934, 0.11797641217708588, 0.16078431904315948, 0.08235294371843338]],
        [[8254.6627, 0.0, 0.0, 0.16470588743686676],
         [8295.5621, 0.0, 0.0, 0.16470588743686676]],
        [[53140.0228, 0.1568627506494522, 0.07357776165008545, 0.532522439956665],
         [52968.8377, 0.1568627506494522, 0.07591444998979568, 0.5323196649551392]],
        [[38953.1973, 0.0, 0.16078431904315948, 0.180964857339859],
         None],
    ],
    "051423444.jpg": [
        [[85652.189, 1.0, 0.5418425798416138, 0.0],
         [85856.1892, 1.0, 0.5132042765617371, 0.0]],
        [[87752.8843, 0.0, 0.5959382057189941, 0.5219182968139648],
         [87325.0114, 0.0, 0.5960784554481506, 0.5455348491668701]],
        [[125644.334, 0.9960784316062927, 0.5843137502670288, 0.657598078250885],
         [125644.3312, 0.9960784316062927, 0.5843137502670288, 0.6575980186462402]],
        [[86501.8008, 0.0, 0.7267029285430908, 0.0],
         None],
    ],
    "004645041.jpg": [
        [[74468.7678, 0.6117647290229797, 0.005533697083592415, 0.5451496839523315],
         [74745.9645, 0.6117647290229797, 0.0040486054494977, 0.5097693204879761]],
        [[82688.8291, 0.0, 0.8786022663116455, 0.18000578880310059],
         [82526.4387, 0.0, 0.8823529481887817, 0.17634038627147675]],
        [[95572.58, 0.0235294122248888, 0.040427595376968384, 0.1159466952085495],
         [95572.5779, 0.0235294122248888, 0.040427591651678085, 0.1159466877579689]],
        [[70791.1854, 0.0, 0.0006637612823396921, 0.0],
         None],
    ],
    "060754485.jpg": [
        [[74537.6339, 0.95686274766922, 0.3238799273967743, 0.516494870185852],
         [74469.5327, 0.9456725120544434, 0.0409897156059742, 0.5079963207244873]],
        [[73134.1543, 0.0, 0.7224189043045044, 0.9442988038063049],
         [72799.8212, 0.0, 0.7300785183906555, 0.9681987166404724]],
        [[92997.9139, 0.4313725531101227, 0.2302091121673584, 0.27450981736183167],
         [92997.9122, 0.4313725531101227, 0.2302091121673584, 0.27450981736183167]],
        [[70708.0328, 0.0, 0.004269992467015982, 0.0],
         None],
    ],
}
# heatmap (x, y) of each labelled joint's target peak (None: unlabelled), per test_mpii.json sample
GOLDEN_PEAKS = {
    "bearpaw": [
        [(23, 48), (23, 37), (28, 33), (36, 34), (28, 38), (27, 48), (32, 33), (33, 23),
         (32, 22), (31, 14), (26, 21), (22, 28), (28, 23), (37, 23), (42, 28), (41, 35)],
        [(32, 56), (32, 39), (28, 36), (37, 36), (44, 39), (43, 55), (32, 36), (33, 21),
         (34, 19), (36, 11), (29, 15), (26, 26), (29, 20), (38, 21), (42, 30), (43, 20)],
        [None, (32, 48), (35, 34), (27, 36), (26, 48), None, (31, 35), (32, 19),
         (31, 18), (29, 10), (28, 19), (31, 21), (35, 19), (28, 20), (22, 24), (16, 22)],
        [None, (31, 48), (30, 35), (36, 36), (36, 51), None, (33, 36), (34, 21),
         (34, 20), (32, 12), (23, 17), (26, 19), (30, 20), (38, 22), (40, 32), (39, 39)],
        [(31, 49), (31, 41), (29, 30), (35, 29), (36, 41), (37, 51), (32, 30), (28, 14),
         (27, 14), (23, 6), (16, 24), (20, 20), (24, 15), (32, 13), (37, 21), (38, 28)],
    ],
    "princeton": [
        [(23, 48), (23, 37), (28, 33), (36, 34), (28, 38), (27, 48), (32, 33), (33, 23),
         (32, 22), (31, 14), (26, 21), (22, 28), (28, 23), (37, 23), (42, 28), (41, 35)],
        [(32, 56), (32, 39), (28, 36), (37, 36), (44, 39), (43, 55), (32, 36), (33, 21),
         (34, 19), (36, 11), (29, 15), (26, 26), (29, 20), (38, 21), (42, 30), (43, 20)],
        [None, (32, 48), (35, 34), (27, 36), (26, 48), None, (31, 35), (32, 19),
         (31, 18), (29, 10), (28, 19), (31, 21), (35, 19), (28, 20), (22, 24), (16, 22)],
        [None, (31, 48), (30, 35), (36, 36), (36, 51), None, (33, 36), (34, 21),
         (34, 20), (32, 12), (23, 17), (26, 19), (30, 20), (38, 22), (40, 32), (39, 39)],
        [(31, 49), (31, 41), (29, 30), (35, 29), (36, 41), (37, 51), (32, 30), (28, 14),
         (27, 14), (23, 6), (16, 24), (20, 20), (24, 15), (32, 13), (37, 21), (38, 28)],
    ],
}


def _valid_h5_boxes() -> dict[str, tuple[np.ndarray, float]]:
    """valid.h5's box of each sample image, centre made 0-based as posezoo's datasets hold it."""
    import h5py

    with h5py.File(os.path.join(SHARED_DATA, "mpii_hg_eval", "valid.h5"), "r") as f:
        names = [n.decode() for n in f["imgname"][:]]
        return {name: (f["center"][names.index(name)] - 1, float(f["scale"][names.index(name)]))
                for name in GOLDEN_CROPS}


@needs_shared
@pytest.mark.parametrize("release", ["bearpaw", "princeton"])
def test_release_crop_equals_the_releases_crop(release):
    codec = HourglassReleaseCodec([256, 256], [64, 64], 1, release)
    for name, (center, scale) in _valid_h5_boxes().items():
        image = cv2.imread(os.path.join(MPII_SAMPLES, name))[:, :, ::-1]
        for (shift, factor, rot), golden in zip(VARIANTS, GOLDEN_CROPS[name]):
            want = golden[0 if release == "bearpaw" else 1]
            if want is None:
                continue
            s = scale * factor
            crop = codec.crop_image(image, center + np.array(shift), np.array([s, s]), rot, (256, 256))
            assert crop.dtype == np.float32 and crop.shape == (256, 256, 3)
            assert crop.astype(np.float64).sum() == pytest.approx(want[0], abs=2e-3), (name, shift, factor, rot)
            assert [float(crop[p]) for p in PIXELS] == pytest.approx(want[1:], abs=1e-6), (name, shift, factor, rot)


def test_bearpaw_crop_of_a_tiny_shrunk_image_is_blank():
    """bearpaw returns zeros when the shrunk image would be under 2 px (sf = 100 * 200 / 256)."""
    codec = HourglassReleaseCodec([256, 256], [64, 64], 1, "bearpaw")
    crop = codec.crop_image(np.full((100, 120, 3), 200, np.uint8), np.array([60.0, 50.0]), np.array([100.0, 100.0]),
                            0.0, (256, 256))
    assert crop.shape == (256, 256, 3) and not crop.any()


@pytest.fixture
def release_mpii_root(tmp_path):
    """The 5 mmpose samples as ROOT/images + annot/valid.json, by symlinks (never copies)."""
    return link_mpii_samples(tmp_path / "mpii")


@needs_shared
@pytest.mark.parametrize("yaml,release", [("bearpaw_hg_s2_b1_256x256", "bearpaw"), ("princeton_hg2_256x256", "princeton")])
def test_release_yaml_dataset_crops_and_targets_as_the_release(yaml, release, release_mpii_root, tmp_path):
    cfg = load_config(os.path.join(ROOT, "experiments", "mpii", "hourglass", yaml + ".yaml"),
                      ["DATASET.ROOT", str(release_mpii_root), "OUTPUT_DIR", str(tmp_path), "WORKERS", "0"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "valid", False, codec)
    mean = np.asarray(cfg.DATASET.INPUT_MEAN, np.float32)
    with open(os.path.join(MPII_SAMPLES, "test_mpii.json")) as f:
        names = [entry["image"] for entry in json.load(f)]
    for i, name in enumerate(names):
        inputs, target, _, _ = dataset[i]
        golden = GOLDEN_CROPS[name][0][0 if release == "bearpaw" else 1]  # the valid.h5 box, unchanged
        crop = inputs.numpy().transpose(1, 2, 0) + mean  # the YAMLs' STD is 1
        assert crop.astype(np.float64).sum() == pytest.approx(golden[0], abs=2e-3), name
        assert [float(crop[p]) for p in PIXELS] == pytest.approx(golden[1:], abs=1e-6), name
        flat = target.reshape(16, -1)
        peaks = [(int(j) % 64, int(j) // 64) if m > 0 else None for m, j in zip(*flat.max(1))]
        assert peaks == GOLDEN_PEAKS[release][i], name
