"""MPII Human Pose, top-down, with the official PCKh evaluation
(``DATASET.DATASET: mpii``).

Layout (HRNet's and SimpleBaseline's)::

    ROOT/annot/<set>.json      list of {image, center, scale, joints (16 x [x, y]), joints_vis (16)}
    ROOT/annot/gt_<set>.mat    PCKh ground truth (keys dataset_joints, jnt_missing, pos_gt_src, headboxes_src)
    ROOT/images/<image>

Loading follows the official conventions: the person box is the annotated
centre with its y moved down by 15 x scale and the scale enlarged by 1.25
(both only when centre x != -1; in float32 for the bearpaw hourglass release, as
its float32 tensors do), then centre and joints go from MATLAB's 1-based pixels to
0-based ones. ``scale`` is the person height / 200 px.
Each person is one record whose ``image_id`` is its index in the JSON, which is
also its column in the ground-truth file; ``evaluate`` maps predictions back by
it.

Evaluation is HRNet's ``MPIIDataset.evaluate``: predictions are made 1-based,
written to ``output_dir/pred.mat`` (key ``preds``, (N, 16, 2)), and compared
with ``pos_gt_src``; a joint is correct when its distance is at most 0.5 x
(0.6 x the head-box diagonal); ``jnt_missing`` joints are ignored; the parts
average left and right; ``Mean`` pools every visible joint except pelvis and
thorax. The ground truth is the first of these that exists:

- ``annot/gt_<set>.mat`` (HRNet), or for ``valid`` also
  ``annot/detections_our_format.mat`` (bearpaw/pytorch-pose; same keys plus
  ``pos_pred_src``);
- ``annot/<set>.h5`` (princeton-vl/pytorch_stacked_hourglass; needs h5py):
  ``part`` (missing joints are (0, 0)) and ``normalize`` (= 0.6 x head
  diagonal). Its ``part`` holds integer-truncated coordinates, so its figures
  differ slightly from the .mat files'.

Reported: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean (PCKh@0.5),
``Mean@0.1`` (truly at 0.1) and ``Mean@0.11 (HRNet's Mean@0.1)``: the official
code labels index 11 of ``np.arange(0, 0.51, 0.01)`` as Mean@0.1, which is the
value at 0.11.
"""
from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy.io import loadmat, savemat

from ..core.pck import SC_BIAS, pck_curve, normalized_distances, pooled_mean
from . import KeypointInfo
from .coco import AnnotationError, COCODataset, _read_json
from ..utils.utils import write_atomic
from .joints_dataset import JointsDataset, make_record

logger = logging.getLogger(__name__)

