"""TigDog horse / tiger as CC-SSL reads it (Mu et al., CVPR 2020),
``DATASET.DATASET: tigdog``; ``TRAIN_SET`` / ``TEST_SET`` are
``<animal>_train`` / ``<animal>_valid`` with animal ``horse`` or ``tiger``.

Layout (the TigDog download plus the CC-SSL repo's split files)::

    ROOT/behaviorDiscovery2.0/ranges/<animal>/ranges.mat      'ranges': (V, 3) shot id, first, last frame
    ROOT/behaviorDiscovery2.0/landmarks/<animal>/<shot>.mat   'landmarks': per frame {coords (J, 2), visibility (J, 1)}
    ROOT/behaviorDiscovery2.0/<animal>/<frame:08d>.jpg
    ROOT/real_animal/<animal>/{train,valid}_idxs_by_video.npy (CC-SSL's data/real_animal/<animal>/, optional)

As in CC-SSL (``pose/datasets/real_animal.py``): the first 18 landmarks of each
frame (lines 42-50), frames with more than 9 visible ones (``dataset_filter``
54-65), the split by video from the two ``.npy`` files (indices into the list
of all frames; without them a seeded 1/5-of-the-videos split like lines
68-88), tiger joints reordered into the horse order
(``evaluation/test.py:66-67``), and the crop: centre and 1.5 x the longer side
of the box around the labelled joints (``real_animal_sp.py``, the ``c``/``s``
lines). Metric: PCK@0.05 with CC-SSL's normaliser and averaging
(``core.pck.ccssl_pck``).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Sequence

import numpy as np
from scipy.io import loadmat

from ..core.pck import ccssl_pck, keypoint_crop_sizes
from ..utils.transforms import PIXEL_STD
from .animal import TIGDOG
from .coco import AnnotationError
from .joints_dataset import JointsDataset, make_record

ANIMALS = ("horse", "tiger")
NUM_LANDMARKS = TIGDOG.num_joints
# Tiger landmark j of the horse order is tiger file row TIGER_TO_HORSE[j] (evaluation/test.py:67, 1-based there).
TIGER_TO_HORSE = np.array([1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 18, 13, 14, 9, 10, 11, 12]) - 1
CROP_FACTOR = 1.5
CCSSL_TEST_BATCH = 6  # evaluation/test.py --test-batch default: the batches CC-SSL's mean is averaged over


def parse_image_set(image_set: str, animals: Sequence[str] = ANIMALS, name: str = "TigDog") -> tuple[str, str]:
    """``<animal>_<train|valid>`` -> (animal, split), one clear line otherwise."""
    animal, _, split = image_set.partition("_")
    if animal not in animals or split not in ("train", "valid"):
        raise ValueError(f"{name} image set {image_set!r}: expected <animal>_<split> with animal in {tuple(animals)} "
                         f"and split train or valid, e.g. {animals[0]}_valid")
    return animal, split


def square_crop_scale(side: float, aspect_ratio: float) -> np.ndarray:
    """posezoo's (w, h) scale, in PIXEL_STD units, of CC-SSL's square crop of
    `side` pixels; a non-square input keeps the side and grows the other axis."""
    w = h = float(side)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h]) / PIXEL_STD


def load_frames(root: str, animal: str) -> tuple[list[tuple[str, int, int]], list[np.ndarray]]:
    """Every frame of every annotated shot: (image file, shot id, frame in shot)
    and its (18, 3) landmarks x, y, visibility, in CC-SSL's ``load_animal`` order."""
    base = os.path.join(root, "behaviorDiscovery2.0")
    ranges_file = os.path.join(base, "ranges", animal, "ranges.mat")
    if not os.path.isfile(ranges_file):
        raise AnnotationError(f"TigDog ranges file not found: {ranges_file} (DATASET.ROOT must hold "
                              f"behaviorDiscovery2.0/ from the TigDog download)")
    frames, landmarks = [], []
    for shot_id, first, last in np.asarray(loadmat(ranges_file)["ranges"]).astype(np.int64).reshape(-1, 3):
        path = os.path.join(base, "landmarks", animal, f"{shot_id}.mat")
        if not os.path.isfile(path):
            continue
        per_frame = loadmat(path)["landmarks"]
        for frame in range(first, last + 1):
            k = frame - first
            if k >= len(per_frame):
                raise AnnotationError(f"{path}: {len(per_frame)} frames of landmarks, ranges.mat says "
                                      f"{last - first + 1} (shot {shot_id})")
            entry = per_frame[k][0][0][0]
            coords, vis = np.asarray(entry[0], np.float64), np.asarray(entry[1], np.float64).reshape(-1, 1)
            rows = np.hstack([coords.reshape(-1, 2), vis])[:NUM_LANDMARKS]
            if rows.shape[0] < NUM_LANDMARKS:
                raise AnnotationError(f"{path}: frame {k} has {rows.shape[0]} landmarks, CC-SSL uses "
                                      f"{NUM_LANDMARKS}")
            frames.append((f"{frame:08d}.jpg", int(shot_id), k))
            landmarks.append(rows[TIGER_TO_HORSE] if animal == "tiger" else rows)
    return frames, landmarks


