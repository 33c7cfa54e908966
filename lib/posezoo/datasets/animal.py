"""Animal keypoint sets and the COCO-format reader they share.

A ``KeypointSet`` is everything a dataset module needs to know about its joints:
names, flip pairs, skeleton (0-based), OKS sigmas, joint weights, upper body.
``AnimalCOCODataset`` is ``COCODataset`` with (a) every species category of the
file read (Animal-Pose has 5, AP-10K 54, all with the same keypoints), (b) the
keypoint set's metadata instead of COCO person's, (c) PCK@``alpha`` of the box's
longer side reported next to OKS AP. ``DATASET.FLIP_PAIRS`` / ``OKS_SIGMAS`` /
``JOINTS_WEIGHT`` / ``UPPER_BODY_IDS`` still override the built-in values.

Metadata sources: Animal-Pose and AP-10K follow mmpose's
``configs/_base_/datasets/{animalpose,ap10k}.py`` (keypoint order of the COCO
conversions both projects distribute, sigmas, joint weights); TigDog follows
the CC-SSL code (``pose/utils/transforms.py`` ``matchedParts`` for
``real_animal``, joint order of its README).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.pck import bbox_sizes, pck
from .coco import COCODataset

PCK_ALPHA = 0.05
LOOSE_PCK_ALPHA = 0.1  # also reported (mean only): how far off the misses are


@dataclass(frozen=True)
class KeypointSet:
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body_ids: tuple[int, ...]
    sigmas: tuple[float, ...] = ()
    joints_weight: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.names)
        for what, values in (("sigmas", self.sigmas), ("joints_weight", self.joints_weight)):
            if values and len(values) != k:
                raise ValueError(f"{what} has {len(values)} values for {k} keypoints")
        if any(not (0 <= a < k and 0 <= b < k) for pair in (self.flip_pairs + self.skeleton) for a, b in [pair]):
            raise ValueError("flip pairs and skeleton must index 0..K-1")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, *names: str) -> list[int]:
        return [self.names.index(n) for n in names]


def _links(names: Sequence[str], links: Sequence[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((names.index(a), names.index(b)) for a, b in links)


_AP_NAMES = ("L_Eye", "R_Eye", "L_EarBase", "R_EarBase", "Nose", "Throat", "TailBase", "Withers",
             "L_F_Elbow", "R_F_Elbow", "L_B_Elbow", "R_B_Elbow", "L_F_Knee", "R_F_Knee", "L_B_Knee", "R_B_Knee",
             "L_F_Paw", "R_F_Paw", "L_B_Paw", "R_B_Paw")
ANIMALPOSE = KeypointSet(
    names=_AP_NAMES,
    flip_pairs=((0, 1), (2, 3), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17), (18, 19)),
    skeleton=_links(_AP_NAMES, [
        ("L_Eye", "R_Eye"), ("L_Eye", "L_EarBase"), ("R_Eye", "R_EarBase"), ("L_Eye", "Nose"), ("R_Eye", "Nose"),
        ("Nose", "Throat"), ("Throat", "Withers"), ("TailBase", "Withers"), ("Throat", "L_F_Elbow"),
        ("L_F_Elbow", "L_F_Knee"), ("L_F_Knee", "L_F_Paw"), ("Throat", "R_F_Elbow"), ("R_F_Elbow", "R_F_Knee"),
        ("R_F_Knee", "R_F_Paw"), ("TailBase", "L_B_Elbow"), ("L_B_Elbow", "L_B_Knee"), ("L_B_Knee", "L_B_Paw"),
        ("TailBase", "R_B_Elbow"), ("R_B_Elbow", "R_B_Knee"), ("R_B_Knee", "R_B_Paw")]),
    upper_body_ids=(0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17),
    sigmas=(0.025, 0.025, 0.026, 0.035, 0.035, 0.10, 0.10, 0.10, 0.107, 0.107,
            0.107, 0.107, 0.087, 0.087, 0.087, 0.087, 0.089, 0.089, 0.089, 0.089),
    joints_weight=(1.,) * 12 + (1.2,) * 4 + (1.5,) * 4,
)

_AP10K_NAMES = ("L_Eye", "R_Eye", "Nose", "Neck", "Root_of_tail", "L_Shoulder", "L_Elbow", "L_F_Paw",
                "R_Shoulder", "R_Elbow", "R_F_Paw", "L_Hip", "L_Knee", "L_B_Paw", "R_Hip", "R_Knee", "R_B_Paw")
AP10K = KeypointSet(
    names=_AP10K_NAMES,
    flip_pairs=((0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)),
    skeleton=_links(_AP10K_NAMES, [
        ("L_Eye", "R_Eye"), ("L_Eye", "Nose"), ("R_Eye", "Nose"), ("Nose", "Neck"), ("Neck", "Root_of_tail"),
        ("Neck", "L_Shoulder"), ("L_Shoulder", "L_Elbow"), ("L_Elbow", "L_F_Paw"), ("Neck", "R_Shoulder"),
        ("R_Shoulder", "R_Elbow"), ("R_Elbow", "R_F_Paw"), ("Root_of_tail", "L_Hip"), ("L_Hip", "L_Knee"),
        ("L_Knee", "L_B_Paw"), ("Root_of_tail", "R_Hip"), ("R_Hip", "R_Knee"), ("R_Knee", "R_B_Paw")]),
    upper_body_ids=(0, 1, 2, 3, 5, 6, 7, 8, 9, 10),
    sigmas=(0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072,
            0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089),
    joints_weight=(1., 1., 1., 1., 1., 1., 1., 1.2, 1.2, 1.5, 1.5, 1., 1., 1.2, 1.2, 1.5, 1.5),
)

# CC-SSL's 18 TigDog joints (horse order; tiger files are reordered into it).
# Index 7 is unpaired and unnamed in the CC-SSL README's list of 17 names;
# third-party TigDog metadata calls it the tail base.
_TIGDOG_NAMES = ("L_Eye", "R_Eye", "Chin", "L_F_Hoof", "R_F_Hoof", "L_B_Hoof", "R_B_Hoof", "TailBase",
                 "L_F_Knee", "R_F_Knee", "L_B_Knee", "R_B_Knee", "L_Shoulder", "R_Shoulder",
                 "L_F_Elbow", "R_F_Elbow", "L_B_Elbow", "R_B_Elbow")
TIGDOG = KeypointSet(
    names=_TIGDOG_NAMES,
    flip_pairs=((0, 1), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17)),
    skeleton=_links(_TIGDOG_NAMES, [
        ("L_Eye", "R_Eye"), ("L_Eye", "Chin"), ("R_Eye", "Chin"), ("L_Shoulder", "L_F_Elbow"),
        ("L_F_Elbow", "L_F_Knee"), ("L_F_Knee", "L_F_Hoof"), ("R_Shoulder", "R_F_Elbow"), ("R_F_Elbow", "R_F_Knee"),
        ("R_F_Knee", "R_F_Hoof"), ("TailBase", "L_B_Elbow"), ("L_B_Elbow", "L_B_Knee"), ("L_B_Knee", "L_B_Hoof"),
        ("TailBase", "R_B_Elbow"), ("R_B_Elbow", "R_B_Knee"), ("R_B_Knee", "R_B_Hoof"),
        ("L_Shoulder", "TailBase"), ("R_Shoulder", "TailBase")]),
    upper_body_ids=(0, 1, 2, 3, 4, 8, 9, 12, 13, 14, 15),
)


def box_pck_table(preds: np.ndarray, gt: np.ndarray, visible: np.ndarray, boxes_xywh: np.ndarray,
                  names: Sequence[str], alpha: float = PCK_ALPHA) -> OrderedDict:
    """``PCK@alpha`` (mean) and one ``PCK <joint>`` entry per joint, percent,
    normalised by the longer side of each instance's box (the common animal
    benchmark convention, e.g. mmpose's ``PCKAccuracy`` with ``bbox``)."""
    result = pck(preds[..., :2], gt[..., :2], visible, bbox_sizes(boxes_xywh, "max"), alpha=alpha)
    table = OrderedDict([(f"PCK@{alpha:g}", float(result.mean))])
    table.update((f"PCK {n}", float(v)) for n, v in zip(names, result.per_joint))
    return table


