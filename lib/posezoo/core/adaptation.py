"""Learning across domains: ``TRAIN.STRATEGY: ws_cda`` and ``cc_ssl``.

Both are strategies of the one training loop (``core/strategy.py``) and work
with any posezoo model; ``cc_ssl`` needs a heatmap codec (one channel per
joint). Domains: domain 0 is ``DATASET.TRAIN_SET`` (labelled, weight 1), the
others come from ``ADAPT.DOMAINS`` (see ``config/default.py``).

- **WS-CDA** (Cao et al., ICCV 2019, Sec. 4): mixed batches, one
  ``TRAIN.BATCH_SIZE_PER_GPU`` slice per domain, in one forward; the pose loss
  on labelled domains only, each with its ``WEIGHT``; a domain discriminator
  on backbone features (the input of the model's last conv unless
  ``ADAPT.FEATURE_LAYER`` names a module) classifies the domain, and a
  gradient-reversal layer (Ganin & Lempitsky 2015) makes the features
  domain-confusing. Deliberate difference: the paper alternates discriminator
  and feature-extractor updates with weights alpha/beta; the reversal layer
  is the one-step equivalent (``GRL_WEIGHT`` plays alpha, ``DOMAIN_WEIGHT``
  beta). The paper's human-to-animal keypoint mapping is left to the datasets.
- **CC-SSL** (Mu et al., CVPR 2020; JitengMu/Learning-from-Synthetic-Animals
  ``CCSSL/CCSSL.py``): after ``SOURCE_EPOCHS`` source-only epochs, every
  ``EPOCHS_PER_ROUND`` epochs (official 10, ``CCSSL.py:109``) the model labels
  the unlabelled target crops: heatmaps of ``NUM_TRANSFORMS`` scaled/rotated
  views (the first the identity, ``scripts/consistency.py:31-39``) and, with
  ``FLIP``, their mirrors are warped back and averaged (spatial consistency,
  ``consistency.py:49-69``); the confidence is the averaged map's maximum
  (line 70). Joints are kept when their confidence exceeds the value ranked
  at ``1 - keep`` among all target joints, ``keep`` growing per round
  (``CCSSL.py:143-156``: 20 % of the joints, then 40, 60, 80 %). Training then
  sums the source loss and ``TARGET_WEIGHT`` (gamma_ 10) x the pseudo-label
  loss, one forward per domain (``CCSSL.py:199-231``). Each round's labels
  are written to ``<output>/pseudo_labels/round_<r>.json`` and read back when
  a run resumes inside that round. Where the target's true keypoints are
  known (its own labels, or the domain's ``TRUTH`` split: a synthetic
  target), the file also holds ``precision``: how many kept labels lie within
  0.05 / 0.1 of the box's longer side of the truth (``pseudo_label_precision``),
  also logged. ``ADAPT.TEMPORAL`` adds the temporal
  (optical-flow) constraint on video frames (``temporal_consistency``).
- **PPLO** (Cao et al., ICCV 2019, progressive pseudo-label optimisation) is
  the same strategy with other selection options: ``ADAPT.SELECTION
  per_joint`` ranks each joint on its own (a hard joint is not crowded out by
  confident easy ones), ``ADAPT.THRESHOLDS`` gives fixed confidence thresholds
  per round, and ``ADAPT.MIN_KEPT_JOINTS`` drops crops with fewer kept joints.
  The paper's own schedule (thresholds per round, number of rounds, which
  samples and joints are kept) is not reproduced and no YAML claims it: no
  training code was released and no stored copy of the paper's text reaches
  that section (docs/adaptation.md lists the searches). These are the
  options its description calls for, set in the YAML.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
from typing import Callable, Iterable, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..codecs.base import last_stage
from ..codecs.gaussian import get_max_preds
from ..config import update_config
from ..utils.collate import packed_collate
from ..utils.distributed import broadcast_parameters
from ..utils.image import read_image
from ..utils.normalise import input_normalisation, input_normaliser
from ..utils.registry import resolve
from ..utils.transforms import PIXEL_STD
from ..utils.utils import write_text_atomic
from .function import TrainContext, _prepare
from .pck import pck
from .strategy import SupervisedStrategy, stage_loss

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------- domains

DOMAIN_OWN_KEYS = ("DATASET.DATASET", "DATASET.ROOT", "DATASET.TRAIN_SET", "DATASET.TEST_SET")


def domain_specs(cfg) -> list[dict]:
    """Domain 0 (the training set) and ``ADAPT.DOMAINS``, each as
    ``{dataset, root, set, labelled, weight, opts, truth}`` (``truth``: the
    split holding the same crops' true keypoints, for ``pseudo_label_precision``
    only; '' none)."""
    specs = [{"dataset": cfg.DATASET.DATASET, "root": cfg.DATASET.ROOT, "set": cfg.DATASET.TRAIN_SET,
              "labelled": True, "weight": 1.0, "opts": [], "truth": ""}]
    for i, d in enumerate(cfg.ADAPT.DOMAINS):
        if not isinstance(d, dict) or not d.get("SET"):
            raise ValueError(f"ADAPT.DOMAINS[{i}] = {d!r}: expected {{SET: split, DATASET: name, ROOT: path, "
                             f"LABELLED: bool, WEIGHT: float, OPTS: list, TRUTH: split}} (SET required)")
        unknown = set(d) - {"DATASET", "ROOT", "SET", "LABELLED", "WEIGHT", "OPTS", "TRUTH"}
        if unknown:
            raise ValueError(f"ADAPT.DOMAINS[{i}]: unknown keys {sorted(unknown)}")
        opts = list(d.get("OPTS") or [])
        keys = opts[::2]
        if len(opts) % 2 or any(not str(k).startswith("DATASET.") or str(k) in DOMAIN_OWN_KEYS for k in keys):
            raise ValueError(f"ADAPT.DOMAINS[{i}].OPTS = {opts!r}: expected [DATASET.KEY, value, ...] pairs "
                             f"(not {', '.join(DOMAIN_OWN_KEYS)}: use the entry's DATASET / ROOT / SET)")
        specs.append({"dataset": d.get("DATASET") or cfg.DATASET.DATASET, "root": d.get("ROOT") or cfg.DATASET.ROOT,
                      "set": d["SET"], "labelled": bool(d.get("LABELLED", False)),
                      "weight": float(d.get("WEIGHT", 1.0)), "opts": opts, "truth": str(d.get("TRUTH") or "")})
    return specs


def build_domain_dataset(cfg, spec: dict, is_train: bool, codec):
    """The dataset of one domain: ``cfg`` with that domain's DATASET, ROOT and OPTS (e.g. the
    target's own augmentation: CC-SSL augments its synthetic source and its real target
    differently, ``experiments/animal/ccssl_hg_s4_b1_horse_256x256.yaml``)."""
    domain_cfg = update_config(cfg, ["DATASET.DATASET", spec["dataset"], "DATASET.ROOT", spec["root"],
                                     *spec.get("opts", [])])
    if domain_cfg.DATASET.UINT8_INPUTS != cfg.DATASET.UINT8_INPUTS or cfg.DATASET.UINT8_INPUTS and any(
            (a != b).any() for a, b in zip(input_normalisation(domain_cfg), input_normalisation(cfg))):
        raise ValueError(f"ADAPT.DOMAINS {spec['dataset']} {spec['set']}: with DATASET.UINT8_INPUTS the loops "
                         f"normalise every domain's batches alike, so a domain's OPTS may change neither it nor "
                         f"DATASET.INPUT_MEAN / INPUT_STD / INPUT_MEAN_FILE")
    # by the registry, as datasets.build_dataset does: core/ does not import the datasets package
    module = resolve("datasets", spec["dataset"], "get_dataset", "ADAPT.DOMAINS")
    dataset = module.get_dataset(domain_cfg, spec["set"], is_train, codec)
    if cfg.DATASET.UINT8_INPUTS and not getattr(dataset, "uint8_inputs", False):
        raise ValueError(f"DATASET.UINT8_INPUTS True: ADAPT.DOMAINS dataset {spec['dataset']} makes its inputs "
                         f"itself (not uint8 crops); set DATASET.UINT8_INPUTS False")
    return dataset


def domain_loader(cfg, dataset, shuffle: bool = True) -> DataLoader:
    """A loader drawing from torch's global RNG, which the loop reseeds each epoch."""
    return DataLoader(dataset, batch_size=cfg.TRAIN.BATCH_SIZE_PER_GPU, shuffle=shuffle, num_workers=cfg.WORKERS,
                      drop_last=len(dataset) > cfg.TRAIN.BATCH_SIZE_PER_GPU, collate_fn=packed_collate)


