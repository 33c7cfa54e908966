"""CornerNet's codec: boxes <-> corner heatmaps, embeddings and offsets (Law and
Deng, ECCV 2018), with its loss. ``MODEL.TARGET_TYPE: cornernet``.

Encode (official CornerNet-Lite ``core/sample/cornernet.py``): each box, in
network-input pixels, puts an unnormalised Gaussian on its class's top-left and
bottom-right heatmaps at the corner truncated to the output grid. The radius is
the largest for which a box with both corners displaced inside it still has IoU >=
``CORNERNET.GAUSSIAN_IOU`` with the ground truth (paper Sec. 3.2; official
``gaussian_radius``, its three quadratic cases), sigma = diameter / 6. The
corner's flat index feeds the embedding gather, its fractional part is the
offset target (paper eq. 2).

Decode (official ``_decode`` in ``core/models/py_utils/utils.py`` and the test
loop of ``core/test/cornernet.py``), batched in torch: sigmoid and a 3x3 max-pool
NMS on both heatmaps, top-K corners over all classes, every (tl, br) pair scored by
the mean of its corners' scores and rejected where the classes differ, the
embedding distance exceeds ``AE_THRESHOLD``, or br lies left of / above tl; the
best ``NUM_DETS`` pairs, offsets added; with a flipped output the mirrored
detections are appended (x -> W - x, the official mapping, without the -1);
then to image pixels through ``meta['crop_to_image']``, clipped to
``meta['image_size']``, per-class Gaussian soft-NMS (Bodla et al. 2017; sigma
``NMS_SIGMA``, boxes below ``NMS_MIN_SCORE`` dropped, the +1 pixel areas of the
official Cython ``soft_nms``), and the best ``MAX_PER_IMAGE``.

Soft-NMS comes in two flavours (``CORNERNET.SOFT_NMS``). ``official`` (the
default) reproduces what the official test keeps, row for row: it calls the
Cython ``soft_nms`` for its side effect and ignores the kept count it returns, so
each class's array also holds the rows its swap-with-last removal left behind
(stale copies, scored), and ``soft_nms_merge`` weights with corner scores that
its swaps do not move; the per-image cut keeps every score >= the k-th
(``official_soft_nms_rows``, numpy, per image and class). ``batched`` is the
torch version batched over images on the device: the same kept boxes, without
the left-behind rows and with each box's own corner scores in the merge, and the
top ``MAX_PER_IMAGE`` exactly.

Loss (official ``CornerNet_Loss`` in ``core/models/py_utils/losses.py``): per stack,
the focal loss of paper eq. 1 (alpha 2, beta 4 on (1 - y)) on sigmoid heatmaps
clamped to [1e-4, 1 - 1e-4], normalised by the number of positives; pull/push
embedding losses (eqs. 3-4, margin 1) weighted 0.1; smooth-L1 offsets (eq. 2);
the sum over stacks divided by their number.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from .base import Codec, last_stage

SETTINGS = ("GAUSSIAN_IOU", "MAX_OBJECTS", "TOP_K", "AE_THRESHOLD", "NMS_KERNEL", "NUM_DETS", "NMS_SIGMA",
            "NMS_MIN_SCORE", "MAX_PER_IMAGE", "MERGE_BBOX", "WEIGHT_EXP", "PULL_WEIGHT", "PUSH_WEIGHT", "OFF_WEIGHT",
            "FOCAL_ALPHA", "FOCAL_BETA", "SOFT_NMS")


def gaussian_radius(height: float, width: float, min_overlap: float) -> float:
    """Corner radius keeping IoU >= min_overlap (official ``gaussian_radius``: the
    smallest root of the three displacement cases)."""
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - math.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 - math.sqrt(b2 ** 2 - 16 * c2)) / 8
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def draw_gaussian(heatmap: np.ndarray, x: int, y: int, radius: int) -> None:
    """Max-paste an unnormalised Gaussian (sigma = diameter / 6, values below
    eps * peak zeroed) centred on integer (x, y), clipped at the borders."""
    d = 2 * radius + 1
    sigma = d / 6
    r = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-(r[None, :] ** 2 + r[:, None] ** 2) / (2 * sigma * sigma))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    h, w = heatmap.shape
    left, right = min(x, radius), min(w - x, radius + 1)
    top, bottom = min(y, radius), min(h - y, radius + 1)
    patch = heatmap[y - top:y + bottom, x - left:x + right]
    np.maximum(patch, g[radius - top:radius + bottom, radius - left:radius + right], out=patch)


def gather_at(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) features at flat indices (N, M) -> (N, M, C)."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    return flat.gather(2, ind.unsqueeze(1).expand(n, c, ind.shape[1])).transpose(1, 2)


def focal_loss(logits: torch.Tensor, gt: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """Paper eq. 1 summed and divided by the number of positives (or, with none,
    the negative term alone), on sigmoids clamped as the official ``_sigmoid``."""
    pred = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1)
    pos_loss = (torch.log(pred) * (1 - pred) ** alpha)[pos].sum()
    neg_loss = (torch.log(1 - pred) * pred ** alpha * (1 - gt) ** beta)[gt.lt(1)].sum()
    num_pos = pos.sum()
    return -neg_loss if num_pos == 0 else -(pos_loss + neg_loss) / num_pos


def embedding_loss(tl: torch.Tensor, br: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pull (eq. 3) and push (eq. 4, margin 1) over (N, M) embeddings of each
    image's objects, as the official ``_ae_loss`` (its push includes each object's
    pair with itself, then subtracts 1/num for it)."""
    num = mask.sum(dim=1, keepdim=True).float()
    mean = (tl + br) / 2
    pull = (((tl - mean) ** 2 + (br - mean) ** 2) / (num + 1e-4))[mask].sum()
    pair = mask.unsqueeze(1) & mask.unsqueeze(2)
    num = num.unsqueeze(2)
    dist = torch.relu(1 - (mean.unsqueeze(1) - mean.unsqueeze(2)).abs()) - 1 / (num + 1e-4)
    push = (dist / ((num - 1) * num + 1e-4))[pair].sum()
    return pull, push