def split_by_video(root: str, animal: str, frames: Sequence[tuple[str, int, int]],
                   landmarks: Sequence[np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Frame indices of the train and valid splits: CC-SSL's files when present,
    else 1/5 of the videos (seeded) among frames passing ``dataset_filter``."""
    folder = os.path.join(root, "real_animal", animal)
    files = {s: os.path.join(folder, f"{s}_idxs_by_video.npy") for s in ("train", "valid")}
    if all(os.path.isfile(f) for f in files.values()):
        split = {s: np.load(f, allow_pickle=False).astype(np.int64).reshape(-1) for s, f in files.items()}
        bad = [s for s, idx in split.items() if len(idx) and (idx.min() < 0 or idx.max() >= len(frames))]
        if bad:
            raise AnnotationError(f"{files[bad[0]]} indexes frames outside 0..{len(frames) - 1}")
        return split
    kept = [i for i, rows in enumerate(landmarks) if rows[:, 2].sum() > NUM_LANDMARKS // 2]
    videos = sorted({frames[i][1] for i in kept})
    valid_videos = set(np.random.default_rng(seed).choice(videos, len(videos) // 5, replace=False).tolist())
    return {"train": np.array([i for i in kept if frames[i][1] not in valid_videos], np.int64),
            "valid": np.array([i for i in kept if frames[i][1] in valid_videos], np.int64)}


class TigDogDataset(JointsDataset):
    keypoints = TIGDOG

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        kp = self.keypoints
        super().__init__(cfg, image_set, is_train, codec, kp.num_joints, kp.flip_pairs, kp.upper_body_ids,
                         [1.0] * kp.num_joints)
        self.animal, split = parse_image_set(image_set)
        self.skeleton = list(kp.skeleton)
        self.frames, landmarks = load_frames(self.root, self.animal)
        self.image_dir = os.path.join(self.root, "behaviorDiscovery2.0", self.animal)
        for index in split_by_video(self.root, self.animal, self.frames, landmarks, cfg.SEED)[split]:
            record = self._record(int(index), landmarks[index])
            if record is not None:
                self.db.append(record)

    def image_path(self, image_id: int) -> str:
        return os.path.join(self.image_dir, self.frames[image_id][0])

    def _record(self, index: int, rows: np.ndarray) -> dict | None:
        labelled = (rows[:, 0] > 0) & (rows[:, 1] > 0) & (rows[:, 2] > 0)
        side = keypoint_crop_sizes(rows[None, :, :2], CROP_FACTOR)[0]
        if side <= 0:
            return None
        xs, ys = rows[rows[:, 0] > 0, 0], rows[rows[:, 1] > 0, 1]
        center = np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2], np.float32)
        joints = np.zeros((self.num_joints, 3), np.float32)
        joints[:, :2] = np.where(labelled[:, None], rows[:, :2], 0)
        vis = np.repeat(labelled[:, None].astype(np.float32), 3, axis=1)
        vis[:, 2] = 0
        rec = make_record(self.image_path(index), index, center, square_crop_scale(side, self.aspect_ratio), joints,
                          vis)
        rec["crop_size"] = float(side)
        rec["video"] = self.frames[index][1]  # the shot: CC-SSL's temporal constraint links its frames
        return rec

    def evaluate(self, preds: np.ndarray, boxes: np.ndarray, image_ids: Sequence[int], output_dir: str,
                 rank: int = 0) -> tuple[OrderedDict, float]:
        """PCK@0.05 (mean and per joint, percent) as CC-SSL reports it; preds
        follow ``self.db`` order (one per record)."""
        if len(preds) != len(self.db):
            raise ValueError(f"{len(preds)} predictions for {len(self.db)} TigDog crops")
        return crop_pck_table(preds, self.db, self.keypoints.names)


def crop_pck_table(preds: np.ndarray, db: Sequence[dict], names: Sequence[str], alpha: float = 0.05,
                   batch_size: int = CCSSL_TEST_BATCH) -> tuple[OrderedDict, float]:
    """CC-SSL's PCK@alpha table of `preds` against records carrying
    ``joints``, ``joints_vis`` and ``crop_size``: (table, mean)."""
    gt = np.asarray([r["joints"][:, :2] for r in db], np.float64).reshape(len(db), -1, 2)
    vis = np.asarray([r["joints_vis"][:, 0] > 0 for r in db], bool).reshape(len(db), -1)
    crop = np.asarray([r["crop_size"] for r in db], np.float64)
    result = ccssl_pck(np.asarray(preds)[..., :2], gt, vis, crop, alpha, batch_size)
    table = OrderedDict([(f"PCK@{alpha:g}", float(result.mean))])
    table.update((f"PCK {n}", float(v)) for n, v in zip(names, result.per_joint))
    return table, float(result.mean)


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> TigDogDataset:
    return TigDogDataset(cfg, image_set, is_train, codec)
