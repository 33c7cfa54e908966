"""The stacked-hourglass releases' own Gaussian heatmap conventions (``TEST.HEATMAP_DECODE``
``bearpaw`` or ``princeton``; Newell et al., ECCV 2016, as bearpaw/pytorch-pose @edc7aec and
princeton-vl/pytorch_stacked_hourglass @ceedc14 implement it).

Both releases differ from the MSRA Gaussian codec (``codecs/gaussian.py``) in ways that move
every joint by up to a heatmap pixel, so a release checkpoint only gives its published PCKh
when decoded its own way:

- Targets: the Gaussian sits at the *truncated* heatmap position (bearpaw
  ``pose/utils/imutils.py:draw_labelmap`` after ``transforms.transform``'s ``astype(int)``;
  princeton ``data/MPII/dp.py:GenerateHeatmap``: ``int(x)``, a 9 x 9 window for sigma 1
  (3 sigma + 1 each side), nothing drawn when that position is off the map or x <= 0).
- Decode, bearpaw ``pose/utils/evaluation.py:final_preds``: 1-based argmax (ties: the first),
  a quarter pixel toward the larger neighbour (none on a tie) where all four neighbours are
  inside, +0.5, then ``transforms.transform(..., invert=1)``: the inverse of ``get_transform``
  applied to ``pt - 1``, truncated towards zero, + 1.
- Decode, princeton ``test.py:inference``/``post_process`` and ``utils/group.py:HeatmapParser``:
  the averaged flip maps are clipped at 1, a 3 x 3 max-pool NMS keeps local maxima, the first
  maximum wins, ±0.25 px towards the larger neighbour *with no zero case* (a tie steps back) and
  neighbours clamped at the border, +0.5, all only where the maximum is > 0 (else the raw integer
  position); then x 4 to the input, princeton's crop-to-input matrix, ``utils/img.py:transform``
  inverted, truncated towards zero.
- Crops (``crop_image``): an integer pixel box pasted on zeros and resized with
  ``cv2.resize`` (bearpaw ``transforms.crop``, which first shrinks the whole image when
  ``scale * 200 / res >= 2``; princeton ``utils/img.py:crop``), not an affine warp; the
  joints map with the releases' ``get_transform`` (``crop_matrix``, bearpaw's one joint at a
  time from its 1-based centre: ``crop_points``).
- Rounding: bearpaw's centres are float32 tensors and its training scale and rotation float32
  torch scalars; a float32 scale or rotation here gets its float32 arithmetic in
  ``release_transform`` and ``bearpaw_crop`` (``datasets/mpii.py`` ``person_box`` moves its centre
  in float32 too), bit for bit with bearpaw's code (``tests/codecs/test_hourglass_float32.py``).
- Both use the annotations' 1-based MATLAB centre as a 0-based pixel, and never convert their
  predictions back. posezoo's datasets hold 0-based centres (MATLAB - 1) and add 1 before
  scoring against the 1-based ground truth, so this codec decodes around ``center + 1`` and
  returns bearpaw's 1-based result - 1 (bearpaw) or princeton's result - 1 (princeton): the
  numbers the release scores, to the bit (``tests/codecs/test_codec_hourglass_release.py``).

Deliberate differences: the release code handles square maps only (``get_transform`` uses the
same resolution for both axes); here x uses the width and y the height. princeton derives sigma
from the map (output_res / 64); here it is ``MODEL.SIGMA`` (the release YAMLs set 1 for 64 px).
princeton clips at 1 because its test always flips; here the clip is part of its decode, flip
or not. The flip test sums the two maps for bearpaw (``example/main.py:285``: ``score_map +=
flip_output``; ``flip_weight`` 1) and averages them for princeton. The releases' training augmentation is ``datasets/release_augment.py``
(``DATASET.AUGMENTATION``).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..utils.transforms import PIXEL_STD
from .base import single_threaded_on_cpu
from .gaussian import GaussianHeatmapCodec, argmax_rows, get_max_preds, quarter_offset

RELEASES = ("bearpaw", "princeton")


def release_inverse(points: torch.Tensor, center: torch.Tensor, scale: torch.Tensor, res: Sequence[int]
                    ) -> torch.Tensor:
    """(N, K, 2) points on a ``res`` (w, h) grid -> image pixels, untruncated, with the float
    operations of the releases' ``transform(pt, c, s, res, invert=1)``: ``np.linalg.inv`` of
    ``get_transform``'s diagonal matrix holds ``1 / a`` and ``-(b * (1 / a))`` (LAPACK multiplies
    by the reciprocal pivot), and the product is ``(1 / a) * p + that`` (checked bit for bit on
    valid.h5's boxes)."""
    h = scale.to(points.dtype) * PIXEL_STD  # (N, 2): box width and height in pixels
    size = torch.as_tensor(res, dtype=points.dtype, device=points.device)
    a = size / h
    b = size * (-center.to(points.dtype) / h + 0.5)
    inv_a = 1 / a
    return inv_a[:, None, :] * points + (-(b * inv_a))[:, None, :]


def princeton_peaks(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """princeton ``HeatmapParser.calc`` + ``adjust`` on (N, K, H, W) maps (already clipped):
    heatmap coordinates (N, K, 2) and the NMS'd maximum (N, K, 1). Where the maximum is > 0:
    the first maximum + (±0.25 towards the strictly larger clamped neighbour, else -0.25) + 0.5;
    elsewhere the integer position of the first maximum of the NMS'd map."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n * k, 1, h, w)
    kept = flat * (F.max_pool2d(flat, 3, 1, 1) == flat).to(flat.dtype)
    val, idx = argmax_rows(kept.reshape(n * k, h * w))
    x, y = idx % w, torch.div(idx, w, rounding_mode="floor")
    maps = heatmaps.reshape(n * k, h * w)

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return maps.gather(1, (yy * w + xx).unsqueeze(1)).squeeze(1)

    step_x = torch.where(at(y, (x + 1).clamp(max=w - 1)) > at(y, (x - 1).clamp(min=0)), 0.25, -0.25)
    step_y = torch.where(at((y + 1).clamp(max=h - 1), x) > at((y - 1).clamp(min=0), x), 0.25, -0.25)
    coords = torch.stack([x, y], dim=1).to(torch.float64)
    adjusted = coords + torch.stack([step_x, step_y], dim=1).to(torch.float64) + 0.5
    coords = torch.where((val > 0).unsqueeze(1), adjusted, coords)
    return coords.reshape(n, k, 2), val.reshape(n, k, 1)


def _torch_f32_over(value: float, tensor: np.float32) -> np.float32:
    """``value / tensor`` for a Python number over a float32 torch scalar: torch's ``__rtruediv__`` is
    ``tensor.reciprocal() * value``, both in float32."""
    return (np.float32(1) / tensor) * np.float32(value)


def release_transform(center: Sequence[float], scale: float, res: Sequence[int], rot: float = 0.0) -> np.ndarray:
    """The releases' ``get_transform`` (bearpaw ``pose/utils/transforms.py``, princeton
    ``utils/img.py``, identical): 3x3 image -> ``res`` grid, box height 200 x ``scale`` px,
    rotated by ``-rot`` degrees about the grid centre. ``res`` is (w, h); like the releases'
    it scales x by ``res[1]`` and y by ``res[0]`` (square grids only, in both).

    A float32 ``scale`` or ``rot`` stands for bearpaw's training draws, float32 torch scalars: the
    entries are then computed as torch computes them in ``get_transform`` (each Python operand
    rounded to float32, each operation in float32, a Python number over a tensor as its reciprocal
    times the number, ``np.sin`` / ``np.cos`` in float32), then held in float64 as there."""
    if isinstance(scale, np.float32):
        h = np.float32(200) * scale
        t = np.array([[_torch_f32_over(res[1], h), 0.0,
                       np.float32(res[1]) * (_torch_f32_over(-float(center[0]), h) + np.float32(0.5))],
                      [0.0, _torch_f32_over(res[0], h),
                       np.float32(res[0]) * (_torch_f32_over(-float(center[1]), h) + np.float32(0.5))],
                      [0.0, 0.0, 1.0]], dtype=np.float64)
    else:
        h = 200 * scale
        t = np.array([[float(res[1]) / h, 0.0, res[1] * (-float(center[0]) / h + 0.5)],
                      [0.0, float(res[0]) / h, res[0] * (-float(center[1]) / h + 0.5)], [0.0, 0.0, 1.0]])
    if rot != 0:
        rad = (-rot * np.float32(np.pi) / np.float32(180) if isinstance(rot, np.float32)
               else -rot * np.pi / 180)
        sn, cs = np.sin(rad), np.cos(rad)
        rot_mat = np.array([[cs, -sn, 0.0], [sn, cs, 0.0], [0.0, 0.0, 1.0]])
        t_mat = np.eye(3)
        t_mat[0, 2], t_mat[1, 2] = -res[1] / 2, -res[0] / 2
        t_inv = t_mat.copy()
        t_inv[:2, 2] *= -1
        t = np.dot(t_inv, np.dot(rot_mat, np.dot(t_mat, t)))
    return t


def _box_corner(pt: Sequence[float], center: Sequence[float], scale: float, res: Sequence[int], one_based: bool
                ) -> np.ndarray:
    """The releases' ``transform(pt, c, s, res, invert=1)`` of one grid point, truncated:
    bearpaw takes ``pt - 1`` and adds 1 back (``one_based``), princeton neither."""
    t = np.linalg.inv(release_transform(center, scale, res))
    shift = 1 if one_based else 0
    return np.dot(t, np.array([pt[0] - shift, pt[1] - shift, 1.0]))[:2].astype(int) + shift


def _paste_box(image: np.ndarray, ul: np.ndarray, br: np.ndarray, swap_reversed: bool) -> np.ndarray:
    """The image inside the integer box [ul, br) on a zero float64 canvas (the releases' ``crop``
    body); bearpaw swaps a reversed x range (``swap_reversed``), princeton does not."""
    canvas = np.zeros((br[1] - ul[1], br[0] - ul[0]) + image.shape[2:])
    new_x = [max(0, -ul[0]), min(br[0], image.shape[1]) - ul[0]]
    new_y = [max(0, -ul[1]), min(br[1], image.shape[0]) - ul[1]]
    old_x = [max(0, ul[0]), min(image.shape[1], br[0])]
    old_y = [max(0, ul[1]), min(image.shape[0], br[1])]
    if swap_reversed and new_x[1] < new_x[0]:
        new_x, old_x = new_x[::-1], old_x[::-1]
    if new_x[1] > new_x[0] and new_y[1] > new_y[0]:
        canvas[new_y[0]:new_y[1], new_x[0]:new_x[1]] = image[old_y[0]:old_y[1], old_x[0]:old_x[1]]
    return canvas


def bearpaw_crop(image: np.ndarray, center: Sequence[float], scale: float, res: Sequence[int], rot: float = 0.0
                 ) -> np.ndarray:
    """bearpaw ``pose/utils/transforms.py:crop`` of an HWC uint8 RGB image, float32 on [0, 1]:
    ``load_image``'s /255 (skipped, as there, when no pixel exceeds 1), the whole image first
    shrunk by ``sf = scale * 200 / res`` when sf >= 2 (``cv2.resize``; the centre divided in
    float32, bearpaw's centres being float32 tensors), the integer box of ``transform(...,
    invert=1)`` pasted on zeros (padded and turned by ``imutils.rotate`` when ``rot``), resized
    to ``res`` (``cv2.resize``, bilinear)."""
    img = image.astype(np.float32)
    if img.max() > 1:
        img /= np.float32(255)
    center = np.asarray(center, dtype=np.float32)
    ht, wd = img.shape[0], img.shape[1]
    drawn = isinstance(scale, np.float32)  # a training draw: bearpaw's float32 torch arithmetic
    sf = scale * np.float32(200) / np.float32(res[0]) if drawn else scale * 200.0 / res[0]

    def over(value: int) -> float:  # value / sf, a Python int over sf
        return _torch_f32_over(value, sf) if drawn else value / sf

    if sf >= 2:
        new_size = int(np.floor(over(max(ht, wd))))
        if new_size < 2:
            return np.zeros((res[0], res[1]) + img.shape[2:], np.float32)
        img = cv2.resize(img, dsize=(int(np.floor(over(wd))), int(np.floor(over(ht)))), interpolation=cv2.INTER_LINEAR)
        center = center * np.float32(1.0) / np.float32(sf)
        scale = scale / sf
    ul = _box_corner([0, 0], center, scale, res, one_based=True)
    br = _box_corner(res, center, scale, res, one_based=True)
    pad = int(np.linalg.norm(br - ul) / 2 - float(br[1] - ul[1]) / 2)
    if rot != 0:
        ul, br = ul - pad, br + pad
    canvas = _paste_box(img, ul, br, swap_reversed=True)
    if rot != 0:  # imutils.rotate: about (w // 2, h // 2), same size
        hc, wc = canvas.shape[:2]
        canvas = cv2.warpAffine(canvas, cv2.getRotationMatrix2D((wc // 2, hc // 2), rot, 1.0), (wc, hc))
        canvas = canvas[pad:-pad, pad:-pad]
    return cv2.resize(canvas, dsize=(res[0], res[1]), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def princeton_base_crop(image: np.ndarray, center: Sequence[float], scale: float, res: Sequence[int]
                        ) -> np.ndarray:
    """princeton ``utils/img.py:crop``: the integer box of ``transform(..., invert=1)`` around the
    1-based ``center`` (used as a 0-based pixel) pasted on zeros and ``cv2.resize``d to ``res``,
    float64 on [0, 255]."""
    ul = _box_corner([0, 0], center, scale, res, one_based=False)
    br = _box_corner(res, center, scale, res, one_based=False)
    return cv2.resize(_paste_box(image, ul, br, swap_reversed=False), (res[0], res[1]))


def princeton_crop(image: np.ndarray, center: Sequence[float], scale: float, res: Sequence[int], rot: float = 0.0
                   ) -> np.ndarray:
    """princeton ``utils/img.py:crop`` of an HWC uint8 RGB image (integer box of ``transform(...,
    invert=1)`` pasted on zeros, ``cv2.resize`` to ``res``, float64), then ``test.py``'s / 255 and
    the network's float32; with ``rot``, ``data/MPII/dp.py``'s turn of the crop about its centre
    (``cv2.warpAffine`` of ``get_transform``) before the / 255."""
    crop = princeton_base_crop(image, center, scale, res)
    if rot != 0:
        mat = release_transform((res[0] / 2, res[1] / 2), max(res) / 200, res, rot)[:2]
        crop = cv2.warpAffine(crop, mat, (res[0], res[1]))
    return (crop / 255).astype(np.float32)


def princeton_input_matrix(image_size: Sequence[int]) -> np.ndarray:
    """princeton ``test.py:post_process``'s input-crop -> network-input 2x3 matrix, ``pinv`` of
    ``get_transform((w/2, h/2), max(w, h)/200, (w, w))``: the identity for 256 x 256."""
    w, h = float(image_size[0]), float(image_size[1])
    hs = 200 * (max(w, h) / 200)
    t = np.array([[w / hs, 0, w * (-(w / 2) / hs + 0.5)], [0, w / hs, w * (-(h / 2) / hs + 0.5)], [0, 0, 1]])
    return np.linalg.pinv(t)[:2]


class HourglassReleaseCodec(GaussianHeatmapCodec):
    """Gaussian heatmaps encoded and decoded as bearpaw's or princeton's release does
    (module docstring). ``release``: ``"bearpaw"`` or ``"princeton"``."""

    def __init__(self, image_size: Sequence[int], heatmap_size: Sequence[int], sigma: float, release: str):
        if release not in RELEASES:
            raise ValueError(f"TEST.HEATMAP_DECODE = {release!r}: expected msra or mmpose (codecs/gaussian.py) or a "
                             f"stacked-hourglass release, {' or '.join(RELEASES)}")
        super().__init__(image_size, heatmap_size, sigma, post_process=True, shift_heatmap=False)
        self.release = release
        self.flip_weight = 1.0 if release == "bearpaw" else 0.5
        self.input_matrix = princeton_input_matrix(image_size)

    def crop_matrix(self, center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int]
                    ) -> np.ndarray:
        """Image -> crop 2x3 for the joints: the releases' ``get_transform``. bearpaw's is built from its
        1-based centre (``center + 1``) and maps 1-based joints (``crop_points`` adds the 1), as
        ``transform`` does there; princeton's from the 0-based pair (the same crop position). The scale
        and rotation keep their dtype: bearpaw's float32 training draws give its float32 arithmetic."""
        if self.release == "bearpaw":
            return release_transform(np.asarray(center, np.float64) + 1, scale[1], output_size, rotation)[:2]
        return release_transform(center, float(scale[1]), output_size, rotation)[:2]

    def crop_points(self, points: np.ndarray, trans: np.ndarray) -> np.ndarray:
        """bearpaw ``transform(tpts + 1, c, s, res, rot=r)`` without its truncation: each 0-based joint as
        bearpaw's 1-based float32 one, ``(pt + 1) - 1`` in float32, then ``np.dot`` with the 3x3 matrix,
        one joint at a time as there (a batched product may round otherwise). Exact for whole-pixel
        annotations (MPII's), whose 0-based float32 value plus 1 is bearpaw's. princeton: the affine map."""
        if self.release != "bearpaw":
            return super().crop_points(points, trans)
        t = np.vstack([trans, [0.0, 0.0, 1.0]])
        one = np.float32(1)
        out = np.empty((len(points), 2))
        for i, (x, y) in enumerate(np.asarray(points, np.float64)):
            pt = (np.float32(x + 1) + one) - one, (np.float32(y + 1) + one) - one
            out[i] = np.dot(t, np.array([pt[0], pt[1], 1.0]))[:2]
        return out

    def crop_image(self, image: np.ndarray, center: np.ndarray, scale: np.ndarray, rotation: float,
                   output_size: Sequence[int]) -> np.ndarray:
        """The release's own crop (``bearpaw_crop`` / ``princeton_crop``) of an RGB uint8 image around
        the 1-based centre used as a 0-based pixel (``center + 1``), float32 on [0, 1]; bearpaw's with
        the scale's dtype (a float32 training draw: float32 arithmetic)."""
        if self.release == "bearpaw":
            return bearpaw_crop(image, np.asarray(center, dtype=np.float64) + 1, scale[1], output_size, rotation)
        return princeton_crop(image, np.asarray(center, dtype=np.float64) + 1, float(scale[1]), output_size, rotation)

    def encode(self, joints: np.ndarray, joints_vis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joints in crop pixels (K, >=2) and labelled flags (K, >=1) -> target (K, H, W) and
        weight (K, 1) float32, the Gaussian drawn at the truncated heatmap position (bearpaw:
        ``draw_labelmap``, window ±3 sigma, weight 0 when it misses the map; princeton:
        ``GenerateHeatmap``, window ±(3 sigma + 1), nothing drawn and weight 0 when the position
        is off the map or x <= 0)."""
        stride = self.image_size / self.heatmap_size
        pos = np.asarray(joints, dtype=np.float64)[:, :2] / stride
        if self.release == "bearpaw":
            size = 6 * self.sigma + 1
            return self.draw(np.trunc(pos).astype(np.int64), joints_vis, self.sigma * 3, size, size // 2, np.float64)
        w, h = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        mu = np.trunc(pos).astype(np.int64)
        on_map = (pos[:, 0] > 0) & (mu[:, 0] >= 0) & (mu[:, 1] >= 0) & (mu[:, 0] < w) & (mu[:, 1] < h)
        vis = np.asarray(joints_vis, dtype=np.float32)[:, :1] * on_map[:, None]
        return self.draw(mu, vis, self.sigma * 3 + 1, 6 * self.sigma + 3, 3 * self.sigma + 1, np.float64)

    @single_threaded_on_cpu
    def decode(self, output: torch.Tensor, meta) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, H, W) heatmaps + ``meta['center']``/``['scale']`` (N, 2), posezoo's 0-based
        centres -> image coordinates (N, K, 2) float64 (integers, 0-based) and scores (N, K, 1)."""
        heatmaps = output.detach()
        device = heatmaps.device
        center = meta["center"].to(device, torch.float64) + 1  # the MATLAB centre, used as 0-based
        scale = meta["scale"].to(device, torch.float64)
        size = (int(heatmaps.shape[3]), int(heatmaps.shape[2]))
        if self.release == "bearpaw":
            # get_preds: 1-based argmax, (0, 0) where the maximum is not positive (-1 here, 0-based)
            coords, maxvals = get_max_preds(heatmaps)
            coords = torch.where(maxvals > 0, coords, -1.0).to(torch.float64)
            coords = quarter_offset(heatmaps, coords, first=1) + 0.5  # its 1 < px < W on 1-based px
            preds = torch.trunc(release_inverse(coords, center, scale, size))  # transform's pt - 1, + 1, - 1
            return preds, maxvals
        heatmaps = heatmaps.clamp(max=1)
        coords, maxvals = princeton_peaks(heatmaps)
        m = torch.as_tensor(self.input_matrix, dtype=torch.float64, device=device)
        stride = torch.as_tensor(self.image_size / self.heatmap_size, dtype=torch.float64, device=device)
        inp = coords * stride
        inp = torch.stack([inp[..., 0] * m[0, 0] + inp[..., 1] * m[0, 1] + m[0, 2],
                           inp[..., 0] * m[1, 0] + inp[..., 1] * m[1, 1] + m[1, 2]], dim=2)
        res = (int(self.image_size[0]), int(self.image_size[1]))
        return torch.trunc(release_inverse(inp, center, scale, res)) - 1, maxvals


def get_codec(cfg) -> HourglassReleaseCodec:
    return HourglassReleaseCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA,
                                 cfg.TEST.HEATMAP_DECODE)
