"""Top-down crops: one sample per person box, cut out by an affine warp, with
the official training augmentation, then encoded by the codec.

Subclasses fill ``self.db`` with records (see ``make_record``) and implement
``evaluate``; everything between the file on disk and the network input is here.
"""
from __future__ import annotations

import functools
import inspect
import logging
import os
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..utils.transforms import PIXEL_STD, crop_box_rule, flip_permutation, fliplr_joints
from ..utils.image import SKIP_HINT, ImageReadError, read_image, truncated_bytes  # noqa: F401 (re-exported)
from ..utils import jpeg_region
from ..utils.normalise import input_normalisation, to_input_tensor, uint8_input_tensor
from ..codecs.base import Codec
from .strong_aug import strong_augmentation
from .appearance import AppearanceJitter
from .ordinal import flip_ordinal, load_ordinal_file, ordinal_for
from .release_augment import bearpaw_augment, check_augmentation, princeton_training_crop

logger = logging.getLogger(__name__)


def make_record(image: str, image_id: int, center: np.ndarray, scale: np.ndarray, joints: np.ndarray,
                joints_vis: np.ndarray, score: float = 1.0, scale_dtype: type = np.float32) -> dict:
    """One person box. joints/joints_vis are (K, 3) float32 (x, y, 0) / (v, v, 0); the scale is
    float32 as HRNet's, float64 where the official reader holds a Python float (bearpaw's test box)."""
    return {"image": image, "image_id": int(image_id), "center": np.asarray(center, np.float32),
            "scale": np.asarray(scale, scale_dtype), "joints": np.asarray(joints, np.float32),
            "joints_vis": np.asarray(joints_vis, np.float32), "score": float(score)}


def crop_input(codec, image: np.ndarray, center: np.ndarray, scale: np.ndarray, rotation: float,
               output_size: Sequence[int], mean: np.ndarray, std: np.ndarray,
               appearance: Callable[[np.ndarray], np.ndarray] | None = None,
               trans: np.ndarray | None = None, uint8: bool = False) -> tuple[torch.Tensor, np.ndarray]:
    """One crop's network input (3, h, w) float32 (uint8 and not normalised with `uint8`:
    ``DATASET.UINT8_INPUTS``) and the image -> crop 2x3 its joints map
    with (``codec.crop_matrix``, unless the caller passes the matrix it already computed as `trans`).
    The image is warped with that matrix, unless the codec cuts
    its own crop (``codec.crop_image``, on [0, 1]: normalised as (crop - mean) / std).
    ``appearance`` (training: ``datasets/appearance.py``) randomises the crop before it is normalised."""
    if trans is None:
        trans = codec.crop_matrix(center, scale, rotation, output_size)
    crop = codec.crop_image(image, center, scale, rotation, output_size)
    warped = crop is None
    if warped:
        crop = cv2.warpAffine(image, trans, tuple(int(v) for v in output_size), flags=cv2.INTER_LINEAR)
    if appearance is not None:
        crop = appearance(crop)
    if uint8:
        return uint8_input_tensor(crop), trans
    return (to_input_tensor(crop, mean, std) if warped else unit_crop_tensor(crop, mean, std)), trans


