"""Ordinal depth labels for 2D datasets (Pavlakos et al., CVPR 2018, Sec. 3.1).

``DATASET.ORDINAL_FILE`` is read in one of two formats (``load_ordinal_file``
tells them apart by content, not by name):

- **posezoo JSON**: ``{"num_joints": K, "annotations": {"<ann id or person
  index>": [[c00, ..., c0K-1], ...]}}`` where ``c[i][j]`` is +1 (joint i closer
  than j), -1 (farther), 0 (same depth) or -128 / null (unknown), the codes of
  ``codecs.volumetric``.
- **the released LSP/MPII ordinal annotations** (the ``ordinal.mat`` beside
  each set's ``joints.mat``, distributed from the paper's project page): one
  MATLAB variable ``ord`` of size N x K x K, ``ord(n, i, j)`` the paper's
  r(i, j) of the n-th person (+1 / -1 / 0, Eq. 2). The official repository
  geopavlakos/ordinal-pose3d (commit 9b5b7f4) holds no reader of it: it releases
  the Human3.6M evaluation only (``README.md:13`` "We will soon update this
  repository with the training code"; ``full-eval/util.lua:16-45``
  ``loadAnnotations`` reads only ``center``/``scale`` from ``annot/<set>.h5``
  and the image names). The layout here is that of the files as a public
  reader takes them (yanghtr/human-pose3d ``data_explorer.py``:
  ``loadmat('ordinal.mat')['ord']`` -> (N, K, K), MPII in its 16-joint order,
  LSP in its 14), and the sign convention that reader's ranking loss uses
  (``models.py`` ``_ranking_loss``: log(1 + exp((z_i - z_j) r_ij)), so +1 means
  i is closer, as here). A MATLAB v5 file is read with scipy; a v7.3 file (HDF5,
  whose arrays come back transposed) or a plain ``.h5`` with dataset ``ord``
  (N, K, K) with h5py. Person n is keyed ``str(n)``: for an MPII-format set that
  is the person's index in its annotation file. Non-finite entries are unknown.

A person missing from the file gets an all-unknown matrix.
"""
import json
from typing import Dict, Sequence

import numpy as np

from ..codecs.volumetric import ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN

_CODES = (ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME, ORDINAL_UNKNOWN)
OFFICIAL_VARIABLE = "ord"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_ordinal_file(path: str) -> Dict[str, np.ndarray]:
    """Read an ordinal file in either format (module docstring) -> {key: (K, K)
    int8}; one clear ValueError on a bad file."""
    with open(path, "rb") as f:
        head = f.read(1024)
    if head.lstrip()[:1] == b"{":
        return _load_json(path)
    if _HDF5_MAGIC in (head[:8], head[512:520]):  # a v7.3 MAT-file is HDF5 after a 512-byte header
        return _official_codes(_read_h5(path, matlab=head.startswith(b"MATLAB")), path)
    if head.startswith(b"MATLAB"):
        return _official_codes(_read_mat(path), path)
    raise ValueError(f"{path}: an ordinal file is posezoo JSON or the released ordinal.mat / .h5 "
                     f"(variable '{OFFICIAL_VARIABLE}'), see datasets/ordinal.py")


def _load_json(path: str) -> Dict[str, np.ndarray]:
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


def _read_mat(path: str) -> np.ndarray:
    from scipy.io import loadmat
    try:
        variables = loadmat(path, variable_names=[OFFICIAL_VARIABLE])
    except (ValueError, TypeError, OSError) as err:
        raise ValueError(f"{path}: not a readable MATLAB file ({err})") from None
    if OFFICIAL_VARIABLE not in variables:
        raise ValueError(f"{path}: the MATLAB file has no variable '{OFFICIAL_VARIABLE}' (the released ordinal.mat)")
    return np.asarray(variables[OFFICIAL_VARIABLE], dtype=np.float64)


def _read_h5(path: str, matlab: bool) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading {path} needs h5py (pip install posezoo[h5])") from None
    with h5py.File(path, "r") as f:
        if OFFICIAL_VARIABLE not in f:
            raise ValueError(f"{path}: the HDF5 file has no dataset '{OFFICIAL_VARIABLE}'")
        codes = np.asarray(f[OFFICIAL_VARIABLE][()], dtype=np.float64)
    # MATLAB v7.3 stores column-major: ord(n, i, j) comes back at [j, i, n]
    return codes.transpose(2, 1, 0) if matlab and codes.ndim == 3 else codes


def _official_codes(codes: np.ndarray, path: str) -> Dict[str, np.ndarray]:
    """(N, K, K) r(i, j) values -> {str(n): int8 codes}, non-finite -> unknown."""
    if codes.ndim != 3 or codes.shape[1] != codes.shape[2]:
        raise ValueError(f"{path}: '{OFFICIAL_VARIABLE}' must be N x K x K (person, joint i, joint j); "
                         f"got {codes.shape}")
    known = np.isfinite(codes)
    bad = known & ~np.isin(codes, (ORDINAL_CLOSER, ORDINAL_FARTHER, ORDINAL_SAME))
    if bad.any():
        n, i, j = np.argwhere(bad)[0]
        raise ValueError(f"{path}: person {n} pair ({i}, {j}) is {codes[n, i, j]:g}; "
                         f"the released codes are +1 (i closer), -1 (farther), 0 (same depth)")
    out = np.where(known, codes, ORDINAL_UNKNOWN).astype(np.int8)
    return {str(n): out[n] for n in range(len(out))}


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