class MixedBatches:
    """One batch from every loader per step; as many steps as the first
    loader has, the others cycled. Each item is the first loader's batch as
    the loop's batch dict (``core/strategy.py``: so the loop logs its metrics)
    with the other domains' batch dicts under ``"domains"``; ``prepare`` is
    the loop's own tuple-to-dict step (``core.function._prepare``)."""

    def __init__(self, loaders: Sequence[Iterable], prepare: Callable):
        self.loaders = list(loaders)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.loaders[0])

    def __iter__(self):
        others = [_endless(loader) for loader in self.loaders[1:]]
        for first in self.loaders[0]:
            yield {**self.prepare(first), "domains": [self.prepare(next(o)) for o in others]}


def _endless(loader: Iterable):
    """The loader again and again, a fresh pass each time (``itertools.cycle``
    would replay the first pass's batches: the same augmentation, all kept in
    memory). An empty domain is an error, not an endless wait."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError(f"an ADAPT.DOMAINS set has no samples ({getattr(loader, 'dataset', loader)!r})")


def _mixed(ctx: TrainContext, loaders: Sequence[Iterable]) -> MixedBatches:
    return MixedBatches(loaders, lambda item: _prepare(ctx, item))


# ---------------------------------------------------------------- WS-CDA

class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Identity forward, ``-weight`` x the gradient backward."""
    return _ReverseGradient.apply(x, weight)