NUM_JOINTS = 16
#: MPII joint order (the ``dataset_joints`` of the official ground truth).
MPII_JOINT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
# (left, right): the official list is (right, left); flipping does not care, and
# drawing colours the first joint of each pair as the left side.
MPII_FLIP_PAIRS = [[5, 0], [4, 1], [3, 2], [15, 10], [14, 11], [13, 12]]
MPII_UPPER_BODY_IDS = (7, 8, 9, 10, 11, 12, 13, 14, 15)
MPII_LOWER_BODY_IDS = (0, 1, 2, 3, 4, 5, 6)
#: HRNet weighs every MPII joint 1 (its JointsDataset keeps ``joints_weight = 1``).
MPII_JOINTS_WEIGHT = [1.0] * NUM_JOINTS
#: Limbs for drawing, 0-based: legs through the pelvis, arms through the thorax.
MPII_SKELETON = [(0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
                 (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)]

PCKH_THRESHOLD = 0.5
#: HRNet's curve: ``np.arange(0, 0.51, 0.01)``; its "Mean@0.1" reads index 11 of it.
OFFICIAL_CURVE = np.arange(0, 0.5 + 0.01, 0.01)
OFFICIAL_MEAN_AT_01_INDEX = 11
MEAN_AT_011_NAME = "Mean@0.11 (HRNet's Mean@0.1)"
# (part name, joint names averaged) of the official table
PARTS = (("Head", ("head",)), ("Shoulder", ("lsho", "rsho")), ("Elbow", ("lelb", "relb")),
         ("Wrist", ("lwri", "rwri")), ("Hip", ("lhip", "rhip")), ("Knee", ("lkne", "rkne")),
         ("Ankle", ("lank", "rank")))
#: Left out of the means (the official code masks indices 6 and 7).
EXCLUDED_FROM_MEAN = ("pelv", "thor")


# --- ground truth and the PCKh table ---------------------------------------------------------

@dataclass
class MPIIGroundTruth:
    """PCKh ground truth of N people, in the file's frame (1-based pixels).

    ``joints`` (N, 16, 2), ``visible`` (N, 16) bool (= 1 - ``jnt_missing``),
    ``head_size`` (N,) = 0.6 x head-box diagonal (the PCKh normaliser)."""
    joints: np.ndarray
    visible: np.ndarray
    head_size: np.ndarray
    path: str = ""

    def __len__(self) -> int:
        return len(self.joints)


def _joint_names(value, path: str) -> tuple:
    try:
        names = tuple(str(np.asarray(v).ravel()[0]).strip() for v in np.asarray(value, dtype=object).ravel())
    except (IndexError, TypeError) as err:
        raise AnnotationError(f"ground-truth file {path}: dataset_joints is unreadable ({err})") from None
    if names != MPII_JOINT_NAMES:
        raise AnnotationError(f"ground-truth file {path}: dataset_joints {list(names)} is not the MPII order "
                              f"{list(MPII_JOINT_NAMES)}")
    return names


def _gt_from_mat(path: str) -> MPIIGroundTruth:
    try:
        data = loadmat(path)
    except Exception as err:  # scipy raises several types for a bad file
        raise AnnotationError(f"ground-truth file {path} is not a readable .mat file: {err}") from None
    missing = [k for k in ("jnt_missing", "pos_gt_src", "headboxes_src") if k not in data]
    if missing:
        raise AnnotationError(f"ground-truth file {path} lacks {', '.join(missing)} (expected HRNet's gt_valid.mat "
                              f"or bearpaw's detections_our_format.mat)")
    if "dataset_joints" in data:
        _joint_names(data["dataset_joints"], path)
    pos, miss, heads = data["pos_gt_src"], data["jnt_missing"], data["headboxes_src"]
    if pos.ndim != 3 or pos.shape[:2] != (NUM_JOINTS, 2):
        raise AnnotationError(f"ground-truth file {path}: pos_gt_src must be (16, 2, N); got {pos.shape}")
    n = pos.shape[2]
    if miss.shape != (NUM_JOINTS, n):
        raise AnnotationError(f"ground-truth file {path}: jnt_missing must be (16, {n}); got {miss.shape}")
    if heads.shape != (2, 2, n):
        raise AnnotationError(f"ground-truth file {path}: headboxes_src must be (2, 2, {n}); got {heads.shape}")
    # official: norm(headboxes_src[1] - headboxes_src[0], axis=0) * SC_BIAS
    head_size = np.linalg.norm(heads[1, :, :] - heads[0, :, :], axis=0) * SC_BIAS
    return MPIIGroundTruth(np.ascontiguousarray(pos.transpose(2, 0, 1), dtype=np.float64),
                           (1 - miss.astype(np.int64)).T.astype(bool), head_size.astype(np.float64), path)


def _gt_from_h5(path: str) -> MPIIGroundTruth:
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading {path} needs h5py (pip install h5py); "
                          f"or provide HRNet's annot/gt_valid.mat instead") from None
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("part", "normalize") if k not in f]
            if missing:
                raise AnnotationError(f"ground-truth file {path} lacks {', '.join(missing)} "
                                      f"(expected princeton-vl's valid.h5)")
            part = np.asarray(f["part"][()], dtype=np.float64)
            normalize = np.asarray(f["normalize"][()], dtype=np.float64).reshape(-1)
    except OSError as err:
        raise AnnotationError(f"ground-truth file {path} is not a readable HDF5 file: {err}") from None
    if part.ndim != 3 or part.shape[1:] != (NUM_JOINTS, 2) or normalize.shape != (len(part),):
        raise AnnotationError(f"ground-truth file {path}: part must be (N, 16, 2) and normalize (N,); "
                              f"got {part.shape} and {normalize.shape}")
    return MPIIGroundTruth(part, ~(part == 0).all(axis=2), normalize, path)


def load_mpii_gt(path: str) -> MPIIGroundTruth:
    """HRNet's ``gt_<set>.mat``, bearpaw's ``detections_our_format.mat`` (same
    keys) or princeton-vl's ``valid.h5`` (by extension)."""
    if not os.path.isfile(path):
        raise AnnotationError(f"ground-truth file not found: {path}")
    return _gt_from_h5(path) if path.endswith((".h5", ".hdf5")) else _gt_from_mat(path)