def offset_loss(off: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 over the objects' (N, M, 2) offsets, per object (eq. 2)."""
    m = mask.unsqueeze(2).expand_as(gt)
    return nn.functional.smooth_l1_loss(off[m], gt[m], reduction="sum") / (mask.sum().float() + 1e-4)


class CornerNetLoss(nn.Module):
    """Official ``CornerNet_Loss``: ``loss(outputs, target)`` with ``outputs`` the
    model's list of per-stack dicts and ``target`` the batched encode dict.
    It takes every stack at once (``all_stages``): the official loss divides
    their sum by the number of stacks."""

    all_stages = True

    def __init__(self, pull_weight: float = 0.1, push_weight: float = 0.1, off_weight: float = 1.0,
                 alpha: float = 2.0, beta: float = 4.0):
        super().__init__()
        self.pull_weight, self.push_weight, self.off_weight = pull_weight, push_weight, off_weight
        self.alpha, self.beta = alpha, beta

    def terms(self, outputs: list, target: Mapping) -> dict[str, torch.Tensor]:
        """The summed focal, pull, push and offset terms (weighted, not yet divided by stacks)."""
        mask = target["mask"].bool()
        focal = pull = push = off = 0.0
        for out in outputs:
            focal = focal + focal_loss(out["tl_heat"], target["tl_heat"], self.alpha, self.beta)
            focal = focal + focal_loss(out["br_heat"], target["br_heat"], self.alpha, self.beta)
            p, q = embedding_loss(gather_at(out["tl_tag"], target["tl_ind"])[..., 0],
                                  gather_at(out["br_tag"], target["br_ind"])[..., 0], mask)
            pull, push = pull + p, push + q
            off = off + offset_loss(gather_at(out["tl_off"], target["tl_ind"]), target["tl_off"], mask)
            off = off + offset_loss(gather_at(out["br_off"], target["br_ind"]), target["br_off"], mask)
        return {"focal": focal, "pull": self.pull_weight * pull, "push": self.push_weight * push,
                "off": self.off_weight * off}

    def forward(self, outputs: Any, target: Mapping, target_weight: Any = None) -> torch.Tensor:
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(self.terms(outputs, target).values()) / max(len(outputs), 1)


def soft_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, valid: torch.Tensor,
             sigma: float = 0.5, min_score: float = 0.001, corner_scores: Optional[torch.Tensor] = None,
             weight_exp: float = 8.0) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Gaussian soft-NMS per image and class, batched: (N, D, 4) boxes, (N, D)
    scores, classes and valid mask -> the selection order (N, D) indices, the
    scores at selection (N, D), -1 where nothing was selected, and (with
    ``corner_scores``) the merged boxes at selection (N, D, 4), else None.

    Each step selects every image's best remaining box; its IoU (official +1
    pixel convention, zero unless both overlaps are positive) decays the
    remaining boxes of its class by w = exp(-IoU^2 / sigma); those under
    ``min_score`` leave. Per class this is the official greedy order.

    ``corner_scores`` (N, D, 2), the tl and br scores of each box: the official
    ``soft_nms_merge`` (multi-scale test, ``merge_bbox``): the selected box's
    x1, y1 (x2, y2) become the mean of its own and of every remaining
    overlapping box's corners, weighted by the tl (br) score times (1 -
    w)^weight_exp (1 for the box itself). Deliberate difference: the official
    loop swaps only columns 0-4 when it selects or drops a box, so the corner
    scores it weights with can belong to another box; here each box carries its
    own."""
    n, d = scores.shape
    area = (boxes[..., 2] - boxes[..., 0] + 1) * (boxes[..., 3] - boxes[..., 1] + 1)
    s = torch.where(valid, scores, torch.full_like(scores, -1.0))
    active = valid.clone()
    order = torch.full((n, d), -1, dtype=torch.long, device=scores.device)
    picked = torch.full((n, d), -1.0, dtype=scores.dtype, device=scores.device)
    merged = None if corner_scores is None else boxes.new_zeros((n, d, 4))
    rows = torch.arange(n, device=scores.device)
    for step in range(d):
        if not bool(active.any()):
            break
        best = torch.where(active, s, torch.full_like(s, -2.0)).argmax(dim=1)
        has = active[rows, best]
        order[:, step] = torch.where(has, best, torch.full_like(best, -1))
        picked[:, step] = torch.where(has, s[rows, best], torch.full_like(s[:, 0], -1.0))
        active[rows, best] = False
        b = boxes[rows, best]
        iw = torch.minimum(b[:, None, 2], boxes[..., 2]) - torch.maximum(b[:, None, 0], boxes[..., 0]) + 1
        ih = torch.minimum(b[:, None, 3], boxes[..., 3]) - torch.maximum(b[:, None, 1], boxes[..., 1]) + 1
        overlap = (iw > 0) & (ih > 0) & (classes == classes[rows, best][:, None]) & active & has[:, None]
        inter = iw * ih
        iou = inter / (area[rows, best][:, None] + area - inter)
        weight = torch.exp(-(iou * iou) / sigma)
        if merged is not None:
            mw = torch.where(overlap, (1 - weight) ** weight_exp, torch.zeros_like(weight))
            tl = torch.cat([corner_scores[rows, best, 0:1], corner_scores[..., 0] * mw], 1)
            br = torch.cat([corner_scores[rows, best, 1:2], corner_scores[..., 1] * mw], 1)
            xy1 = torch.cat([b[:, None, 0:2], boxes[..., 0:2]], 1)
            xy2 = torch.cat([b[:, None, 2:4], boxes[..., 2:4]], 1)
            merged[:, step] = torch.cat([(xy1 * tl[..., None]).sum(1) / tl.sum(1, keepdim=True),
                                         (xy2 * br[..., None]).sum(1) / br.sum(1, keepdim=True)], 1)
        s = torch.where(overlap, s * weight, s)
        active &= ~(overlap & (s < min_score))
    return order, picked, merged


def official_soft_nms_rows(rows: np.ndarray, sigma: float = 0.5, min_score: float = 0.001, merge: bool = False,
                           weight_exp: float = 8.0) -> np.ndarray:
    """One class's (M, 7) float32 rows x1, y1, x2, y2, score, tl score, br score
    -> the (M, 5) array the official test keeps after calling the Cython
    ``soft_nms`` (``merge``: ``soft_nms_merge``) of CornerNet-Lite
    ``core/external/nms.pyx`` on it in place (Gaussian method, ``core/test/
    cornernet.py:160-167``): every row, not only the kept count the call returns.

    The official loop, step i: the best score in rows [i, N) is swapped into row
    i (columns 0-4 only); every later row it overlaps (+1 pixel areas) is decayed
    by w = exp(-IoU^2 / sigma) in float32; a row falling under ``min_score`` is
    replaced by row N - 1 (columns 0-4) and N shrinks, so row N - 1 stays behind
    as it was; with ``merge`` the selected box becomes the mean of its corners and
    those of every row it overlapped, weighted by corner score x (1 - w)^
    weight_exp, where columns 5-6 are those of the row position, never moved.
    Vectorised per step; the Python work is per removal."""
    b = np.array(rows[:, :7], dtype=np.float32)
    corners = b[:, 5:7].copy()  # the official swaps never move columns 5-6
    m, n = len(b), len(b)
    one, sigma32, wexp, threshold = np.float32(1), np.float32(sigma), np.float32(weight_exp), np.float32(min_score)

    def merge_into(i: int, t: np.ndarray, seg: np.ndarray, seg_corners: np.ndarray, over: np.ndarray,
                   weight: np.ndarray) -> None:
        """soft_nms_merge: row i becomes the corner-score x (1 - w)^weight_exp weighted mean of
        itself and the rows it overlapped (`seg_corners`: the corner scores of the rows' positions)."""
        mw = np.where(over, (one - weight) ** wexp, np.float32(0))
        tl = np.concatenate([corners[i:i + 1, 0], seg_corners[:, 0] * mw])
        br = np.concatenate([corners[i:i + 1, 1], seg_corners[:, 1] * mw])
        xy1 = np.concatenate([t[None, :2], seg[:, :2]])
        xy2 = np.concatenate([t[None, 2:], seg[:, 2:4]])
        b[i, :2] = (xy1 * tl[:, None]).sum(0, dtype=np.float32) / tl.sum(dtype=np.float32)
        b[i, 2:4] = (xy2 * br[:, None]).sum(0, dtype=np.float32) / br.sum(dtype=np.float32)

    for i in range(m):
        if i >= n:  # the official loop still visits the rows left behind: merge rewrites them as x * c / c
            if merge:
                c = corners[i:, [0, 0, 1, 1]]
                b[i:, :4] = (b[i:, :4] * c) / c
            break
        best = i + int(np.argmax(b[i:n, 4]))
        b[[i, best], :5] = b[[best, i], :5]
        t = b[i, :4].copy()
        seg = b[i + 1:n]
        x1, y1, x2, y2, s = seg[:, 0], seg[:, 1], seg[:, 2], seg[:, 3], seg[:, 4]
        area = (x2 - x1 + one) * (y2 - y1 + one)
        iw = np.minimum(t[2], x2) - np.maximum(t[0], x1) + one
        ih = np.minimum(t[3], y2) - np.maximum(t[1], y1) + one
        over = (iw > 0) & (ih > 0)
        ov = iw * ih / ((t[2] - t[0] + one) * (t[3] - t[1] + one) + area - iw * ih)
        weight = np.exp((-(ov * ov) / sigma32).astype(np.float64)).astype(np.float32)
        decayed = np.where(over, weight * s, s)
        gone = over & (decayed < threshold)
        if not gone.any():  # nothing removed (most steps): rows stay where they are, all decayed
            if merge:
                merge_into(i, t, seg, corners[i + 1:n], over, weight)
            b[i + 1:n, 4] = decayed
            continue
        # replay the swap-with-last removals: content[q] = the row now at position q
        content, where = np.arange(len(seg)), np.arange(len(seg))
        end, processed_tail = len(seg), -1
        for p in np.flatnonzero(gone):
            if p >= end:
                break
            while True:
                last = end - 1
                end -= 1
                if last == p:  # the removed row was the last one: it stays, decayed
                    processed_tail = p
                    break
                content[p], where[last] = last, p
                if not gone[last]:
                    break
        processed = np.arange(len(seg)) < end
        if processed_tail >= 0:
            processed[processed_tail] = True
        new = seg[content, :5]
        new[:, 4] = np.where(processed, decayed[content], s[content])
        if merge:
            merge_into(i, t, seg, corners[i + 1 + where], over, weight)
        b[i + 1:n, :5] = new
        n = i + 1 + end
    return b[:, :5]


class CornerNetCodec(Codec):
    """Boxes (x1, y1, x2, y2) <-> corner targets; ``stride`` is the network's
    output stride (4 for hourglass-104, 8 for Squeeze)."""

    prediction = "boxes"
    decode_flipped = True  # the mirrored pass is decoded and appended, not flipped back
    meta_keys = ("crop_to_image", "image_size")

    def __init__(self, num_classes: int, input_size, output_size, settings: Mapping):
        self.num_classes = int(num_classes)
        self.input_size = tuple(int(v) for v in input_size)  # (width, height)
        self.output_size = tuple(int(v) for v in output_size)
        self.s = dict(settings)

    def encode(self, boxes, labels, **sample) -> tuple[dict, np.ndarray]:
        """(M, 4) boxes in network-input pixels and (M,) 0-based classes -> the
        target dict and the (MAX_OBJECTS,) object mask (also ``target['mask']``)."""
        w_out, h_out = self.output_size
        rw, rh = w_out / self.input_size[0], h_out / self.input_size[1]
        m = int(self.s["MAX_OBJECTS"])
        tl_heat = np.zeros((self.num_classes, h_out, w_out), np.float32)
        br_heat = np.zeros_like(tl_heat)
        tl_off, br_off = np.zeros((m, 2), np.float32), np.zeros((m, 2), np.float32)
        tl_ind, br_ind = np.zeros(m, np.int64), np.zeros(m, np.int64)
        mask = np.zeros(m, np.uint8)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        for i, (box, label) in enumerate(zip(boxes[:m], np.asarray(labels).reshape(-1)[:m])):
            fx1, fy1, fx2, fy2 = box[0] * rw, box[1] * rh, box[2] * rw, box[3] * rh
            x1, y1, x2, y2 = int(fx1), int(fy1), int(fx2), int(fy2)
            radius = max(0, int(gaussian_radius(math.ceil((box[3] - box[1]) * rh), math.ceil((box[2] - box[0]) * rw),
                                                self.s["GAUSSIAN_IOU"])))
            draw_gaussian(tl_heat[int(label)], x1, y1, radius)
            draw_gaussian(br_heat[int(label)], x2, y2, radius)
            tl_off[i], br_off[i] = (fx1 - x1, fy1 - y1), (fx2 - x2, fy2 - y2)
            tl_ind[i], br_ind[i] = y1 * w_out + x1, y2 * w_out + x2
            mask[i] = 1
        target = {"tl_heat": tl_heat, "br_heat": br_heat, "tl_off": tl_off, "br_off": br_off,
                  "tl_ind": tl_ind, "br_ind": br_ind, "mask": mask}
        return target, mask.astype(np.float32)

    def pairs(self, out: Mapping) -> torch.Tensor:
        """Official ``_decode``: (N, NUM_DETS, 8) rows x1, y1, x2, y2, score, tl
        score, br score, class in output-map pixels; rejected pairs score -1."""
        s = self.s
        k, kernel = int(s["TOP_K"]), int(s["NMS_KERNEL"])
        n, c, h, w = out["tl_heat"].shape

        def peaks(logits):
            heat = torch.sigmoid(logits)
            hmax = nn.functional.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
            score, ind = (heat * (hmax == heat)).reshape(n, -1).topk(k)
            cls = torch.div(ind, h * w, rounding_mode="floor")
            ind = ind % (h * w)
            return score, ind, cls, torch.div(ind, w, rounding_mode="floor").to(heat.dtype), (ind % w).to(heat.dtype)

        tl_s, tl_i, tl_c, tl_y, tl_x = peaks(out["tl_heat"])
        br_s, br_i, br_c, br_y, br_x = peaks(out["br_heat"])
        tl_o, br_o = gather_at(out["tl_off"], tl_i), gather_at(out["br_off"], br_i)
        tl_x, tl_y = (tl_x + tl_o[..., 0])[:, :, None], (tl_y + tl_o[..., 1])[:, :, None]
        br_x, br_y = (br_x + br_o[..., 0])[:, None, :], (br_y + br_o[..., 1])[:, None, :]
        tl_t, br_t = gather_at(out["tl_tag"], tl_i)[..., 0], gather_at(out["br_tag"], br_i)[..., 0]
        shape = (n, k, k)
        bboxes = torch.stack([tl_x.expand(shape), tl_y.expand(shape), br_x.expand(shape), br_y.expand(shape)], 3)
        tl_s, br_s = tl_s[:, :, None].expand(shape), br_s[:, None, :].expand(shape)
        scores = (tl_s + br_s) / 2
        reject = ((tl_c[:, :, None] != br_c[:, None, :]) | ((tl_t[:, :, None] - br_t[:, None, :]).abs()
                  > s["AE_THRESHOLD"]) | (br_x < tl_x) | (br_y < tl_y))
        scores = torch.where(reject, torch.full_like(scores, -1.0), scores).reshape(n, -1)
        scores, inds = scores.topk(min(int(s["NUM_DETS"]), k * k))
        pick = inds[..., None]
        return torch.cat([bboxes.reshape(n, -1, 4).gather(1, pick.expand(-1, -1, 4)), scores[..., None],
                          tl_s.reshape(n, -1, 1).gather(1, pick), br_s.reshape(n, -1, 1).gather(1, pick),
                          tl_c[:, :, None].expand(shape).reshape(n, -1, 1).gather(1, pick).to(scores.dtype)], 2)

    def detections(self, output: Any, meta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The (N, D, 8) pair rows of every scale in image pixels, before soft-NMS
        (official ``cornernet_inference`` up to the concatenation over scales).

        One scale: ``output`` is the model's output (the last stage is used) and
        ``meta['crop_to_image']`` (N, 2, 3), ``meta['image_size']`` (N, 2).
        ``CORNERNET.TEST_SCALES``: ``output`` is a list with one output per scale
        and the two meta entries are (N, S, 2, 3) and (N, S, 2), each scale's
        affine already including its 1 / scale and its clip size
        ``int(W * scale) / scale`` (the official clip happens before the division).
        An output of 2N rows holds the mirrored inputs' output in its second half
        (the official flip test): their pairs are mirrored (x -> W_out - x,
        without the -1, as the official code) and appended to the image's."""
        a, size = meta["crop_to_image"], meta["image_size"]
        if a.dim() == 3:
            output, a, size = [last_stage(output)], a[:, None], size[:, None]
        rows = []
        for s, out in enumerate(output):
            out = last_stage(out)
            n = a.shape[0]
            dets = self.pairs({k: v[:n] for k, v in out.items()})
            if out["tl_heat"].shape[0] == 2 * n:
                f = self.pairs({k: v[n:] for k, v in out.items()})
                w = out["tl_heat"].shape[-1]
                dets = torch.cat([dets, torch.cat([w - f[..., 2:3], f[..., 1:2], w - f[..., 0:1], f[..., 3:]], 2)], 1)
            elif out["tl_heat"].shape[0] != n:
                raise ValueError(f"CornerNet decode: {out['tl_heat'].shape[0]} output rows for {n} images "
                                 f"(expected N, or 2N with the flip test)")
            rows.append(self._to_image(dets, a[:, s].to(dets), size[:, s].to(dets)))
        return torch.cat(rows, 1)

    @staticmethod
    def _to_image(dets: torch.Tensor, a: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        """Output-map pair rows -> image pixels through the (N, 2, 3) affine,
        clipped to [0, size] (official ``rescale_dets_``)."""
        xs = dets[..., 0:4:2] * a[:, 0, 0, None, None] + a[:, 0, 2, None, None]
        ys = dets[..., 1:4:2] * a[:, 1, 1, None, None] + a[:, 1, 2, None, None]
        xs = torch.minimum(xs.clamp(min=0), size[:, 0, None, None])
        ys = torch.minimum(ys.clamp(min=0), size[:, 1, None, None])
        return torch.cat([torch.stack([xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]], 2), dets[..., 4:]], 2)

    def decode_detections(self, output: Any, meta: Mapping[str, torch.Tensor],
                          output_flipped: Optional[Any] = None) -> dict[str, torch.Tensor]:
        """Detections per image: ``boxes`` (N, MAX_PER_IMAGE, 4) image pixels,
        ``scores`` (N, MAX_PER_IMAGE) after soft-NMS (-1 where fewer), ``classes``
        (N, MAX_PER_IMAGE) 0-based. ``output`` and ``meta`` as ``detections``;
        ``output_flipped`` is the (single-scale) output for the horizontally
        mirrored inputs (the official flip test). All scales' pairs go through
        one per-class soft-NMS, with ``CORNERNET.MERGE_BBOX`` the official
        ``soft_nms_merge`` (``soft_nms``)."""
        if output_flipped is not None:
            out, flipped = last_stage(output), last_stage(output_flipped)
            output = {k: torch.cat([out[k], flipped[k]]) for k in out}
        dets = self.detections(output, meta)
        if self.s["SOFT_NMS"] == "official":
            return self._official_nms(dets)
        boxes, scores, classes = dets[..., :4], dets[..., 4], dets[..., 7].long()
        corners = dets[..., 5:7] if self.s["MERGE_BBOX"] else None
        order, picked, merged = soft_nms(boxes, scores, classes, scores > -1, self.s["NMS_SIGMA"],
                                         self.s["NMS_MIN_SCORE"], corners, self.s["WEIGHT_EXP"])
        top = min(int(self.s["MAX_PER_IMAGE"]), order.shape[1])
        best, pos = picked.topk(top, dim=1)
        idx = order.gather(1, pos).clamp(min=0)
        boxes = boxes.gather(1, idx[..., None].expand(-1, -1, 4)) if merged is None else \
            merged.gather(1, pos[..., None].expand(-1, -1, 4))
        return {"boxes": boxes, "scores": best, "classes": classes.gather(1, idx)}

    def _official_nms(self, dets: torch.Tensor) -> dict[str, torch.Tensor]:
        """``CORNERNET.SOFT_NMS official``: per image, pairs scoring -1 dropped,
        each class's rows through ``official_soft_nms_rows``, then every row whose
        score is >= the ``MAX_PER_IMAGE``-th best (ties kept), class by class in
        the official order (``core/test/cornernet.py:155-176``). Images keep
        different counts: the result is padded to the longest with score -1."""
        s, kept = self.s, []
        for rows in dets.detach().cpu().numpy().astype(np.float32):
            rows = rows[rows[:, 4] > -1]
            per_class = [(official_soft_nms_rows(rows[rows[:, 7] == c, :7], s["NMS_SIGMA"], s["NMS_MIN_SCORE"],
                                                 bool(s["MERGE_BBOX"]), s["WEIGHT_EXP"]), c)
                         for c in range(self.num_classes)]
            out = np.concatenate([np.concatenate([r, np.full((len(r), 1), c, np.float32)], 1) for r, c in per_class])
            limit = int(s["MAX_PER_IMAGE"])
            if len(out) > limit:
                out = out[out[:, 4] >= np.partition(out[:, 4], len(out) - limit)[len(out) - limit]]
            kept.append(out)
        width = max(1, max(len(k) for k in kept))
        table = np.zeros((len(kept), width, 6), np.float32)
        table[..., 4] = -1.0
        for row, k in zip(table, kept):
            row[:len(k)] = k
        table = torch.from_numpy(table).to(dets.device)
        return {"boxes": table[..., :4], "scores": table[..., 4], "classes": table[..., 5].long()}

    def decode(self, output: Any, meta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, MAX_PER_IMAGE, 4) boxes x1, y1, x2, y2 and (N, MAX_PER_IMAGE, 2)
        scores: the detection score (-1: no box) and the 0-based class.
        ``output`` and ``meta`` as ``detections`` (2N rows: the flip test)."""
        det = self.decode_detections(output, meta)
        return det["boxes"], torch.stack([det["scores"], det["classes"].to(det["scores"])], 2)

    def flip_test(self, cfg) -> bool:
        """CornerNet's own switch, ``CORNERNET.FLIP_TEST`` (official ``test_flipped``)."""
        return bool(cfg.CORNERNET.FLIP_TEST)

    def loss(self, cfg) -> nn.Module:
        s = self.s
        return CornerNetLoss(s["PULL_WEIGHT"], s["PUSH_WEIGHT"], s["OFF_WEIGHT"], s["FOCAL_ALPHA"], s["FOCAL_BETA"])

    def heatmaps(self, outputs: Any) -> Optional[torch.Tensor]:
        """Per class the larger of the tl and br heatmaps: sigmoids of the last
        stage's logits, or an encoded target's values (it carries ``mask``)."""
        out = last_stage(outputs)
        heat = torch.maximum(out["tl_heat"], out["br_heat"])
        return heat if "mask" in out else torch.sigmoid(heat)


def get_codec(cfg) -> CornerNetCodec:
    extra = cfg.MODEL.EXTRA
    stride = 8 if extra.get("VARIANT", "hourglass104") == "squeeze" else 4
    if cfg.CORNERNET.SOFT_NMS not in ("official", "batched"):
        raise ValueError(f"CORNERNET.SOFT_NMS must be 'official' or 'batched', got {cfg.CORNERNET.SOFT_NMS!r}")
    w, h = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
    return CornerNetCodec(extra.get("NUM_CLASSES", 80), (w, h), ((w + 1) // stride, (h + 1) // stride),
                          {k: cfg.CORNERNET[k] for k in SETTINGS})