def unit_crop_tensor(crop: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """A crop already on [0, 1] (HWC, a codec's or a release's own) as the (3, h, w) input (crop - mean) / std."""
    return torch.from_numpy(((crop - mean) / std).transpose(2, 0, 1).copy())


def target_tensors(target: Any) -> Any:
    """The codec's target as tensors: one array, a list (one per model output,
    e.g. ``codecs/megvii.py``), a dict of arrays, or a list of dicts (one per
    stack: the volumetric codec); the contract in ``codecs/__init__``."""
    if isinstance(target, (list, tuple)):
        return [target_tensors(t) for t in target]
    if isinstance(target, dict):
        return {k: target_tensors(v) for k, v in target.items()}
    return torch.as_tensor(target)


def visible_flags(rec: dict, joints_vis: np.ndarray, flip_pairs: Sequence[Sequence[int]] | None = None
                  ) -> np.ndarray:
    """(K,) bool: the record's visible-joint flags (COCO ``v == 2``, kept by the reader as
    ``joints_visible``; mirrored with the joints when ``flip_pairs`` is given), else every
    labelled joint (MSPN's MPII reader: ``joints_vis * 2``); never a joint ``joints_vis`` drops."""
    labelled = np.asarray(joints_vis)[:, 0] > 0
    if "joints_visible" not in rec:
        return labelled
    visible = np.asarray(rec["joints_visible"], dtype=bool)
    if flip_pairs is not None:
        visible = visible[flip_permutation(len(visible), flip_pairs)]
    return visible & labelled


def box_center_rule(cfg, codec) -> str:
    """``DATASET.BOX_CENTER``, else the codec's official rule (DarkPose YAMLs
    select the DARK codec and so DarkPose's centre; HRNet/UDP ones HRNet's)."""
    return cfg.DATASET.BOX_CENTER or getattr(codec, "box_center", "hrnet")


DECODE_MODES = ("whole", "region")


def region_decoding(cfg, codec, strong_aug, augmentation: str) -> bool:
    """Whether ``DATASET.DECODE region`` applies (``utils/jpeg_region.py``): the crop must be the
    plain warp of the unaugmented image (no DATASET.STRONG_AUG, the msra augmentation, a codec
    without its own crop) and the decoder built here; otherwise one log line says why the whole
    image is decoded."""
    mode = cfg.DATASET.DECODE
    if mode not in DECODE_MODES:
        raise ValueError(f"DATASET.DECODE {mode!r}: expected one of {', '.join(DECODE_MODES)}")
    if mode == "whole":
        return False
    why = ("DATASET.STRONG_AUG transforms the whole image" if strong_aug is not None else
           f"DATASET.AUGMENTATION {augmentation} cuts its own crop" if augmentation != "msra" else
           f"the codec {type(codec).__name__} cuts its own crop"
           if type(codec).crop_image is not Codec.crop_image else "")
    if why:
        logger.warning("posezoo: DATASET.DECODE region does not apply (%s); decoding whole images", why)
        return False
    return jpeg_region.library() is not None


def uint8_inputs(cfg, codec, augmentation: str) -> bool:
    """``DATASET.UINT8_INPUTS``: whether samples carry the uint8 crop (``utils/normalise.InputNormaliser``
    normalises it on the model's device); refused where the crop is a float one of the codec's or the
    release's own."""
    if not cfg.DATASET.UINT8_INPUTS:
        return False
    why = (f"DATASET.AUGMENTATION {augmentation} cuts its own float crop" if augmentation == "princeton" else
           f"the codec {type(codec).__name__} cuts its own float crop"
           if type(codec).crop_image is not Codec.crop_image else "")
    if why:
        raise ValueError(f"DATASET.UINT8_INPUTS True: {why}; set DATASET.UINT8_INPUTS False")
    return True


class JointsDataset(Dataset):
    """Keypoint metadata (flip pairs, upper body, joint weights, OKS sigmas) is set
    by the subclass and may be overridden from ``DATASET.*`` for custom sets."""

    def __init__(self, cfg, image_set: str, is_train: bool, codec, num_joints: int,
                 flip_pairs: Sequence[Sequence[int]], upper_body_ids: Sequence[int],
                 joints_weight: Sequence[float]):
        self.cfg = cfg
        self.root = cfg.DATASET.ROOT
        self.image_set = image_set
        self.is_train = is_train
        self.codec = codec
        self.num_joints = num_joints
        self.flip_pairs = [tuple(p) for p in (cfg.DATASET.FLIP_PAIRS or flip_pairs)]
        self.upper_body_ids = set(cfg.DATASET.UPPER_BODY_IDS or upper_body_ids)
        weights = cfg.DATASET.JOINTS_WEIGHT or joints_weight
        self.joints_weight = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
        self._check_metadata()

        self.image_size = np.asarray(cfg.MODEL.IMAGE_SIZE)
        self.aspect_ratio = self.image_size[0] / self.image_size[1]
        self.box_center = box_center_rule(cfg, codec)
        # the test crops' box rule (DATASET.TEST_BOX_EXTEND); training keeps HRNet's
        self.box_rule = {} if is_train else crop_box_rule(cfg.DATASET.TEST_BOX_EXTEND)
        self.scale_factor = cfg.DATASET.SCALE_FACTOR
        self.rotation_factor = cfg.DATASET.ROT_FACTOR
        self.flip = cfg.DATASET.FLIP
        self.strong_aug = strong_augmentation(cfg.DATASET.STRONG_AUG)
        self.prob_half_body = cfg.DATASET.PROB_HALF_BODY
        self.num_joints_half_body = cfg.DATASET.NUM_JOINTS_HALF_BODY
        self.color_rgb = cfg.DATASET.COLOR_RGB
        self.augmentation = check_augmentation(cfg.DATASET.AUGMENTATION, codec)
        self.appearance = AppearanceJitter.from_cfg(cfg)
        if self.appearance.active and self.augmentation == "princeton":
            raise ValueError("DATASET.COLOR_JITTER / GRAY_PROB / BLUR_PROB / NOISE_STD randomise the crop of the "
                             "msra and bearpaw pipelines; DATASET.AUGMENTATION princeton cuts its own: set them to 0")
        self.use_joints_weight = cfg.LOSS.USE_DIFFERENT_JOINTS_WEIGHT
        self.skip_corrupt = cfg.DATASET.SKIP_CORRUPT_IMAGES
        self.input_mean, self.input_std = input_normalisation(cfg)
        self.uint8_inputs = uint8_inputs(cfg, codec, self.augmentation)
        self.region_decode = region_decoding(cfg, codec, self.strong_aug, self.augmentation)
        self.ordinal = self._ordinal_labels(cfg, codec)
        self.db: list[dict] = []

    def _check_metadata(self) -> None:
        k = self.num_joints
        if any(not (0 <= a < k and 0 <= b < k) for a, b in self.flip_pairs):
            raise ValueError(f"DATASET.FLIP_PAIRS {self.flip_pairs} refer to joints outside 0..{k - 1}")
        if len(self.joints_weight) != k:
            raise ValueError(f"DATASET.JOINTS_WEIGHT has {len(self.joints_weight)} values for {k} joints")
        if self.cfg.MODEL.NUM_JOINTS != k:
            raise ValueError(f"MODEL.NUM_JOINTS = {self.cfg.MODEL.NUM_JOINTS} but dataset "
                             f"{self.cfg.DATASET.DATASET} has {k} joints")

    def __len__(self) -> int:
        return len(self.db)

    def half_body_box(self, joints: np.ndarray, joints_vis: np.ndarray, rng: np.random.Generator
                      ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Box around the visible upper or lower body joints (Wang et al. 2019, half-body augmentation)."""
        visible = joints_vis[:, 0] > 0
        is_upper = np.array([j in self.upper_body_ids for j in range(self.num_joints)])
        upper, lower = joints[visible & is_upper], joints[visible & ~is_upper]
        # The official code draws randn (not rand) here; kept for identical statistics.
        if rng.standard_normal() < 0.5 and len(upper) > 2:
            selected = upper
        else:
            selected = lower if len(lower) > 2 else upper
        if len(selected) < 2:
            return None, None
        center = selected[:, :2].mean(axis=0)
        w, h = selected[:, :2].max(axis=0) - selected[:, :2].min(axis=0)
        if w > self.aspect_ratio * h:
            h = w * 1.0 / self.aspect_ratio
        elif w < self.aspect_ratio * h:
            w = h * self.aspect_ratio
        return center.astype(np.float32), np.array([w, h], dtype=np.float32) / PIXEL_STD * 1.5

    def _ordinal_labels(self, cfg, codec) -> dict | None:
        """``DATASET.ORDINAL_FILE``: each person's joint-pair depth order
        (``datasets/ordinal.py``; keyed by the record's ``ordinal_key``: a COCO
        annotation id, an MPII person's index in its annotation file), trained
        through the volumetric codec's ordinal loss (Pavlakos et al. CVPR 2018)."""
        path = cfg.DATASET.ORDINAL_FILE
        if not path:
            return None
        if "ordinal" not in inspect.signature(codec.encode).parameters:
            raise ValueError(f"DATASET.ORDINAL_FILE {path}: the codec {type(codec).__name__} takes no ordinal labels "
                             f"(use MODEL.TARGET_TYPE volumetric)")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"DATASET.ORDINAL_FILE {path}: no such file")
        labels = load_ordinal_file(path)
        wrong = next((key for key, codes in labels.items() if codes.shape[0] != self.num_joints), None)
        if wrong is not None:
            raise ValueError(f"DATASET.ORDINAL_FILE {path}: person {wrong!r} has {labels[wrong].shape[0]} joints, "
                             f"the dataset {self.num_joints}")
        return labels

    def augment(self, image: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray,
                scale: np.ndarray, rng: np.random.Generator):
        """Official training augmentation: half body, scale, rotation, flip; the
        last value says whether the sample was mirrored (its left/right labels
        swapped, which per-person labels such as ordinal depths follow). bearpaw's
        release draws its own (``release_augment.bearpaw_augment``)."""
        if self.augmentation == "bearpaw":
            return bearpaw_augment(image, joints, joints_vis, center, scale, rng, self.scale_factor,
                                   self.rotation_factor, self.flip_pairs, self.flip)
        joints, joints_vis, center, scale, rotation, flipped = self.draw_augmentation(
            joints, joints_vis, center, scale, image.shape[1], rng)
        if flipped:  # cv2.flip: the same pixels as image[:, ::-1], whose copy in warpAffine costs 30x more
            image = cv2.flip(image, 1)
        return image, joints, joints_vis, center, scale, rotation, flipped

    def draw_augmentation(self, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray, scale: np.ndarray,
                          width: int, rng: np.random.Generator):
        """The msra draws (half body, scale, rotation, flip; HRNet ``lib/dataset/JointsDataset.py:124-145``)
        on the labels of an image `width` pixels wide, without touching its pixels (region decoding
        knows only the size when it draws): joints, flags, centre, scale, rotation, whether mirrored."""
        if np.sum(joints_vis[:, 0]) > self.num_joints_half_body and rng.random() < self.prob_half_body:
            c_half, s_half = self.half_body_box(joints, joints_vis, rng)
            if c_half is not None:
                center, scale = c_half, s_half
        sf, rf = self.scale_factor, self.rotation_factor
        scale = scale * np.clip(rng.standard_normal() * sf + 1, 1 - sf, 1 + sf)
        rotation = np.clip(rng.standard_normal() * rf, -rf * 2, rf * 2) if rng.random() <= 0.6 else 0.0
        flipped = bool(self.flip and rng.random() <= 0.5)
        if flipped:
            joints, joints_vis = fliplr_joints(joints, joints_vis, width, self.flip_pairs)
            center = np.array([width - center[0] - 1, center[1]], dtype=np.float32)
        return joints, joints_vis, center, scale, float(rotation), flipped

    def princeton_sample(self, image: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray,
                         scale: np.ndarray, rng: np.random.Generator):
        """princeton's release augmentation (``release_augment.princeton_training_crop``): the
        normalised input, the joints in input pixels (float64: the codec truncates them at the
        heatmap resolution), their flags, the rotation and whether the sample was mirrored."""
        pixels, points, drawn, rotation, flipped = princeton_training_crop(
            image, joints, joints_vis[:, 0] > 0, center, float(scale[1]), rng, self.image_size,
            self.codec.heatmap_size, self.scale_factor, self.rotation_factor, self.flip_pairs, self.flip)
        flags = np.repeat(drawn[:, None].astype(np.float32), joints_vis.shape[1], axis=1)
        points = np.concatenate([points, np.zeros((len(points), joints.shape[1] - 2))], axis=1)
        return unit_crop_tensor(pixels, self.input_mean, self.input_std), points, flags, rotation, flipped

    def read_or_blank(self, path: str) -> tuple[np.ndarray, int]:
        """The image and 1; under ``DATASET.SKIP_CORRUPT_IMAGES`` an unreadable one
        becomes a blank input-sized image and 0 (the sample's weight), with a warning."""
        try:
            return read_image(path, self.color_rgb), 1
        except ImageReadError:
            if not self.skip_corrupt:
                raise
            logger.warning("skipping unreadable image %s", path)
            width, height = int(self.image_size[0]), int(self.image_size[1])
            return np.zeros((height, width, 3), np.uint8), 0

    def region_source(self, path: str) -> tuple[bytes, int, int] | None:
        """The file's bytes and (width, height) for region decoding; None sends it to the whole-image
        reader (a truncated or unreadable file, so that its error or skip stays that reader's; not a
        JPEG the decoder takes)."""
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if truncated_bytes(data[:8], data[-64:]):
            return None
        size = jpeg_region.jpeg_size(data)
        return None if size is None else (data, *size)

    def region_sample(self, rec: dict, source: tuple[bytes, int, int], joints: np.ndarray, joints_vis: np.ndarray,
                      center: np.ndarray, scale: np.ndarray, rng: np.random.Generator | None,
                      appearance: Callable[[np.ndarray], np.ndarray] | None, torch_state: torch.Tensor | None):
        """``__getitem__``'s msra crop from the decoded window only (``utils/jpeg_region.py``): the same
        draws, matrix and warp as the whole-image path, so the same input, and ``whole_sample``'s
        result. Where libjpeg fails on the window, the whole-image reader takes over (and, if it blanks
        the image under DATASET.SKIP_CORRUPT_IMAGES, the torch RNG is rewound to `torch_state` and None
        returned, so that the sample is redone as the whole-image path does it)."""
        data, image_width, image_height = source
        output_size = (int(self.image_size[0]), int(self.image_size[1]))
        rotation, flipped = 0.0, False
        if rng is not None:
            joints, joints_vis, center, scale, rotation, flipped = self.draw_augmentation(
                joints, joints_vis, center, scale, image_width, rng)
        trans = self.codec.crop_matrix(center, scale, rotation, output_size)
        image = jpeg_region.region_canvas(data, image_width, image_height, trans, output_size, flipped,
                                          self.color_rgb)
        if image is None:
            try:
                image = read_image(rec["image"], self.color_rgb)
            except ImageReadError:
                if torch_state is not None:
                    torch.set_rng_state(torch_state)
                return None
            if flipped:
                image = cv2.flip(image, 1)
        inputs = self.crop_and_map(image, joints, joints_vis, center, scale, rotation, appearance, trans)
        return inputs, joints, joints_vis, center, scale, rotation, flipped, 1

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        rec = self.db[idx]
        joints, joints_vis = rec["joints"].copy(), rec["joints_vis"].copy()
        center, scale = rec["center"].copy(), rec["scale"].copy()
        ordinal = None if self.ordinal is None else ordinal_for(self.ordinal, rec.get("ordinal_key"), self.num_joints)
        source = self.region_source(rec["image"]) if self.region_decode else None
        sample = None
        if source is not None:
            torch_state = torch.get_rng_state() if self.is_train and self.skip_corrupt else None
            rng = self.sample_rng(1)
            sample = self.region_sample(rec, source, joints, joints_vis, center, scale, rng,
                                        self.sample_appearance(rng), torch_state)
        if sample is None:
            sample = self.whole_sample(rec, joints, joints_vis, center, scale)
        inputs, joints, joints_vis, center, scale, rotation, flipped, valid = sample
        if flipped and ordinal is not None:
            ordinal = flip_ordinal(ordinal, self.flip_pairs)

        extra = {} if ordinal is None else {"ordinal": ordinal, "has_3d": False}
        if self.codec.reads_visibility:
            extra["visible"] = visible_flags(rec, joints_vis, self.flip_pairs if flipped else None)
        target, target_weight = self.codec.encode(joints, joints_vis, **extra)
        target_weight = target_weight * valid
        if self.use_joints_weight:
            target_weight = target_weight * self.joints_weight
        meta = {"image": rec["image"], "image_id": rec["image_id"], "index": idx, "joints": joints,
                "joints_vis": joints_vis, "center": center, "scale": scale, "rotation": rotation,
                "score": rec["score"], "valid": valid}
        return (inputs, target_tensors(target),
                torch.from_numpy(target_weight), meta)

    def sample_rng(self, valid: int) -> np.random.Generator | None:
        """The sample's generator for training (None for testing or an image blanked as unreadable).
        torch's RNG is seeded per worker and per epoch by the DataLoader, so drawing the sample's seed
        from it keeps runs reproducible."""
        return np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item())) if self.is_train and valid else None

    def sample_appearance(self, rng: np.random.Generator | None) -> Callable[[np.ndarray], np.ndarray] | None:
        return functools.partial(self.appearance, rng=rng) if rng is not None and self.appearance.active else None

    def whole_sample(self, rec: dict, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray,
                     scale: np.ndarray):
        """``__getitem__``'s crop from the whole decoded image: input, joints in crop pixels, flags,
        centre, scale, rotation, whether mirrored, and 1 (0 for an image blanked as unreadable)."""
        rotation, flipped = 0.0, False
        image, valid = self.read_or_blank(rec["image"])
        rng = self.sample_rng(valid)
        if rng is not None and self.strong_aug is not None:  # DATASET.STRONG_AUG: the whole image, the box kept
            image, joints, joints_vis, _ = self.strong_aug(image, joints, joints_vis, rng)
        appearance = self.sample_appearance(rng)
        if rng is not None and self.augmentation == "princeton":  # its own two-warp pipeline
            inputs, joints, joints_vis, rotation, flipped = self.princeton_sample(
                image, joints, joints_vis, center, scale, rng)
        else:
            if rng is not None:
                image, joints, joints_vis, center, scale, rotation, flipped = self.augment(
                    image, joints, joints_vis, center, scale, rng)
            inputs = self.crop_and_map(image, joints, joints_vis, center, scale, rotation, appearance)
        return inputs, joints, joints_vis, center, scale, rotation, flipped, valid

    def crop_and_map(self, image: np.ndarray, joints: np.ndarray, joints_vis: np.ndarray, center: np.ndarray,
                     scale: np.ndarray, rotation: float, appearance: Callable[[np.ndarray], np.ndarray] | None,
                     trans: np.ndarray | None = None) -> torch.Tensor:
        """The crop's input (``crop_input``) and, in place, the visible joints in crop pixels
        (``codec.crop_points``); `trans`: the matrix when the caller computed it already."""
        output_size = (int(self.image_size[0]), int(self.image_size[1]))
        inputs, trans = crop_input(self.codec, image, center, scale, rotation, output_size, self.input_mean,
                                   self.input_std, appearance, trans, self.uint8_inputs)
        visible = joints_vis[:, 0] > 0
        joints[visible, :2] = self.codec.crop_points(joints[visible, :2], trans)
        return inputs