def pckh_table(pred: np.ndarray, gt: MPIIGroundTruth, strict: bool = False) -> OrderedDict:
    """The official MPII table of predictions (N, 16, 2) in the GT file's frame
    (1-based: add 1 to posezoo's 0-based predictions). NaN predictions count as
    misses. ``strict`` uses ``<`` as bearpaw's eval_PCKh.py does (HRNet: ``<=``).

    Keys: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@0.1 and
    ``MEAN_AT_011_NAME``; values in percent, as Python floats."""
    return pckh_details(pred, gt, strict)["table"]


def pckh_details(pred: np.ndarray, gt: MPIIGroundTruth, strict: bool = False) -> dict:
    """``pckh_table`` plus ``per_joint`` (16,) PCKh@0.5, ``counts`` (16,),
    ``curve`` (51, 16) at ``OFFICIAL_CURVE``, ``at_0_1`` (16,) and
    ``joint_average``: the unweighted mean over the 14 joints other than pelvis
    and thorax, which is what bearpaw's eval_PCKh.py prints as Mean (HRNet's
    Mean pools the joints, i.e. weighs each by its visible count)."""
    pred = np.asarray(pred, dtype=np.float64)
    if pred.shape != gt.joints.shape:
        raise ValueError(f"predictions {pred.shape} do not match the ground truth {gt.joints.shape} "
                         f"({gt.path})")
    dist = normalized_distances(pred, gt.joints, gt.head_size)
    per_joint, counts = pck_curve(dist, gt.visible, PCKH_THRESHOLD, strict)
    curve, _ = pck_curve(dist, gt.visible, OFFICIAL_CURVE, strict)
    at_0_1, _ = pck_curve(dist, gt.visible, 0.1, strict)
    idx = {name: i for i, name in enumerate(MPII_JOINT_NAMES)}
    include = np.array([name not in EXCLUDED_FROM_MEAN for name in MPII_JOINT_NAMES])
    table = OrderedDict()
    for part, names in PARTS:
        values = [per_joint[idx[name]] for name in names]
        if len(values) == 2 and not np.isnan(values).any():
            table[part] = float(0.5 * (values[0] + values[1]))  # the official expression
        else:  # a side never visible (small sets): the other side alone, NaN if neither
            table[part] = float(np.nan if np.isnan(values).all() else np.nanmean(values))
    table["Mean"] = float(pooled_mean(per_joint, counts, include))
    table["Mean@0.1"] = float(pooled_mean(at_0_1, counts, include))
    table[MEAN_AT_011_NAME] = float(pooled_mean(curve[OFFICIAL_MEAN_AT_01_INDEX], counts, include))
    return {"table": table, "per_joint": per_joint, "counts": counts, "curve": curve, "at_0_1": at_0_1,
            "joint_average": float(np.nanmean(per_joint[include]))}


def write_pred_mat(path: str, preds: np.ndarray) -> None:
    """Official ``pred.mat``: key ``preds``, (N, 16, 2), 1-based; ``preds`` is
    posezoo's 0-based (N, 16, >=2) image coordinates."""
    preds = np.asarray(preds, dtype=np.float64)[:, :, 0:2] + 1.0
    write_atomic(path, lambda tmp: savemat(tmp, {"preds": preds}, appendmat=False))


def load_pred_mat(path: str) -> np.ndarray:
    """A ``pred.mat`` (key ``preds``, (N, 16, 2), 1-based) as 0-based coordinates."""
    if not os.path.isfile(path):
        raise AnnotationError(f"prediction file not found: {path}")
    data = loadmat(path)
    if "preds" not in data or data["preds"].ndim != 3 or data["preds"].shape[1:] != (NUM_JOINTS, 2):
        raise AnnotationError(f"prediction file {path} must hold 'preds' of shape (N, 16, 2)")
    return data["preds"].astype(np.float64) - 1.0


# --- the dataset -----------------------------------------------------------------------------

