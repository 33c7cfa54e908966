"""DATASET.ORDINAL_FILE in the released LSP/MPII format (``ordinal.mat``, variable
``ord``, N x K x K; datasets/ordinal.py): MATLAB v5, MATLAB v7.3 (HDF5, stored
column-major) and plain HDF5 files the tests write read back to the same codes,
and reach a dataset's targets."""
import json
import os

import numpy as np
import pytest
from scipy.io import savemat

from conftest import synthetic_opts
from posezoo.codecs import build_codec
from posezoo.codecs.volumetric import ORDINAL_UNKNOWN, ordinal_from_depth
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.datasets.ordinal import load_ordinal_file

h5py = pytest.importorskip("h5py")

# two people, 4 joints: person 0 fully labelled from depths, person 1 with one NaN (unlabelled) pair
Z = np.array([[900.0, 400.0, 650.0, 640.0], [100.0, 300.0, 200.0, 500.0]])
ORD = np.stack([ordinal_from_depth(z, same_depth=50.0) for z in Z]).astype(np.float64)
ORD[1, 0, 3] = ORD[1, 3, 0] = np.nan
EXPECTED = np.where(np.isnan(ORD), ORDINAL_UNKNOWN, ORD).astype(np.int8)


def write_matlab_73(path, ord_nkk):
    """What MATLAB's save -v7.3 writes: a 512-byte header, then HDF5 with the array column-major."""
    with h5py.File(path, "w", userblock_size=512) as f:
        f["ord"] = np.ascontiguousarray(ord_nkk.transpose(2, 1, 0))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Dec  7 10:00:00 2026 HDF5 schema 1.00 .")


def test_codes_of_the_three_encodings(tmp_path):
    assert ORD[0, 0, 1] == -1 and ORD[0, 1, 0] == 1 and ORD[0, 2, 3] == 0  # joint 1 (400 mm) closer than 0
    v5, v73, h5 = (str(tmp_path / n) for n in ("ordinal.mat", "ordinal73.mat", "ordinal.h5"))
    savemat(v5, {"ord": ORD, "other": np.zeros(3)})
    write_matlab_73(v73, ORD)
    with h5py.File(h5, "w") as f:
        f["ord"] = ORD
    for path in (v5, v73, h5):
        labels = load_ordinal_file(path)
        assert sorted(labels) == ["0", "1"], path
        for n in range(2):
            assert labels[str(n)].dtype == np.int8
            np.testing.assert_array_equal(labels[str(n)], EXPECTED[n], err_msg=path)
    assert labels["1"][0, 3] == ORDINAL_UNKNOWN and labels["1"][0, 1] == 1


def test_bad_official_files_one_clear_error(tmp_path):
    wrong_value, wrong_shape, no_var = (str(tmp_path / n) for n in ("v.mat", "s.mat", "n.mat"))
    bad = ORD.copy()
    bad[0, 1, 2] = 2
    savemat(wrong_value, {"ord": bad})
    with pytest.raises(ValueError, match=r"person 0 pair \(1, 2\) is 2"):
        load_ordinal_file(wrong_value)
    savemat(wrong_shape, {"ord": np.zeros((2, 4, 3))})
    with pytest.raises(ValueError, match="N x K x K"):
        load_ordinal_file(wrong_shape)
    savemat(no_var, {"joints": np.zeros((3, 4, 2))})
    with pytest.raises(ValueError, match="no variable 'ord'"):
        load_ordinal_file(no_var)
    garbage = tmp_path / "x.bin"
    garbage.write_bytes(b"\x00\x01not an ordinal file")
    with pytest.raises(ValueError, match="posezoo JSON or the released"):
        load_ordinal_file(str(garbage))


def test_official_file_reaches_the_targets(synthetic_root, tmp_path):
    """Row n of ``ord`` is the person keyed n: here the synthetic COCO person
    whose annotation id is n; every other row is NaN (unknown)."""
    with open(os.path.join(synthetic_root, "annotations", "person_keypoints_train2017.json")) as f:
        ann_id = next(a["id"] for a in json.load(f)["annotations"] if a["num_keypoints"] > 0)
    codes = ordinal_from_depth(np.random.default_rng(1).normal(0, 300, 17), same_depth=50.0)
    ord_nkk = np.full((ann_id + 1, 17, 17), np.nan)
    ord_nkk[ann_id] = codes
    path = str(tmp_path / "ordinal.mat")
    savemat(path, {"ord": ord_nkk})
    opts = synthetic_opts(synthetic_root, str(tmp_path / "out")) + [
        "MODEL.NAME", "c2f_vol", "MODEL.TARGET_TYPE", "volumetric", "VOLUMETRIC.RES_Z", "[1, 4]",
        "MODEL.EXTRA", "{}", "DATASET.ORDINAL_FILE", path]
    cfg = load_config(None, opts)
    dataset = build_dataset(cfg, "train2017", False, build_codec(cfg))
    row = next(i for i, r in enumerate(dataset.db) if r["ordinal_key"] == str(ann_id))
    target = dataset[row][1]
    np.testing.assert_array_equal(target[-1]["ordinal"].numpy(), codes.astype(np.float32))
    other = next(i for i, r in enumerate(dataset.db) if r["ordinal_key"] != str(ann_id))
    assert (dataset[other][1][-1]["ordinal"].numpy() == ORDINAL_UNKNOWN).all()