class AnimalCOCODataset(COCODataset):
    """A COCO-format animal set: all species categories, the ``keypoints``
    metadata, OKS AP (COCOeval with the set's sigmas) plus box PCK."""

    keypoints: KeypointSet = ANIMALPOSE

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        kp = self.keypoints
        super().__init__(cfg, image_set, is_train, codec, flip_pairs=kp.flip_pairs, upper_body_ids=kp.upper_body_ids,
                         joints_weight=list(kp.joints_weight) or None, sigmas=list(kp.sigmas) or None)
        if self.num_joints != kp.num_joints:
            raise ValueError(f"{self.ann_file}: {self.num_joints} keypoints per category, "
                             f"{type(self).__name__} expects {kp.num_joints} ({', '.join(kp.names)})")
        # COCODataset drops non-17-joint flip pairs/upper body unless configured: restore the set's own.
        self.flip_pairs = [tuple(p) for p in (cfg.DATASET.FLIP_PAIRS or kp.flip_pairs)]
        self.upper_body_ids = set(cfg.DATASET.UPPER_BODY_IDS or kp.upper_body_ids)
        self.skeleton = self.skeleton or list(kp.skeleton)
        self._check_metadata()

    @staticmethod
    def keypoint_categories(categories: list[dict]) -> list[dict]:
        return [c for c in categories if c.get("keypoints")] or categories[:1]

    def ground_truth(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """GT joints (N, K, 2), visibility (N, K) and the clipped annotated
        [x, y, w, h] boxes of the records, in ``self.db`` order (``predict``'s)."""
        k = self.num_joints
        gt = np.asarray([r["joints"][:, :2] for r in self.db], dtype=np.float64).reshape(-1, k, 2)
        vis = np.asarray([r["joints_vis"][:, 0] > 0 for r in self.db], dtype=bool).reshape(-1, k)
        boxes = np.asarray([r["bbox"] for r in self.db], dtype=np.float64).reshape(-1, 4)
        return gt, vis, boxes

    def evaluate(self, preds: np.ndarray, boxes: np.ndarray, image_ids: Sequence[int], output_dir: str,
                 rank: int = 0) -> tuple[OrderedDict, float]:
        """OKS AP as COCODataset does; with GT boxes (one prediction per GT
        record, in order) also PCK@0.05 of the annotated box's longer side
        (per joint and mean) and the mean PCK@0.1.
        The main metric stays AP."""
        stats, ap = super().evaluate(preds, boxes, image_ids, output_dir, rank)
        if self.use_gt_bbox and len(preds) == len(self.db):
            gt, vis, xywh = self.ground_truth()
            stats.update(box_pck_table(preds, gt, vis, xywh, self.keypoints.names))
            stats[f"PCK@{LOOSE_PCK_ALPHA:g}"] = float(pck(preds[..., :2], gt, vis, bbox_sizes(xywh, "max"),
                                                          alpha=LOOSE_PCK_ALPHA).mean)
        return stats, ap
