import json

import numpy as np
import pytest

from posezoo.codecs.volumetric import ORDINAL_UNKNOWN, ordinal_from_depth
from posezoo.datasets.ordinal import flip_ordinal, load_ordinal_file, ordinal_for


def _write(tmp_path, anns, k=3):
    p = tmp_path / "ord.json"
    p.write_text(json.dumps({"num_joints": k, "annotations": anns}))
    return str(p)


def test_read_exactly_and_missing_is_unknown(tmp_path):
    m = [[0, 1, -1], [-1, 0, None], [1, -128, 0]]
    labels = load_ordinal_file(_write(tmp_path, {"17": m}))
    got = ordinal_for(labels, 17, 3)
    assert got.dtype == np.int8
    assert got.tolist() == [[0, 1, -1], [-1, 0, -128], [1, -128, 0]]
    assert (ordinal_for(labels, 99, 3) == ORDINAL_UNKNOWN).all()


def test_bad_file_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="3x3"):
        load_ordinal_file(_write(tmp_path, {"1": [[0, 2, 0], [0, 0, 0], [0, 0, 0]]}))


def test_flip_swaps_pairs_like_flipping_the_depths():
    z = np.array([3.0, 1.0, 2.0, 5.0])
    pairs = [(1, 2)]
    flipped_z = z[[0, 2, 1, 3]]
    assert (flip_ordinal(ordinal_from_depth(z), pairs) == ordinal_from_depth(flipped_z)).all()


def test_loss_on_file_codes_constructed_case(tmp_path):
    """Pairs (0,1): +1, (0,2): unknown, (1,2): 0; a missing person contributes 0."""
    import math

    import torch

    from posezoo.core.loss import ordinal_loss
    m = [[0, 1, None], [-1, 0, 0], [None, 0, 0]]
    labels = load_ordinal_file(_write(tmp_path, {"a": m}))
    codes = torch.from_numpy(np.stack([ordinal_for(labels, "a", 3), ordinal_for(labels, "b", 3)]).astype(np.int64))
    z = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 2.0]])
    got = ordinal_loss(z, codes, torch.ones(2, 3))
    expect = (math.log1p(math.exp(1.0)) + 4.0) / 2
    assert got[0].item() == pytest.approx(expect, rel=1e-6)
    assert got[1].item() == 0.0
