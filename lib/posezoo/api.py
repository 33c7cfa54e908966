"""Keypoints for a numpy image in three lines of Python::

    from posezoo.api import PoseEstimator
    estimator = PoseEstimator.from_config("experiments/synthetic/pose_resnet_18_128x96.yaml", "final_state.pth")
    keypoints = estimator.estimate(image_bgr, boxes)  # (M, K, 3): x, y, score in image pixels

Every box goes through exactly what the test pipeline does with a person box:
``box_to_center_scale`` (aspect ratio of the crop, 25 % padding), the codec's
crop (``datasets.joints_dataset.crop_input``: its matrix and a bilinear warp, or the
codec's own crop) and the input normalisation,
the flip test of ``core.inference.forward_test`` when ``TEST.FLIP_TEST`` is set
(under ``TEST.AMP`` and ``MODEL.CHANNELS_LAST`` as ``predict`` runs it), and
``codec.decode`` on the model's device (``core.inference.decode_batch``). For
the same boxes in the same batches the result therefore equals
``core.inference.predict``'s bit for bit.

3D human pose from RGB (``c2f_vol``; ``codec.prediction == "keypoints3d"``,
``input_kind == "image"``) takes the same image and boxes::

    pose = estimator.estimate_3d(image_bgr, boxes)  # pose["uvz"] (M, 17, 3): x, y px, depth to the root in mm
    pose = estimator.estimate_3d(image_bgr, boxes, camera={"focal": (fx, fy), "princpt": (cx, cy),
                                                           "root_depth": 5000.0})  # + pose["xyz"], camera mm

Depth configs (A2J, AWR on NYU; ``codec.input_kind == "depth"``) take a
depth map in mm and hand centres instead::

    uvd = estimator.estimate_depth(read_depth("depth_1_0000001.png"), center_uvd)  # (M, 14, 3)

Each centre goes through the dataset's own test crop (``datasets.nyu.inference_crop``)
and the same ``decode_batch``, so the frame uvd equal the test pipeline's for the
same centres and batches. Without a
centre, ``datasets.nyu.estimate_hand_center`` guesses one (not what published
numbers use).
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import nn

from .codecs import build_codec, codec_name
from .config import load_config
from .core.evaluate import instance_scores
from .core.inference import decode_batch, forward_test, inference_forward
from .datasets import keypoint_info
from .datasets.joints_dataset import box_center_rule, crop_input
from .utils.normalise import input_normalisation
from .datasets.nyu import depth_crop_settings, estimate_hand_center, inference_crop
from .models import build_model, load_checkpoint
from .utils.fold_bn import prepare_eval_model
from .utils.transforms import box_to_center_scale, crop_box_rule, usable_boxes
from .utils.utils import select_device, to_channels_last

__all__ = ["PersonDetector", "PoseEstimator", "instance_scores", "keypoint_metadata", "whole_image_box"]

Pairs = list[tuple[int, int]]


def keypoint_metadata(cfg) -> tuple[Pairs, Pairs]:
    """(flip pairs, skeleton) of the config's keypoint set, as its dataset
    module supplies them (``datasets.keypoint_info``; ``DATASET.FLIP_PAIRS``
    overrides the pairs)."""
    info = keypoint_info(cfg)
    return list(info.flip_pairs), list(info.skeleton)


def whole_image_box(height: int, width: int) -> np.ndarray:
    """The box [x, y, w, h, score] of a whole image, as the COCO reader clips a
    full-image person box: from pixel 0 to pixel size-1."""
    return np.array([[0.0, 0.0, width - 1.0, height - 1.0, 1.0]])


def _as_boxes(boxes, image_shape: tuple[int, ...]) -> np.ndarray:
    """(M, 5) float64 [x, y, w, h, score]; a whole-image box when `boxes` is None."""
    if boxes is None:
        return whole_image_box(*image_shape[:2])
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 5))
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise ValueError(f"boxes must be (M, 4) [x, y, w, h] or (M, 5) with a score, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("boxes contain NaN or infinite values")
    if (arr[:, 2:4] <= 0).any():
        bad = arr[np.flatnonzero((arr[:, 2:4] <= 0).any(axis=1))[0], :4].tolist()
        raise ValueError(f"box {bad} has a width or height <= 0 (boxes are [x, y, w, h], not corners)")
    outside = ~usable_boxes(arr, image_shape[1], image_shape[0])
    if outside.any():
        bad = arr[np.flatnonzero(outside)[0], :4].tolist()
        raise ValueError(f"box {bad} lies outside the {image_shape[1]}x{image_shape[0]} image ([x, y, w, h] in "
                         f"pixels); drop it, or let tools/infer.py drop and count such boxes")
    if arr.shape[1] == 4:
        arr = np.concatenate([arr, np.ones((len(arr), 1))], axis=1)
    return arr


def _as_depth(depth) -> np.ndarray:
    """(H, W) float32 mm, as ``datasets.nyu.read_depth`` returns a frame."""
    arr = np.asarray(depth)
    if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"expected an (H, W) depth map in mm, got {arr.dtype} {arr.shape}; decode a NYU depth PNG "
                         f"with posezoo.datasets.nyu.read_depth")
    return arr.astype(np.float32)


def _as_centers(centers, depth: np.ndarray) -> np.ndarray:
    """(M, 3) float64 hand centres (u, v, d mm); one estimated centre when None."""
    if centers is None:
        return estimate_hand_center(depth)[None]
    arr = np.asarray(centers, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(f"hand centres must be (3,) or (M, 3) [u, v, d in mm], got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr[:, 2] <= 0).any():
        raise ValueError("hand centres need finite values and a depth d > 0 mm")
    return arr


class PersonDetector:
    """A CornerNet config and weights as the person detector of the top-down
    pipeline: ``detect(image_bgr)`` -> (M, 5) [x, y, w, h, score] person boxes in
    image pixels, scoring at least ``score_thr``. Each image goes through the
    dataset's test input (``datasets.coco_det.detector_input``) and
    ``core.detection.detect``, so the boxes are those of ``evaluate_detector``
    (already soft-NMSed by the codec)."""

    def __init__(self, cfg, model: nn.Module, device: str | torch.device | None = None, score_thr: float = 0.3):
        from .datasets.coco_det import detector_input

        self.cfg = cfg
        self.codec = build_codec(cfg)
        if getattr(self.codec, "prediction", "keypoints2d") != "boxes":
            raise ValueError(f"--detector-cfg: MODEL.TARGET_TYPE {cfg.MODEL.TARGET_TYPE} does not predict boxes; "
                             f"use a CornerNet config")
        cats = list(cfg.CORNERNET.CATEGORIES)
        if cats and 1 not in cats:
            raise ValueError(f"detector CORNERNET.CATEGORIES {cats} has no person class (COCO id 1)")
        self.person_class = cats.index(1) if cats else 0  # COCO's sorted ids start with person
        self.device = torch.device(device) if device is not None else select_device(cfg)
        self.model = model.to(self.device).eval()
        self.stride = round((self.codec.input_size[0] + 1) / self.codec.output_size[0])
        self.mean, self.std = (np.asarray(v, np.float32) for v in input_normalisation(cfg))
        self.score_thr = float(score_thr)
        self._input = detector_input

    @classmethod
    def from_config(cls, cfg_path: str | None, weights: str, opts: Sequence[str] = (),
                    device: str | torch.device | None = None, score_thr: float = 0.3) -> "PersonDetector":
        cfg = load_config(cfg_path, list(opts))
        model = build_model(cfg, is_train=False)
        load_checkpoint(model, weights, strict=True)
        return cls(cfg, model, device, score_thr)

    def detect(self, image: np.ndarray) -> np.ndarray:
        from .core.detection import detect

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        if self.cfg.DATASET.COLOR_RGB:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        x, meta = self._input(image, self.stride, self.mean, self.std, self.cfg.CORNERNET.TEST_SCALES)
        x = [t[None] for t in x] if isinstance(x, list) else x[None]
        det = detect(self.model, self.codec, x, {k: v[None] for k, v in meta.items()},
                     self.codec.flip_test(self.cfg))
        boxes, scores, classes = (det[k][0].cpu().numpy() for k in ("boxes", "scores", "classes"))
        keep = (classes == self.person_class) & (scores >= self.score_thr)
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        b = boxes[keep].astype(np.float64)
        return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2], scores[keep, None].astype(np.float64)], 1)


    def detect_coco_images(self, coco, image_dir: str) -> list[dict]:
        """COCO results (category 1) of every image of a pycocotools ``COCO``
        under ``image_dir``: the boxes ``TEST.COCO_BBOX_FILE`` reads."""
        from .datasets.joints_dataset import read_image

        results = []
        for image_id in sorted(coco.getImgIds()):
            image = read_image(os.path.join(image_dir, coco.imgs[image_id]["file_name"]), color_rgb=False)
            results += [{"image_id": int(image_id), "category_id": 1, "bbox": [round(float(v), 2) for v in b[:4]],
                         "score": float(b[4])} for b in self.detect(image)]
        return results


class PoseEstimator:
    """A model, its codec and its crop geometry, ready for images.

    ``estimate(image, boxes)`` is for one image; ``estimate_batch`` crops the
    boxes of several images and runs them through the model together, in
    chunks of ``batch_size`` crops (``TEST.BATCH_SIZE_PER_GPU`` by default).
    With a ``detector`` (``PersonDetector``), an image given no boxes gets the
    detector's person boxes instead of the whole-image box.
    A 3D config on RGB (``c2f_vol``) uses ``estimate_3d`` / ``estimate_3d_batch``;
    a depth config (``input_kind == "depth"``) ``estimate_depth`` /
    ``estimate_depth_batch``."""

    def __init__(self, cfg, model: nn.Module, device: str | torch.device | None = None,
                 batch_size: int | None = None, detector: "PersonDetector | None" = None):
        self.cfg = cfg
        self.detector = detector
        self.device = torch.device(device) if device is not None else select_device(cfg)
        self.channels_last = bool(cfg.MODEL.CHANNELS_LAST)
        self.model = prepare_eval_model(cfg, model, self.device)
        self._forward = inference_forward(self.model, cfg)
        self.codec = build_codec(cfg)
        self.prediction, self.input_kind = self.codec.prediction, self.codec.input_kind
        if self.input_kind not in ("image", "depth"):
            raise ValueError(f"MODEL.NAME {cfg.MODEL.NAME} takes {self.input_kind}, not images: evaluate it with "
                             f"tools/test.py, or call the model on codec.make_input(...) vectors")
        if self.input_kind == "depth":
            depth_crop_settings(cfg)  # a bad DEPTH_CROP / IMAGE_SIZE / CUBE_SIZE fails here, not at the first frame
        self.image_size = (int(cfg.MODEL.IMAGE_SIZE[0]), int(cfg.MODEL.IMAGE_SIZE[1]))
        self.aspect_ratio = self.image_size[0] / self.image_size[1]
        self.box_center = box_center_rule(cfg, self.codec)
        self.box_rule = crop_box_rule(cfg.DATASET.TEST_BOX_EXTEND)
        self.flip_pairs, self.skeleton = keypoint_metadata(cfg)
        self.flip_test = self.codec.flip_test(cfg)
        self.color_rgb = bool(cfg.DATASET.COLOR_RGB)
        self.input_mean, self.input_std = input_normalisation(cfg)
        self.batch_size = int(batch_size or cfg.TEST.BATCH_SIZE_PER_GPU)
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")

    @classmethod
    def from_config(cls, cfg_path: str | None, weights: str, opts: Sequence[str] = (),
                    device: str | torch.device | None = None, batch_size: int | None = None,
                    detector: "PersonDetector | None" = None) -> PoseEstimator:
        """Load the YAML (plus ``KEY VALUE`` overrides), build the model and load
        `weights` strictly (``models.load_checkpoint``, weights_only)."""
        cfg = load_config(cfg_path, list(opts))
        model = build_model(cfg, is_train=False)
        load_checkpoint(model, weights, strict=True)
        return cls(cfg, model, device, batch_size, detector)

    def crop(self, image: np.ndarray, boxes: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Network inputs (M, 3, h, w) and the crops' center/scale (M, 2) float32
        for a BGR image and (M, 5) boxes, exactly as ``JointsDataset`` cuts a test box."""
        if self.color_rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        width, height = self.image_size
        inputs, centers, scales = [], [], []
        for box in boxes:
            center, scale = box_to_center_scale(box[:4], self.aspect_ratio, center_rule=self.box_center,
                                                **self.box_rule)
            inputs.append(crop_input(self.codec, image, center, scale, 0.0, (width, height), self.input_mean,
                                     self.input_std)[0])
            centers.append(center)
            scales.append(scale)
        if not inputs:
            return torch.zeros((0, 3, height, width)), np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
        return torch.stack(inputs), np.stack(centers), np.stack(scales)

    @torch.no_grad()
    def _run(self, inputs: torch.Tensor, meta: dict[str, torch.Tensor], decode=None) -> np.ndarray:
        """(N, K, 3) float64 decoded joints for crops `inputs` with their crop
        geometry `meta` (the dataset's keys), chunked, decoded on the device by
        ``decode(output, meta, inputs)`` (default ``core.inference.decode_batch``)."""
        decode = decode or (lambda output, chunk_meta, chunk: decode_batch(self.codec, output, chunk_meta, chunk))
        out = []
        for start in range(0, len(inputs), self.batch_size):
            rows = slice(start, start + self.batch_size)
            chunk = to_channels_last(inputs[rows].to(self.device), self.channels_last)
            output = forward_test(self._forward, chunk, self.codec, self.flip_pairs, self.flip_test)
            out.append(decode(output, {k: v[rows] for k, v in meta.items()}, chunk).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def _check_input(self, wanted: str, prediction: str, call: str) -> None:
        """One line naming the call that fits this config when the user picked another."""
        if (self.input_kind, self.prediction) == (wanted, prediction) or (wanted == "depth" == self.input_kind):
            return
        fits = ("estimate_depth(depth_mm, center_uvd)" if self.input_kind == "depth" else
                "estimate_3d(image, boxes)" if self.prediction == "keypoints3d" else "estimate(image, boxes)")
        raise ValueError(f"MODEL.NAME {self.cfg.MODEL.NAME} with codec {codec_name(self.cfg)} predicts "
                         f"{self.prediction} from {self.input_kind} crops: use {fits}, not {call}")

    def estimate_batch(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None]
                       ) -> list[np.ndarray]:
        """Per image, (M_i, K, 3) keypoints for its boxes (None: the whole image)."""
        self._check_input("image", "keypoints2d", "estimate")
        preds, counts = self._estimate_crops(images, boxes)
        return np.split(preds, np.cumsum(counts)[:-1]) if sum(counts) else \
            [np.zeros((0, self.cfg.MODEL.NUM_JOINTS, 3)) for _ in counts]

    def estimate_3d_batch(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None],
                          cameras: Sequence[dict | None] | None = None) -> list[dict[str, np.ndarray]]:
        """Per image, for a 3D config on RGB (``c2f_vol``): ``uvz`` (M_i, K, 3)
        image x, y in pixels and depth relative to the root joint in mm, and
        ``score`` (M_i, K). With a camera ``{"focal": (fx, fy), "princpt": (cx,
        cy), "root_depth": mm (one, or one per box)}`` also ``xyz`` (M_i, K, 3)
        in camera mm (``codecs.volumetric.back_project``): a photo alone does not
        fix how far the person is (the paper's evaluation takes the root depth
        from the ground truth)."""
        self._check_input("image", "keypoints3d", "estimate_3d")
        cameras = [None] * len(images) if cameras is None else list(cameras)
        if len(cameras) != len(images):
            raise ValueError(f"{len(images)} images but {len(cameras)} cameras")

        def decode(output, chunk_meta, chunk):
            uvz, scores = self.codec.decode_image(output, chunk_meta)
            return torch.cat([uvz, scores.to(uvz.dtype)], dim=2)

        rows, counts = self._estimate_crops(images, boxes, decode)
        k, poses = self.cfg.MODEL.NUM_JOINTS, []
        for part, camera in zip(np.split(rows, np.cumsum(counts)[:-1]) if sum(counts) else
                                [np.zeros((0, k, 4)) for _ in counts], cameras):
            pose = {"uvz": part[..., :3], "score": part[..., 3]}
            if camera is not None:
                pose["xyz"] = self._camera_xyz(pose["uvz"], camera)
            poses.append(pose)
        return poses

    def estimate_3d(self, image: np.ndarray, boxes: np.ndarray | None = None, camera: dict | None = None
                    ) -> dict[str, np.ndarray]:
        """``estimate_3d_batch`` for one image (module docstring)."""
        return self.estimate_3d_batch([image], [boxes], [camera])[0]

    @staticmethod
    def _camera_xyz(uvz: np.ndarray, camera: dict) -> np.ndarray:
        from .codecs.volumetric import back_project

        missing = {"focal", "princpt", "root_depth"} - set(camera)
        if missing:
            raise ValueError(f"camera needs focal (fx, fy), princpt (cx, cy) and root_depth (mm); missing "
                             f"{sorted(missing)}")
        m = len(uvz)
        root = np.broadcast_to(np.asarray(camera["root_depth"], np.float64).reshape(-1), (m,))
        focal = np.broadcast_to(np.asarray(camera["focal"], np.float64).reshape(1, 2), (m, 2))
        princpt = np.broadcast_to(np.asarray(camera["princpt"], np.float64).reshape(1, 2), (m, 2))
        xyz = back_project(torch.from_numpy(np.ascontiguousarray(uvz)), torch.from_numpy(root.copy()),
                           torch.from_numpy(focal.copy()), torch.from_numpy(princpt.copy()))
        return xyz.numpy()

    def _estimate_crops(self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray | None], decode=None
                        ) -> tuple[np.ndarray, list[int]]:
        """Every image's boxes cropped as the test pipeline does, run together:
        the decoded rows of all crops and the crop count per image."""
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box sets")
        inputs, centers, scales, counts = [], [], [], []
        for image, image_boxes in zip(images, boxes):
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected a BGR uint8 image (H, W, 3), got {image.dtype} {image.shape}")
            if image_boxes is None and self.detector is not None:
                image_boxes = self.detector.detect(image)
            x, c, s = self.crop(image, _as_boxes(image_boxes, image.shape))
            inputs.append(x)
            centers.append(c)
            scales.append(s)
            counts.append(len(x))
        if not sum(counts):
            return np.zeros((0, self.cfg.MODEL.NUM_JOINTS, 3)), counts
        meta = {"center": torch.from_numpy(np.concatenate(centers)), "scale": torch.from_numpy(np.concatenate(scales))}
        return self._run(torch.cat(inputs), meta, decode), counts

    def estimate(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """(M, K, 3) keypoints (x, y, score) in image pixels for a BGR uint8
        image and boxes (M, 4) [x, y, w, h] or (M, 5) with a score; when `boxes`
        is None, the detector's person boxes, or without one the whole image."""
        return self.estimate_batch([image], [boxes])[0]

    def estimate_depth_batch(self, depths: Sequence[np.ndarray], centers: Sequence[np.ndarray | None]
                             ) -> list[np.ndarray]:
        """Per depth frame, (M_i, K, 3) joints (u, v in pixels, d in mm) for its
        hand centres (M_i, 3) or (3,) uvd; None: one centre from
        ``estimate_hand_center``. The crops of all frames go through the model
        together, in chunks of ``batch_size``."""
        self._check_input("depth", "keypoints3d", "estimate_depth")
        if len(depths) != len(centers):
            raise ValueError(f"{len(depths)} depth maps but {len(centers)} centre sets")
        crops, counts = [], []
        for depth, frame_centers in zip(depths, centers):
            depth = _as_depth(depth)
            frame_crops = [inference_crop(self.cfg, depth, c) for c in _as_centers(frame_centers, depth)]
            crops += frame_crops
            counts.append(len(frame_crops))
        k = self.cfg.MODEL.NUM_JOINTS
        if not crops:
            return [np.zeros((0, k, 3)) for _ in counts]
        inputs = torch.from_numpy(np.stack([c.depth[None] for c in crops]).astype(np.float32))
        meta = {"crop_to_image": torch.from_numpy(np.stack([np.linalg.inv(c.image_to_crop)[:2] for c in crops])),
                "center": torch.from_numpy(np.stack([c.center for c in crops]).astype(np.float64)),
                "depth_scale": torch.tensor([float(c.depth_scale) for c in crops], dtype=torch.float64)}
        preds = self._run(inputs, meta)
        return np.split(preds, np.cumsum(counts)[:-1])

    def estimate_depth(self, depth_mm: np.ndarray, center_uvd: np.ndarray | None = None) -> np.ndarray:
        """(M, K, 3) joints (u, v in pixels, d in mm) of the hands centred at
        ``center_uvd`` (3,) or (M, 3) in a (H, W) depth map in mm; one centre from
        ``estimate_hand_center`` when None (not what published numbers use)."""
        return self.estimate_depth_batch([depth_mm], [center_uvd])[0]