def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_entry(entry, i: int, path: str, with_joints: bool) -> None:
    """One JSON entry, or an AnnotationError naming the file, the entry and the field."""
    if not isinstance(entry, dict):
        raise AnnotationError(f"{path}: entry {i} is not an object: {entry!r}"[:300])
    where = f"{path}: entry {i} (image {entry.get('image')!r})"
    needed = ("image", "center", "scale") + (("joints", "joints_vis") if with_joints else ())
    missing = [k for k in needed if k not in entry]
    if missing:
        raise AnnotationError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
    if not isinstance(entry["image"], str) or not entry["image"]:
        raise AnnotationError(f"{where}: image must be a file name")
    center = entry["center"]
    if not (isinstance(center, list) and len(center) == 2 and all(_finite(v) for v in center)):
        raise AnnotationError(f"{where}: center {center!r} is not 2 finite numbers [x, y]"[:300])
    if not _finite(entry["scale"]) or entry["scale"] <= 0:
        raise AnnotationError(f"{where}: scale {entry['scale']!r} is not a positive number (person height / 200)")
    if with_joints:
        joints, vis = entry["joints"], entry["joints_vis"]
        if not (isinstance(joints, list) and len(joints) == NUM_JOINTS and
                all(isinstance(j, list) and len(j) == 2 and all(_finite(v) for v in j) for j in joints)):
            got = f"{len(joints)} entries" if isinstance(joints, list) and len(joints) != NUM_JOINTS else \
                str(joints)[:60]
            raise AnnotationError(f"{where}: joints must be {NUM_JOINTS} [x, y] pairs of finite numbers; got {got}")
        if not (isinstance(vis, list) and len(vis) == NUM_JOINTS and all(_finite(v) for v in vis)):
            raise AnnotationError(f"{where}: joints_vis must be {NUM_JOINTS} numbers; got {str(vis)[:60]}")


