"""Appearance randomisation of training crops (``DATASET.COLOR_JITTER``,
``GRAY_PROB``, ``BLUR_PROB``/``BLUR_SIGMA``, ``NOISE_STD``; all off by default).

Learning from rendered data leans on strong appearance augmentation of the
source so that a model cannot key on the renderer's colours: CC-SSL trains its
synthetic animals with colour and blur augmentation (Mu et al., CVPR 2020,
Sec. 4.1), domain randomisation in general (Tobin et al., IROS 2017) randomises
textures and colours. Here every top-down training crop
(``JointsDataset.__getitem__``) gets, in this order and each with its own draw
from the sample's generator:

1. colour jitter of strength ``s``: brightness, contrast and saturation
   factors uniform in ``[1 - s, 1 + s]``, a hue rotation uniform in
   ``[-s / 2, s / 2]`` of the colour circle (torchvision ``ColorJitter``'s
   parameterisation with all four set to ``s``, hue capped at 0.5);
2. with probability ``GRAY_PROB`` the luma (ITU-R BT.601) in all three channels;
3. with probability ``BLUR_PROB`` a Gaussian blur of sigma uniform in
   ``(0, BLUR_SIGMA]`` crop pixels;
4. Gaussian pixel noise of std uniform in ``[0, NOISE_STD]`` (0-255 units).

Geometry (joints, target) is untouched. Strength 0 everywhere is the identity
and draws nothing, so the default pipeline and its random stream are today's.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["AppearanceJitter"]

_LUMA_RGB = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class AppearanceJitter:
    """The crop randomisation of the module docstring; ``rgb`` says the
    channel order (``DATASET.COLOR_RGB``) for the luma and hue conversions."""

    color_jitter: float = 0.0
    gray_prob: float = 0.0
    blur_prob: float = 0.0
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    rgb: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.color_jitter <= 1.0:
            raise ValueError(f"DATASET.COLOR_JITTER = {self.color_jitter}: expected a strength in [0, 1]")
        for name, p in (("GRAY_PROB", self.gray_prob), ("BLUR_PROB", self.blur_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"DATASET.{name} = {p}: expected a probability in [0, 1]")
        if self.blur_sigma < 0 or self.noise_std < 0:
            raise ValueError(f"DATASET.BLUR_SIGMA ({self.blur_sigma}) and NOISE_STD ({self.noise_std}) must be >= 0")
        if self.blur_prob > 0 and self.blur_sigma == 0:
            raise ValueError("DATASET.BLUR_PROB > 0 needs DATASET.BLUR_SIGMA > 0 (the largest blur, crop pixels)")

    @classmethod
    def from_cfg(cls, cfg) -> "AppearanceJitter":
        d = cfg.DATASET
        return cls(float(d.COLOR_JITTER), float(d.GRAY_PROB), float(d.BLUR_PROB), float(d.BLUR_SIGMA),
                   float(d.NOISE_STD), bool(d.COLOR_RGB))

    @property
    def active(self) -> bool:
        return bool(self.color_jitter or self.gray_prob or self.blur_prob or self.noise_std)

    def __call__(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``crop`` (H, W, 3), uint8 (0-255) or float (0-1), randomised; the
        same array back when nothing is active."""
        if not self.active:
            return crop
        peak = 255.0 if crop.dtype == np.uint8 else 1.0
        x = crop.astype(np.float32) / peak
        luma = _LUMA_RGB if self.rgb else _LUMA_RGB[::-1]
        s = self.color_jitter
        if s:
            brightness, contrast, saturation = (float(v) for v in rng.uniform(1 - s, 1 + s, size=3))
            hue = float(rng.uniform(-s / 2, s / 2))
            x = x * brightness
            mean = float((x @ luma).mean())
            x = (x - mean) * contrast + mean
            gray = (x @ luma)[..., None]
            x = np.clip((x - gray) * saturation + gray, 0.0, 1.0)
            hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV if self.rgb else cv2.COLOR_BGR2HSV)
            hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * hue, 360.0)
            x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB if self.rgb else cv2.COLOR_HSV2BGR)
        if self.gray_prob and rng.random() < self.gray_prob:
            x = np.repeat((x @ luma)[..., None], 3, axis=2)
        if self.blur_prob and rng.random() < self.blur_prob:
            sigma = self.blur_sigma * (1.0 - float(rng.random()))  # (0, BLUR_SIGMA]
            x = cv2.GaussianBlur(x, (0, 0), sigma)
        if self.noise_std:
            x = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(0, self.noise_std) / 255.0)
        x = np.clip(x, 0.0, 1.0)
        if crop.dtype == np.uint8:
            return np.rint(x * 255.0).astype(np.uint8)
        return x.astype(crop.dtype)
