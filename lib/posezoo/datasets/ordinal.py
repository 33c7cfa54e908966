"""Ordinal depth labels for 2D datasets (Pavlakos et al., CVPR 2018, Sec. 3.1).

File format (JSON, our own; the official ordinal-pose3d release was not read for
a format this session): ``{"num_joints": K, "annotations": {"<ann id or image
name>": [[c00, ..., c0K-1], ...]}}`` where ``c[i][j]`` is +1 (joint i closer than
j), -1 (farther), 0 (same depth) or -128 / null (unknown), the codes of
``codecs.volumetric``. A person missing from the file gets an all-unknown matrix.
"""
import json
from typing import Dict, Sequence

import numpy as np

from ..codecs.volumetric import ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN

_CODES = (ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN)


def load_ordinal_file(path: str) -> Dict[str, np.ndarray]:
    """Read an ordinal JSON file -> {key: (K, K) int8}; one clear ValueError on a bad file."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict) or "num_joints" not in data or "annotations" not in data:
        raise ValueError(f"{path}: an ordinal file needs 'num_joints' and 'annotations' (see datasets/ordinal.py)")
    k = int(data["num_joints"])
    out = {}
    for key, rows in data["annotations"].items():
        m = np.array([[ORDINAL_UNKNOWN if c is None else c for c in row] for row in rows], dtype=np.int64)
        if m.shape != (k, k) or not np.isin(m, _CODES).all():
            raise ValueError(f"{path}: annotation {key!r} must be {k}x{k} with codes in {_CODES} or null")
        out[str(key)] = m.astype(np.int8)
    return out


def ordinal_for(labels: Dict[str, np.ndarray], key: object, num_joints: int) -> np.ndarray:
    """The (K, K) codes of one person; all ORDINAL_UNKNOWN when the file has none for it."""
    m = labels.get(str(key))
    return m.copy() if m is not None else np.full((num_joints, num_joints), ORDINAL_UNKNOWN, np.int8)


def flip_ordinal(codes: np.ndarray, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Codes after a horizontal flip: depth order is kept, joints swap names, so
    rows and columns are permuted by the flip pairs."""
    perm = np.arange(codes.shape[-1])
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return codes[..., perm, :][..., :, perm]