def person_box(center: Sequence[float], scale: float, float32_centres: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The official box of an annotated person (1-based centre, scale): the centre moved down by 15 x scale
    and the scale enlarged by 1.25, unless the centre's x is -1 (HRNet ``dataset/mpii.py``). bearpaw
    (``pose/datasets/mpii.py:80-86``) holds the centre as a float32 tensor, so with ``float32_centres``
    the move is a float32 sum (``15 * s`` rounded to float32 first, as torch does with a Python operand).
    Returns the centre (2,) and the scale (2,), float64."""
    box = np.array(center, dtype=np.float32 if float32_centres else np.float64)
    size = np.array([scale, scale], dtype=np.float64)
    if box[0] != -1:
        box[1] = box[1] + (np.float32(15 * size[1]) if float32_centres else 15 * size[1])
        size = size * 1.25
    return box.astype(np.float64), size


def gt_file_candidates(root: str, image_set: str) -> list[str]:
    """Where ``evaluate`` looks for the PCKh ground truth, in order."""
    annot = os.path.join(root, "annot")
    names = [f"gt_{image_set}.mat"] + (["detections_our_format.mat"] if image_set == "valid" else []) + \
        [f"{image_set}.h5"]
    return [os.path.join(annot, name) for name in names]


class MPIIDataset(JointsDataset):
    select_data = COCODataset.select_data  # the official SELECT_DATA rule, shared with COCO

    def __init__(self, cfg, image_set: str, is_train: bool, codec):
        super().__init__(cfg, image_set, is_train, codec, NUM_JOINTS, MPII_FLIP_PAIRS, MPII_UPPER_BODY_IDS,
                         MPII_JOINTS_WEIGHT)
        self.skeleton = list(MPII_SKELETON)
        self.joint_names = MPII_JOINT_NAMES
        self.ann_file = os.path.join(self.root, "annot", f"{image_set}.json")
        self.image_dir = os.path.join(self.root, "images")
        self._gt: Optional[MPIIGroundTruth] = None
        self.db = self._load_db()
        if is_train and cfg.DATASET.SELECT_DATA:
            self.db = self.select_data(self.db)
        logger.info("=> mpii %s: %d people from %s", image_set, len(self.db), self.ann_file)

    def _load_db(self) -> list[dict]:
        anno = _read_json(self.ann_file, "annotation file", " (MPII layout: ROOT/annot/<set>.json)")
        if not isinstance(anno, list):
            raise AnnotationError(f"annotation file {self.ann_file} must be a list of "
                                  f"{{image, center, scale, joints, joints_vis}}")
        with_joints = self.image_set != "test"
        k = self.num_joints
        bearpaw = getattr(self.codec, "release", None) == "bearpaw"  # its float32 centres, float64 test scale
        db = []
        for i, entry in enumerate(anno):
            _check_entry(entry, i, self.ann_file, with_joints)
            center, scale = person_box(entry["center"], entry["scale"], float32_centres=bearpaw)
            center = center - 1  # MATLAB 1-based -> 0-based
            joints = np.zeros((k, 3), np.float32)
            joints_vis = np.zeros((k, 3), np.float32)
            if with_joints:
                joints[:, :2] = np.array(entry["joints"], dtype=np.float64) - 1
                vis = np.array(entry["joints_vis"], dtype=np.float64)
                joints_vis[:, 0] = vis
                joints_vis[:, 1] = vis
            db.append(dict(make_record(os.path.join(self.image_dir, entry["image"]), i, center, scale, joints,
                                       joints_vis, scale_dtype=np.float64 if bearpaw else np.float32),
                           ordinal_key=str(i)))  # DATASET.ORDINAL_FILE
        return db

    def image_path(self, image_id: int) -> str:
        return self.db[int(image_id)]["image"]

    def ground_truth(self) -> MPIIGroundTruth:
        """The PCKh ground truth of this set (see ``gt_file_candidates``), checked
        to hold one column per JSON entry."""
        if self._gt is None:
            candidates = gt_file_candidates(self.root, self.image_set)
            path = next((p for p in candidates if os.path.isfile(p)), None)
            if path is None:
                raise AnnotationError(f"no PCKh ground truth for set {self.image_set!r}: none of "
                                      f"{', '.join(candidates)} exists (HRNet's annot/gt_{self.image_set}.mat)")
            gt = load_mpii_gt(path)
            if len(gt) != len(self.db):
                raise AnnotationError(f"ground-truth file {path} has {len(gt)} people but {self.ann_file} has "
                                      f"{len(self.db)}; they must be the same people in the same order")
            self._check_order(gt)
            self._gt = gt
        return self._gt

    def _check_order(self, gt: MPIIGroundTruth) -> None:
        """Warn when the JSON joints and the GT file disagree (people in another order)."""
        both = gt.visible & np.stack([rec["joints_vis"][:, 0] > 0 for rec in self.db])
        if not both.any():
            return
        json_joints = np.stack([rec["joints"][:, :2] for rec in self.db]).astype(np.float64) + 1
        far = np.linalg.norm(json_joints - gt.joints, axis=2)[both] > 2.0
        if far.mean() > 0.05:
            logger.warning("%.0f%% of the joints in %s are more than 2 px from %s: are the people in the same "
                           "order?", 100 * far.mean(), self.ann_file, gt.path)

    def evaluate(self, preds: np.ndarray, boxes: np.ndarray, image_ids: Sequence[int], output_dir: str,
                 rank: int = 0) -> tuple[OrderedDict, float]:
        """preds (N, 16, >=2) 0-based image coordinates of the people ``image_ids``
        (db indices). Writes ``output_dir/pred.mat`` (official form, 1-based;
        ``pred_<rank>.mat`` for rank > 0), then the official PCKh table.
        People without a prediction count as misses (with a warning).
        Returns (table, Mean); ({'Null': 0.0}, 0.0) for a test set."""
        preds = np.asarray(preds, dtype=np.float64)
        ids = np.asarray(image_ids).astype(np.int64).reshape(-1)
        n = len(self.db)
        if preds.ndim != 3 or preds.shape[1] != self.num_joints or preds.shape[2] < 2 or len(preds) != len(ids):
            raise ValueError(f"preds must be (N, {self.num_joints}, >=2) with one image_id each; got {preds.shape} "
                             f"and {len(ids)} ids")
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"image_ids must be db indices 0..{n - 1}; got {ids.min()}..{ids.max()}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("image_ids has duplicates: one prediction per person is expected")
        full = np.full((n, self.num_joints, 2), np.nan)
        full[ids] = preds[:, :, 0:2]
        if len(ids) < n:
            logger.warning("%d of %d people have no prediction; they count as misses", n - len(ids), n)
        if output_dir:
            os.makedirs(output_dir, exist_ok=True)
            write_pred_mat(os.path.join(output_dir, "pred.mat" if rank == 0 else f"pred_{rank}.mat"), full)
        if "test" in self.image_set:
            return OrderedDict([("Null", 0.0)]), 0.0
        table = pckh_table(full + 1.0, self.ground_truth())  # the GT file is 1-based, as in HRNet
        return table, table["Mean"]


def keypoint_info(cfg) -> KeypointInfo:
    """MPII's 16 joints (PCKh, no OKS sigmas)."""
    return KeypointInfo(MPII_JOINT_NAMES, MPII_FLIP_PAIRS, MPII_SKELETON)


def get_dataset(cfg, image_set: str, is_train: bool, codec) -> MPIIDataset:
    return MPIIDataset(cfg, image_set, is_train, codec)
