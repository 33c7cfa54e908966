"""One training loader over several datasets: ``DATASET.MIX``.

Pavlakos et al. (CVPR 2018, Sec. 3.1 and 5) train one ConvNet on Human3.6M
(full 3D: the volumetric L2 loss) together with MPII/LSP images that carry only
2D joints and ordinal depth pairs (2D loss + ranking loss), every batch mixing
both kinds. The volumetric codec and ``VolumetricLoss`` already decide per
sample and per joint from the target itself: ``depth_weight`` (1 where a joint's
metric depth supervises the volume, else its 2D heatmap is supervised through
the volume's maximum over depth) and ``ordinal`` (the pair codes; -128 where
unknown). What differed between the datasets was the rest of a sample, so they
could not share a batch. Here:

- ``DATASET.MIX`` lists the parts: ``{SET: split (required), DATASET: name
  ('' = DATASET.DATASET), ROOT: path ('' = DATASET.ROOT), RATIO: share of each
  batch (default 1, normalised), ORDINAL_FILE: that part's DATASET.ORDINAL_FILE
  (default ''), JOINTS: []}``. ``JOINTS`` maps a part with another keypoint set
  into the mix's (``MODEL.NUM_JOINTS``, the order of part 0, which must not be
  remapped): entry k is the part's joint that is the mix's joint k, or -1 where
  the part has none (weight 0, ordinal pairs unknown). The mapping is applied
  after the part's own augmentation (its flip pairs), before encoding.
- Every sample's meta gets one schema (``MIX_META``): the 2D keys all datasets
  share, the 3D keys of ``datasets/h36m.py`` (``root_cam``, ``focal``,
  ``princpt``, ``joints_cam``; NaN for a part without them; ``action`` and
  ``subject`` -1), ``part`` (index into ``DATASET.MIX``) and two documented
  flags read from what the loss reads: ``has_depth`` (some joint's
  ``depth_weight`` is 1) and ``has_ordinal`` (some pair is known).
- Batches have a fixed composition (``MixedBatchSampler``): each holds
  ``counts[p]`` samples of part p (largest-remainder split of the batch by the
  ratios). An epoch is as many batches as part 0 fills once (as
  ``core.adaptation.MixedBatches`` counts steps); the other parts cycle through
  fresh permutations. ``tools/train.py`` uses it whenever the training set has
  ``batch_sampler`` (one shard of batches per rank in distributed runs).

``datasets.build_dataset(cfg, image_set, is_train=True, codec)`` returns the mix (``build_mix``)
when ``DATASET.MIX`` is set (``image_set`` / ``TRAIN_SET`` are then unused);
test sets are never mixed.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..codecs.volumetric import ORDINAL_UNKNOWN
from ..config import update_config

PART_KEYS = {"SET", "DATASET", "ROOT", "RATIO", "ORDINAL_FILE", "JOINTS"}
# the meta keys every mixed sample carries (module docstring)
MIX_META = ("image", "image_id", "index", "part", "part_index", "joints", "joints_vis", "center", "scale",
            "rotation", "score", "valid", "root_cam", "focal", "princpt", "joints_cam", "action", "subject",
            "has_depth", "has_ordinal")


def mix_specs(cfg) -> list[dict]:
    """``DATASET.MIX`` checked, with defaults filled: one ValueError per bad entry."""
    k = int(cfg.MODEL.NUM_JOINTS)
    specs = []
    for i, d in enumerate(cfg.DATASET.MIX):
        where = f"DATASET.MIX[{i}]"
        if not isinstance(d, dict) or not d.get("SET"):
            raise ValueError(f"{where} = {d!r}: expected {{SET: split, DATASET: name, ROOT: path, RATIO: share, "
                             f"ORDINAL_FILE: path, JOINTS: [..]}} (SET required)")
        unknown = set(d) - PART_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(PART_KEYS)}")
        ratio = float(d.get("RATIO", 1.0))
        if not ratio > 0 or not math.isfinite(ratio):
            raise ValueError(f"{where}: RATIO must be a positive number, got {d.get('RATIO')!r}")
        joints = list(d.get("JOINTS") or [])
        if joints and (len(joints) != k or not all(isinstance(j, int) and j >= -1 for j in joints)):
            raise ValueError(f"{where}: JOINTS must list MODEL.NUM_JOINTS = {k} joint indices of the part "
                             f"(-1 where it has none); got {joints!r}")
        if joints and i == 0:
            raise ValueError(f"{where}: part 0 defines the mix's joints and cannot be remapped (JOINTS)")
        specs.append({"dataset": d.get("DATASET") or cfg.DATASET.DATASET, "root": d.get("ROOT") or cfg.DATASET.ROOT,
                      "set": d["SET"], "ratio": ratio, "ordinal_file": d.get("ORDINAL_FILE") or "",
                      "joints": joints})
    if len(specs) < 2:
        raise ValueError(f"DATASET.MIX lists {len(specs)} part(s); a mix needs at least two (or leave it [])")
    return specs


def batch_counts(ratios: Sequence[float], batch_size: int) -> list[int]:
    """Samples of each part per batch: the largest-remainder split of
    ``batch_size`` by ``ratios`` (ties to the earlier part); every part at least one."""
    if batch_size < len(ratios):
        raise ValueError(f"a batch of {batch_size} cannot hold all {len(ratios)} DATASET.MIX parts; "
                         f"raise TRAIN.BATCH_SIZE_PER_GPU")
    share = np.asarray(ratios, dtype=np.float64) / float(np.sum(ratios)) * batch_size
    counts = np.floor(share).astype(int)
    order = sorted(range(len(share)), key=lambda p: (-(share[p] - counts[p]), p))
    for p in order[:batch_size - counts.sum()]:
        counts[p] += 1
    for p in np.flatnonzero(counts == 0):  # a part too small for its share still gets one slot
        counts[int(np.argmax(counts))] -= 1
        counts[p] = 1
    return counts.tolist()


class JointMap:
    """A part's keypoints in the mix's joint order (``JOINTS``, module docstring)."""

    def __init__(self, joints: Sequence[int]) -> None:
        self.index = np.asarray(joints, dtype=np.int64)
        self.present = self.index >= 0

    def remap(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """(K_part, ...) -> (K_mix, ...), ``fill`` where the part has no joint."""
        out = np.full((len(self.index),) + values.shape[1:], fill, dtype=values.dtype)
        out[self.present] = values[self.index[self.present]]
        return out

    def remap_pairs(self, codes: np.ndarray) -> np.ndarray:
        """(K_part, K_part) ordinal codes -> (K_mix, K_mix), unknown where a joint is missing."""
        out = np.full((len(self.index),) * 2, ORDINAL_UNKNOWN, dtype=np.asarray(codes).dtype)
        idx = self.index[self.present]
        out[np.ix_(self.present, self.present)] = np.asarray(codes)[np.ix_(idx, idx)]
        return out


class RemappedCodec:
    """The mix's codec seen by a part with another keypoint set: ``encode``
    receives the part's joints (and ordinal codes) and encodes them in the mix's
    joint order; everything else is the codec's."""

    def __init__(self, codec, joints: Sequence[int]) -> None:
        self.codec = codec
        self.joint_map = JointMap(joints)

    def __getattr__(self, name: str) -> Any:
        if name in ("codec", "joint_map") or name.startswith("__"):  # unpickling in a worker, before __init__
            raise AttributeError(name)
        return getattr(self.codec, name)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray, ordinal: Optional[np.ndarray] = None,
               **sample: Any):
        if ordinal is not None:
            if "ordinal" not in inspect.signature(self.codec.encode).parameters:
                raise ValueError(f"the codec {type(self.codec).__name__} takes no ordinal labels "
                                 f"(a DATASET.MIX part has ORDINAL_FILE)")
            sample["ordinal"] = self.joint_map.remap_pairs(ordinal)
        remap = self.joint_map.remap
        if "visible" in sample:  # Codec.reads_visibility
            sample["visible"] = remap(np.asarray(sample["visible"], dtype=bool), False)
        return self.codec.encode(remap(np.asarray(joints)), remap(np.asarray(joints_vis)), **sample)