class DomainDiscriminator(nn.Module):
    """Two stride-2 convs, global pooling, a linear domain classifier.
    ``in_channels`` 0: the first conv is lazy (its input width is only known
    once the model's features are seen; the strategy is built from the config
    alone, before the optimizer, which holds the same parameter objects that
    the first forward materialises)."""

    def __init__(self, in_channels: int, num_domains: int, channels: int = 64):
        super().__init__()
        first = nn.Conv2d(in_channels, channels, 3, 2, 1) if in_channels else nn.LazyConv2d(channels, 3, 2, 1)
        self.features = nn.Sequential(
            first, nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 2, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(channels, num_domains)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def feature_module(model: nn.Module, name: str = "") -> nn.Module:
    """The module whose input the discriminator reads: ``name`` (dotted, as in
    ``model.named_modules()``), else the model's last Conv2d (the keypoint
    head: its input is the backbone's feature map)."""
    modules = dict(model.named_modules())
    if name:
        if name not in modules:
            raise ValueError(f"ADAPT.FEATURE_LAYER {name!r} is not a module of {type(model).__name__}")
        return modules[name]
    convs = [m for m in modules.values() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no Conv2d; set ADAPT.FEATURE_LAYER")
    return convs[-1]


class FeatureTap:
    """Keeps the input of ``module`` from the latest forward (as a hook)."""

    def __init__(self, module: nn.Module):
        self.value: Optional[torch.Tensor] = None
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.value = args[0]


def domain_loss(discriminator: nn.Module, features: torch.Tensor, domains: torch.Tensor,
                grl_weight: float) -> torch.Tensor:
    """Cross-entropy of the discriminator on reversed-gradient features: the
    discriminator descends it, the features ascend it (scaled by grl_weight)."""
    return F.cross_entropy(discriminator(reverse_gradient(features, grl_weight)), domains)


class WSCDA(SupervisedStrategy):
    """``TRAIN.STRATEGY: ws_cda`` (module docstring)."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.specs = domain_specs(cfg)
        if len(self.specs) < 2:
            raise ValueError("TRAIN.STRATEGY ws_cda needs at least one ADAPT.DOMAINS entry next to the training set")
        self.discriminator = DomainDiscriminator(0, len(self.specs), cfg.ADAPT.DISCRIMINATOR_CHANNELS)
        self.tap: Optional[FeatureTap] = None
        self.loaders: Optional[list] = None
        self.domain_accuracy = float("nan")
        self.synced = False

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def state_dict(self) -> dict:
        """The discriminator's weights: a resumed run must not restart the
        adversary from scratch (the optimizer's moments refer to these)."""
        return {"discriminator": self.discriminator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"discriminator"}:
            raise ValueError(f"ws_cda resumes from a checkpoint with its discriminator; this one has "
                             f"{sorted(state) or 'no strategy state'} (was it trained with TRAIN.STRATEGY ws_cda?)")
        # loading materialises the lazy first conv in place: the optimizer keeps the same parameters
        self.discriminator.load_state_dict(state["discriminator"])

    def to(self, device: torch.device) -> "WSCDA":
        self.discriminator.to(device)
        return self

    def before_epoch(self, ctx: TrainContext, epoch: int, loader: Iterable) -> Iterable:
        if self.tap is None:
            model = ctx.model.module if hasattr(ctx.model, "module") else ctx.model
            self.tap = FeatureTap(feature_module(model, self.cfg.ADAPT.FEATURE_LAYER))
            self.discriminator.to(ctx.device)
        if self.loaders is None:
            self.loaders = [loader] + [domain_loader(self.cfg, build_domain_dataset(self.cfg, s, True, ctx.codec))
                                       for s in self.specs[1:]]
        self.discriminator.train()
        return _mixed(ctx, self.loaders)

    def step(self, ctx: TrainContext, batch: dict) -> torch.Tensor:
        parts = [batch] + batch["domains"]
        sizes = [len(p["inputs"]) for p in parts]
        outputs = ctx.forward(torch.cat([p["inputs"] for p in parts]))
        starts = np.cumsum([0] + sizes)
        pose = 0.0
        for d, (spec, part) in enumerate(zip(self.specs, parts)):
            if spec["labelled"]:
                out = _slice_outputs(outputs, starts[d], starts[d + 1])
                pose = pose + spec["weight"] * stage_loss(ctx.criterion, out, part["target"], part["target_weight"])
        domains = torch.cat([torch.full((n,), d, dtype=torch.long, device=ctx.device) for d, n in enumerate(sizes)])
        features = self.tap.value.float()
        if not self.synced:  # materialise the lazy first conv, then every rank starts from rank 0's weights
            with torch.no_grad():
                self.discriminator(features[:1])
            broadcast_parameters(self.discriminator)
            self.synced = True
        adv = domain_loss(self.discriminator, features, domains, self.cfg.ADAPT.GRL_WEIGHT)
        with torch.no_grad():
            self.domain_accuracy = (self.discriminator(features).argmax(1) == domains).float().mean().item()
        batch["outputs"] = _slice_outputs(outputs, 0, sizes[0])
        return pose + self.cfg.ADAPT.DOMAIN_WEIGHT * adv


def _slice_outputs(outputs, start: int, end: int):
    if isinstance(outputs, (list, tuple)):
        return [o[start:end] for o in outputs]
    return outputs[start:end]


# ---------------------------------------------------------------- CC-SSL pseudo-labels

def view_matrices(num_views: int, scale_factor: float, rot_factor: float, generator: torch.Generator,
                  aspect: float = 1.0) -> torch.Tensor:
    """(V, 2, 3) affine maps in normalised [-1, 1] coordinates from a view to
    the original crop: view 0 the identity, the others scale
    ``clamp(1 + sf N, 1 - sf, 1 + sf)`` and rotation ``clamp(rf N, -2 rf, 2 rf)``
    degrees, CC-SSL's draws (``consistency.py:38-39``). ``aspect`` = W / H keeps
    rotations rigid in pixels."""
    mats = torch.zeros(num_views, 2, 3, dtype=torch.float64)
    mats[:, 0, 0] = mats[:, 1, 1] = 1.0
    for v in range(1, num_views):
        s = float(torch.randn((), generator=generator).mul(scale_factor).add(1).clamp(1 - scale_factor,
                                                                                       1 + scale_factor))
        r = math.radians(float(torch.randn((), generator=generator).mul(rot_factor).clamp(-2 * rot_factor,
                                                                                            2 * rot_factor)))
        c, n = math.cos(r), math.sin(r)
        # pixel rotation R conjugated by diag(aspect, 1): normalised x spans W, y spans H
        mats[v, :, :2] = s * torch.tensor([[c, -n / aspect], [n * aspect, c]], dtype=torch.float64)
    return mats


def _invert(mats: torch.Tensor) -> torch.Tensor:
    inv = torch.linalg.inv(mats[:, :, :2])
    return torch.cat([inv, -inv @ mats[:, :, 2:]], dim=2)


def _warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Sample ``x`` (N, C, H, W) at ``theta`` (2, 3) x the output grid."""
    grid = F.affine_grid(theta.to(x.dtype).expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def fuse_views(model, inputs: torch.Tensor, mats: torch.Tensor, codec=None, flip_pairs: Sequence = (),
               flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """CC-SSL's spatial consistency: the heatmaps of every view (and with
    ``flip`` its mirror, flipped back by the codec's rule) warped back to the
    crop and averaged. Returns the fused heatmaps (N, K, h, w) and the spread
    (N, K): the mean distance of the views' argmaxes from their mean, as a
    fraction of the heatmap width."""
    fused, peaks = 0.0, []
    for theta in mats:
        view = _warp(inputs, theta)
        outs = [last_stage(model(view))]
        if flip:
            outs.append(codec.flip_back(last_stage(model(view.flip(3))), flip_pairs))
        for out in outs:
            back = _warp(out.float(), _invert(theta[None])[0])
            fused = fused + back
            peaks.append(get_max_preds(back)[0])
    fused = fused / len(peaks)
    peaks = torch.stack(peaks)  # (V, N, K, 2)
    spread = (peaks - peaks.mean(0)).norm(dim=-1).mean(0) / fused.shape[3]
    return fused, spread


def keep_threshold(confidence: np.ndarray, keep: float) -> float:
    """CC-SSL's ranked threshold (``CCSSL.py:143-153``): all target joint
    confidences sorted (with the extra leading 0 of its ``np.zeros(1)``
    start), the value at index ``int((1 - keep) x count)``; joints above it
    are kept, about the top ``keep`` share."""
    ranked = np.sort(np.concatenate([np.zeros(1), np.asarray(confidence, np.float64).reshape(-1)]))
    return float(ranked[min(int((1.0 - keep) * len(ranked)), len(ranked) - 1)])


SELECTIONS = ("pooled", "per_joint")


def select_pseudo_labels(confidence: np.ndarray, spread: np.ndarray, keep: float, max_spread: float = 0.0,
                         min_confidence: float = 0.0, per_joint: bool = False,
                         threshold: Optional[float] = None) -> tuple[np.ndarray, float | list[float]]:
    """(N, K) kept mask and the confidence threshold(s): above CC-SSL's ranked
    threshold over all joints (or, ``per_joint``, each joint's own ranked
    threshold, so every joint keeps its top ``keep`` share), or above the fixed
    ``threshold`` when one is given (PPLO's per-round confidence thresholds);
    and above ``min_confidence``, and (``max_spread`` > 0) with the views
    agreeing within ``max_spread`` of the heatmap width."""
    confidence = np.asarray(confidence, np.float64)
    if threshold is not None:
        thresh: float | list[float] = float(threshold)
        kept = confidence > thresh
    elif per_joint:
        thresh = [keep_threshold(confidence[:, j], keep) for j in range(confidence.shape[1])]
        kept = confidence > np.asarray(thresh)[None, :]
    else:
        thresh = keep_threshold(confidence, keep)
        kept = confidence > thresh
    kept &= confidence >= min_confidence
    if max_spread > 0:
        kept &= spread <= max_spread
    return kept, thresh


LK_PARAMS = {"winSize": (15, 15), "maxLevel": 2,
             "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)}  # consistency.py:91-93


def _gray(path: str) -> np.ndarray:
    return cv2.cvtColor(read_image(path, False), cv2.COLOR_BGR2GRAY)


def temporal_consistency(records: Sequence[dict], coords: np.ndarray, confidence: np.ndarray,
                         read_gray: Callable[[str], np.ndarray], input_width: int, max_displacement: float = 15.0,
                         decay: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CC-SSL's temporal constraint (``CCSSL/scripts/consistency.py:88-119``):
    walking the records in order, each frame's pyramidal Lucas-Kanade flow from
    the previous frame of the same video carries that frame's (already
    constrained) pseudo-labels forward; a carried joint that moved more than
    ``max_displacement`` input-crop pixels gets confidence 0; a joint whose own
    confidence is below ``decay`` x the carried one takes the carried position
    and ``decay`` x its confidence. Returns new (coords, confidence) and the
    (N, K) mask of replaced joints.

    Deliberate differences: the official code runs the flow between the two
    256x256 crops, which are cut around each frame's own box, so their pixels
    do not correspond; posezoo runs it between the full frames, in image
    pixels, with the threshold scaled from the crop (``input_width`` pixels
    span the record's box width). The official chain also runs across video
    boundaries (the last frame of one shot feeds the first of the next);
    posezoo restarts it at each video, and a point the flow lost (status 0)
    is not carried."""
    coords, confidence = coords.astype(np.float32).copy(), confidence.astype(np.float32).copy()
    replaced = np.zeros(confidence.shape, bool)
    previous_gray = None
    for i, rec in enumerate(records):
        gray = read_gray(rec["image"])
        if i > 0 and rec.get("video") is not None and rec.get("video") == records[i - 1].get("video"):
            start = coords[i - 1].reshape(-1, 1, 2)
            flow, status, _ = cv2.calcOpticalFlowPyrLK(previous_gray, gray, start, None, **LK_PARAMS)
            flow = flow.reshape(-1, 2)
            carried = confidence[i - 1].copy()
            limit = max_displacement * float(records[i - 1]["scale"][0]) * PIXEL_STD / input_width
            carried[(np.linalg.norm(flow - start.reshape(-1, 2), axis=1) > limit) | (status.reshape(-1) == 0)] = 0
            with np.errstate(divide="ignore", invalid="ignore"):
                take = (carried > 0) & (confidence[i] / np.where(carried > 0, carried, 1) < decay)
            coords[i][take] = flow[take]
            confidence[i][take] = carried[take] * decay
            replaced[i] = take
        previous_gray = gray
    return coords, confidence, replaced


def keep_fraction(cfg, round_index: int) -> float:
    """The share of target joints kept in round ``round_index``: CC-SSL's
    ``1 - p`` with ``p = 1 - 0.02 (epoch + 10)`` at epochs 0, 10, 20, ...,
    floored at 0.2 (``CCSSL.py:148-153``)."""
    a = cfg.ADAPT
    return float(min(a.KEEP_MAX, a.KEEP_START + a.KEEP_STEP * round_index))


def round_threshold(cfg, round_index: int) -> Optional[float]:
    """``ADAPT.THRESHOLDS[round]`` (the last one for later rounds), or None
    (no list: CC-SSL's ranked share)."""
    thresholds = list(cfg.ADAPT.THRESHOLDS)
    return float(thresholds[min(round_index, len(thresholds) - 1)]) if thresholds else None


def check_selection(cfg) -> None:
    a = cfg.ADAPT
    if a.SELECTION not in SELECTIONS:
        raise ValueError(f"ADAPT.SELECTION = {a.SELECTION!r}: expected one of {', '.join(SELECTIONS)}")
    if a.MIN_KEPT_JOINTS < 1:
        raise ValueError("ADAPT.MIN_KEPT_JOINTS must be >= 1 (a crop needs a kept joint to train on)")


@torch.no_grad()
def pseudo_label(cfg, model: nn.Module, dataset, codec, device: torch.device, round_index: int) -> dict:
    """Label every crop of the unlabelled `dataset` (test-time crops): fused
    views, codec decode to image coordinates, selection. Returns the JSON
    document written for the round."""
    if getattr(codec, "channels_per_joint", 1) != 1 or getattr(codec, "is_3d", False):
        raise ValueError("TRAIN.STRATEGY cc_ssl needs a 2D heatmap codec with one channel per joint")
    a = cfg.ADAPT
    w, h = cfg.MODEL.IMAGE_SIZE
    generator = torch.Generator().manual_seed(cfg.SEED * 1000 + round_index)
    was_training = model.training
    model.eval()
    coords, confidence, spread = [], [], []
    loader = DataLoader(dataset, batch_size=cfg.TEST.BATCH_SIZE_PER_GPU, shuffle=False, num_workers=cfg.WORKERS,
                        collate_fn=packed_collate)
    normalise = input_normaliser(cfg)
    for inputs, _, _, meta in loader:
        inputs = normalise(inputs.to(device))
        mats = view_matrices(a.NUM_TRANSFORMS, a.SCALE_FACTOR, a.ROT_FACTOR, generator, w / h).to(device)
        fused, sp = fuse_views(model, inputs, mats, codec, dataset.flip_pairs, a.FLIP)
        xy, maxvals = codec.decode(fused, {"center": meta["center"], "scale": meta["scale"]})
        coords.append(xy.cpu().numpy())
        confidence.append(maxvals[..., 0].cpu().numpy())
        spread.append(sp.cpu().numpy())
    model.train(was_training)
    k = dataset.num_joints
    coords = np.concatenate(coords) if coords else np.zeros((0, k, 2))
    confidence = np.concatenate(confidence) if confidence else np.zeros((0, k))
    spread = np.concatenate(spread) if spread else np.zeros((0, k))
    flowed = np.zeros(confidence.shape, bool)
    if a.TEMPORAL:
        if not any(rec.get("video") is not None for rec in dataset.db):
            raise ValueError(f"ADAPT.TEMPORAL needs video frames (records with a 'video' key, e.g. tigdog); "
                             f"{type(dataset).__name__} has none: set ADAPT.TEMPORAL False")
        coords, confidence, flowed = temporal_consistency(dataset.db, coords, confidence, _gray, w,
                                                          a.FLOW_MAX_DISPLACEMENT, a.FLOW_DECAY)
    keep = keep_fraction(cfg, round_index)
    kept, thresh = select_pseudo_labels(confidence, spread, keep, a.MAX_SPREAD, a.MIN_CONFIDENCE,
                                        a.SELECTION == "per_joint", round_threshold(cfg, round_index))
    labels = [{"index": i, "image_id": int(rec["image_id"]), "image": rec["image"],
               "keypoints": np.round(coords[i], 3).tolist(), "confidence": confidence[i].tolist(),
               "spread": np.round(spread[i], 5).tolist(), "kept": kept[i].astype(int).tolist()}
              for i, rec in enumerate(dataset.db)]
    selection = "fixed threshold" if round_threshold(cfg, round_index) is not None else a.SELECTION
    return {"round": round_index, "keep_fraction": keep, "selection": selection, "threshold": thresh,
            "num_transforms": a.NUM_TRANSFORMS,
            "flip": bool(a.FLIP), "kept_joints": int(kept.sum()), "joints": int(kept.size),
            "flow_replaced_joints": int(flowed.sum()), "labels": labels}


def labelled_copy(dataset, document: dict, min_kept: int = 1):
    """A shallow copy of the unlabelled `dataset` whose records carry the
    kept pseudo-labels as joints (visibility 1 where kept); crops with fewer
    than `min_kept` kept joints are left out."""
    if len(document["labels"]) != len(dataset.db):
        raise ValueError(f"pseudo-label file has {len(document['labels'])} crops, the target set {len(dataset.db)}")
    out = copy.copy(dataset)
    out.db = []
    for rec, lab in zip(dataset.db, document["labels"]):
        kept = np.asarray(lab["kept"], np.float32)
        if lab["image_id"] != rec["image_id"] or kept.sum() < max(min_kept, 1):
            continue
        joints = np.zeros_like(rec["joints"])
        joints[:, :2] = np.asarray(lab["keypoints"], np.float32)
        vis = np.repeat(kept[:, None], 3, axis=1)
        vis[:, 2] = 0
        out.db.append({**rec, "joints": joints, "joints_vis": vis})
    return out


PRECISION_ALPHAS = (0.05, 0.1)


def _percent(value: float) -> Optional[float]:
    return None if not np.isfinite(value) else round(float(value), 3)


def pseudo_label_precision(coords: np.ndarray, kept: np.ndarray, truth: np.ndarray, truth_visible: np.ndarray,
                           normaliser: np.ndarray, alphas: Sequence[float] = PRECISION_ALPHAS) -> dict:
    """How right a round's pseudo-labels are where the truth is known (a
    synthetic target, or a labelled one used as unlabelled): ``precision@a``
    the percentage of kept labels with a true joint that lie within ``a`` x
    the instance's ``normaliser`` of it (box PCK of the kept labels), ``all@a``
    the same over every labelled joint, kept or not (what the selection has to
    improve on), and the counts. A strategy whose kept labels are mostly
    wrong trains the model on its own errors. NaN (nothing to count) is None."""
    coords = np.asarray(coords, np.float64)
    truth = np.asarray(truth, np.float64)[..., :2]
    known = np.asarray(truth_visible, bool)
    kept_known = np.asarray(kept, bool) & known
    out: dict = {"joints_with_truth": int(known.sum()), "kept_with_truth": int(kept_known.sum())}
    for alpha in alphas:
        out[f"precision@{alpha:g}"] = _percent(pck(coords, truth, kept_known, normaliser, alpha).mean)
        out[f"all@{alpha:g}"] = _percent(pck(coords, truth, known, normaliser, alpha).mean)
    return out


def _record_truth(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, K, 2) joints, (N, K) labelled mask and (N,) normaliser of records:
    the annotated box's longer side (the animal sets' PCK, ``datasets/animal.py``)
    where records carry ``bbox``, else the crop's longer side."""
    joints = np.stack([np.asarray(r["joints"], np.float64)[:, :2] for r in records])
    visible = np.stack([np.asarray(r["joints_vis"])[:, 0] > 0 for r in records])
    sizes = np.array([max(r["bbox"][2:4]) if r.get("bbox") is not None else float(np.max(r["scale"])) * PIXEL_STD
                      for r in records], np.float64)
    return joints, visible, sizes


def target_truth(cfg, spec: dict, target, codec) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The true keypoints of the target crops, if any are known: the target's
    own labels when it has some, else the domain's ``TRUTH`` split (built like
    the target, its records in the same order: checked by image id)."""
    if not target.db:
        return None
    if any(np.asarray(r["joints_vis"])[:, 0].any() for r in target.db):
        return _record_truth(target.db)
    if not spec.get("truth"):
        return None
    truth = build_domain_dataset(cfg, {**spec, "set": spec["truth"]}, False, codec)
    if [r["image_id"] for r in truth.db] != [r["image_id"] for r in target.db]:
        raise ValueError(f"ADAPT.DOMAINS TRUTH {spec['truth']!r} does not hold the crops of {spec['set']!r} in the "
                         f"same order ({len(truth.db)} against {len(target.db)} records)")
    return _record_truth(truth.db)


class CCSSL(SupervisedStrategy):
    """``TRAIN.STRATEGY: cc_ssl`` (module docstring)."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.specs = domain_specs(cfg)
        unlabelled = [s for s in self.specs[1:] if not s["labelled"]]
        if not unlabelled:
            raise ValueError("TRAIN.STRATEGY cc_ssl needs an unlabelled ADAPT.DOMAINS entry (the target set)")
        self.target_spec = unlabelled[0]
        if cfg.ADAPT.EPOCHS_PER_ROUND < 1:
            raise ValueError("ADAPT.EPOCHS_PER_ROUND must be >= 1")
        check_selection(cfg)
        self.round: Optional[int] = None
        self.target_loader = None

    def round_of(self, epoch: int) -> Optional[int]:
        start = self.cfg.ADAPT.SOURCE_EPOCHS
        return None if epoch < start else (epoch - start) // self.cfg.ADAPT.EPOCHS_PER_ROUND

    @staticmethod
    def label_file(output_dir: str, round_index: int) -> str:
        return os.path.join(output_dir, "pseudo_labels", f"round_{round_index:02d}.json")

    def labels_for_round(self, ctx: TrainContext, round_index: int, target) -> dict:
        """The round's pseudo-labels: read back when the file exists (a resumed
        run), else predicted now and written atomically."""
        path = self.label_file(ctx.output_dir, round_index)
        if os.path.isfile(path):
            with open(path) as f:
                document = json.load(f)
            logger.info("=> CC-SSL round %d: pseudo-labels read from %s", round_index, path)
            return document
        model = ctx.model.module if hasattr(ctx.model, "module") else ctx.model
        document = pseudo_label(self.cfg, model, target, ctx.codec, ctx.device, round_index)
        truth = target_truth(self.cfg, self.target_spec, target, ctx.codec)
        if truth is not None:
            coords = np.array([lab["keypoints"] for lab in document["labels"]], np.float64)
            kept = np.array([lab["kept"] for lab in document["labels"]], bool)
            document["precision"] = pseudo_label_precision(coords, kept, *truth)
            logger.info("=> CC-SSL round %d: pseudo-labels against the truth: %s", round_index,
                        ", ".join(f"{k} {v}" for k, v in document["precision"].items()))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_text_atomic(path, json.dumps(document))
        logger.info("=> CC-SSL round %d: kept %d of %d target joints (%s selection, confidence > %s); %s",
                    round_index, document["kept_joints"], document["joints"], document["selection"],
                    np.round(document["threshold"], 4).tolist(), path)
        return document

    def before_epoch(self, ctx: TrainContext, epoch: int, loader: Iterable) -> Iterable:
        round_index = self.round_of(epoch)
        if round_index is None:
            return loader
        if round_index != self.round:
            target = build_domain_dataset(self.cfg, self.target_spec, False, ctx.codec)
            document = self.labels_for_round(ctx, round_index, target)
            train_target = labelled_copy(build_domain_dataset(self.cfg, self.target_spec, True, ctx.codec), document,
                                         self.cfg.ADAPT.MIN_KEPT_JOINTS)
            self.round = round_index
            self.target_loader = domain_loader(self.cfg, train_target) if len(train_target) else None
        return loader if self.target_loader is None else _mixed(ctx, [loader, self.target_loader])

    def step(self, ctx: TrainContext, batch: dict) -> torch.Tensor:
        """The source loss plus ``TARGET_WEIGHT`` x the pseudo-label loss, one
        forward per domain (``CCSSL.py:199-231``)."""
        loss = super().step(ctx, batch)
        for target in batch.get("domains", ()):
            target_loss = stage_loss(ctx.criterion, ctx.forward(target["inputs"]), target["target"],
                                     target["target_weight"])
            loss = loss + self.cfg.ADAPT.TARGET_WEIGHT * target_loss
        return loss


STRATEGIES = {"ws_cda": WSCDA, "cc_ssl": CCSSL}