def _flags(target: Any) -> tuple[bool, bool]:
    """(has_depth, has_ordinal) of one sample from what the loss reads: the
    last stack's ``depth_weight`` and ``ordinal`` (False for codecs without them)."""
    last = target[-1] if isinstance(target, (list, tuple)) else target
    if not isinstance(last, dict):
        return False, False
    depth = bool((last["depth_weight"] > 0).any()) if "depth_weight" in last else False
    pairs = bool((last["ordinal"] != ORDINAL_UNKNOWN).any()) if "ordinal" in last else False
    return depth, pairs


class MixedDataset(Dataset):
    """The parts of ``DATASET.MIX`` as one dataset with one meta schema
    (module docstring); ``batch_sampler`` gives the fixed-composition batches."""

    def __init__(self, parts: Sequence[Dataset], ratios: Sequence[float], joint_maps: Sequence[Sequence[int]],
                 num_joints: int) -> None:
        self.parts = list(parts)
        self.ratios = [float(r) for r in ratios]
        self.maps = [JointMap(m) if len(m) else None for m in joint_maps]
        self.num_joints = int(num_joints)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        if any(len(p) == 0 for p in self.parts):
            empty = [i for i, p in enumerate(self.parts) if len(p) == 0]
            raise ValueError(f"DATASET.MIX part(s) {empty} have no samples")
        first = self.parts[0]
        self.flip_pairs = getattr(first, "flip_pairs", [])
        self.skeleton = getattr(first, "skeleton", [])
        self.image_set = "mix"

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, idx: int) -> tuple[int, int]:
        """(part, index inside the part) of a mixed index."""
        if not 0 <= idx < len(self):
            raise IndexError(f"mixed index {idx} out of range 0..{len(self) - 1}")
        part = int(np.searchsorted(self.offsets, idx, side="right") - 1)
        return part, idx - int(self.offsets[part])

    def __getitem__(self, idx: int):
        part, local = self.locate(idx)
        inputs, target, weight, meta = self.parts[part][local]
        return inputs, target, weight, self.unify(meta, target, part, idx, local)

    def unify(self, meta: dict, target: Any, part: int, idx: int, local: int) -> dict:
        """The sample's meta in the ``MIX_META`` schema, per-joint entries in the mix's joint order."""
        remap = self.maps[part].remap if self.maps[part] is not None else (lambda v, fill=0.0: v)
        k = self.num_joints
        nan = np.full(3, np.nan)
        has_depth, has_ordinal = _flags(target)
        joints_cam = meta.get("joints_cam")
        return {
            "image": str(meta.get("image", "")), "image_id": int(meta.get("image_id", local)), "index": int(idx),
            "part": part, "part_index": int(local),
            "joints": remap(np.asarray(meta["joints"], dtype=np.float32)),
            "joints_vis": remap(np.asarray(meta["joints_vis"], dtype=np.float32)),
            "center": np.asarray(meta["center"], dtype=np.float32), "scale": np.asarray(meta["scale"], np.float32),
            "rotation": float(meta.get("rotation", 0.0)), "score": float(meta.get("score", 1.0)),
            "valid": int(meta.get("valid", 1)),
            "root_cam": np.asarray(meta.get("root_cam", nan), dtype=np.float64),
            "focal": np.asarray(meta.get("focal", nan[:2]), dtype=np.float64),
            "princpt": np.asarray(meta.get("princpt", nan[:2]), dtype=np.float64),
            "joints_cam": (np.full((k, 3), np.nan) if joints_cam is None
                           else remap(np.asarray(joints_cam, dtype=np.float64), np.nan)),
            "action": int(meta.get("action", -1)), "subject": int(meta.get("subject", -1)),
            "has_depth": has_depth, "has_ordinal": has_ordinal,
        }

    def batch_sampler(self, batch_size: int, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                      seed: int = 0) -> "MixedBatchSampler":
        return MixedBatchSampler([len(p) for p in self.parts], batch_counts(self.ratios, batch_size),
                                 shuffle, rank, world_size, seed)


class MixedBatchSampler(Sampler):
    """Batches of mixed indices with ``counts[p]`` samples of part p each
    (part 0 first); module docstring for the epoch length and the cycling.
    Like ``DistributedSampler`` it draws from (seed, epoch) alone
    (``set_epoch``), the same on every rank, and rank r keeps the batches
    b = r mod world_size: the ranks' batches are disjoint and a resumed epoch
    replays exactly."""

    def __init__(self, sizes: Sequence[int], counts: Sequence[int], shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, seed: int = 0) -> None:
        self.sizes = [int(s) for s in sizes]
        self.counts = [int(c) for c in counts]
        self.offsets = np.cumsum([0] + self.sizes)
        self.shuffle = shuffle
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed, self.epoch = int(seed), 0
        self.total = max(1, self.sizes[0] // self.counts[0])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(1, self.total // self.world_size)

    def _stream(self, part: int, generator: torch.Generator) -> Iterator[int]:
        """The part's indices, pass after pass (a fresh permutation each pass when shuffling)."""
        while True:
            order = (torch.randperm(self.sizes[part], generator=generator).tolist() if self.shuffle
                     else range(self.sizes[part]))
            for i in order:
                yield int(self.offsets[part]) + int(i)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        streams = [self._stream(p, generator) for p in range(len(self.sizes))]
        for b in range(self.world_size * len(self)):
            batch = [next(s) for s, c in zip(streams, self.counts) for _ in range(c)]
            if b % self.world_size == self.rank:
                yield batch


def build_mix(cfg, image_set: str, is_train: bool, codec) -> MixedDataset:
    """The mix of ``DATASET.MIX`` (module docstring); each part is built as its
    own DATASET/ROOT/ORDINAL_FILE would build it, with the mix's codec."""
    from . import build_dataset
    specs = mix_specs(cfg)
    parts = []
    for spec in specs:
        part_cfg = update_config(cfg, ["DATASET.DATASET", spec["dataset"], "DATASET.ROOT", spec["root"],
                                       "DATASET.ORDINAL_FILE", spec["ordinal_file"], "DATASET.MIX", []])
        part_codec = RemappedCodec(codec, spec["joints"]) if spec["joints"] else codec
        part = build_dataset(part_cfg, spec["set"], is_train, part_codec)
        size = getattr(part, "num_joints", None)
        if size is not None and (max(spec["joints"]) >= size if spec["joints"] else size != cfg.MODEL.NUM_JOINTS):
            raise ValueError(f"DATASET.MIX part {len(parts)} ({spec['dataset']}) has {size} joints: "
                             + (f"JOINTS names joint {max(spec['joints'])}" if spec["joints"] else
                                f"give JOINTS to map them onto MODEL.NUM_JOINTS = {cfg.MODEL.NUM_JOINTS}"))
        parts.append(part)
    return MixedDataset(parts, [s["ratio"] for s in specs], [s["joints"] for s in specs], cfg.MODEL.NUM_JOINTS)
