"""Golden values of imgaug 0.3.0 for ``posezoo.datasets.strong_aug`` (CC-SSL's strong augmentation).

The cases (fixed parameters on a fixed image) are shared with
``tests/datasets/test_strong_aug.py``; the values come from running this file under a side
environment, never from the tests (which must not need imgaug)::

    python -m venv /tmp/imgaugvenv
    /tmp/imgaugvenv/bin/pip install "numpy<2" imgaug==0.3.0 opencv-python-headless scikit-image==0.20.0
    /tmp/imgaugvenv/bin/python tests/oracles/imgaug_strong_aug.py      # writes strong_aug_imgaug.json

scikit-image 0.20 keeps the shear of the 2019 releases imgaug 0.3.0 ran on (0.21 changed it).
Each augmenter is imgaug's own class with every random draw pinned: ``Fixed`` returns given
values from ``draw_samples``, so imgaug's arithmetic runs on known parameters.
"""
from __future__ import annotations

import base64
import json
import os
import sys

import numpy as np

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "strong_aug_imgaug.json")
HEIGHT, WIDTH = 18, 22
POINTS = [[0.0, 0.0], [10.5, 8.5], [21.0, 17.0], [3.25, 15.75], [18.0, 2.0]]

# affine: scale (x, y), translate (fraction of width, height), rotate, shear (deg), order, cval per channel
AFFINE = {
    "identityish": ((1.0, 1.0), (0.0, 0.0), 0.0, 0.0, 1, (0, 0, 0)),
    "rot_nearest": ((1.0, 1.0), (0.0, 0.0), 23.0, 0.0, 0, (10, 200, 30)),
    "full_bilinear": ((0.63, 1.41), (0.047, -0.031), -27.5, 17.0, 1, (255, 0, 128)),
    "full_nearest": ((1.37, 0.55), (-0.05, 0.05), 12.25, -19.5, 0, (7, 99, 250)),
    "shear_only": ((1.0, 1.0), (0.0, 0.0), 0.0, 20.0, 1, (1, 2, 3)),
}
NOISE_SEEDS = {"shared": (1, 1), "per_channel": (2, 3)}  # seed, channels of the noise map
BLUR = {"s1": 1.0, "s2_9": 2.9, "s3": 3.0, "s4_4": 4.4, "s5": 5.0}
CONTRAST = {"a0_5": (0.5,), "a1_37": (1.37,), "a2": (2.0,), "per_channel": (0.5, 1.21, 1.99)}


def input_image() -> np.ndarray:
    """A fixed uint8 (HEIGHT, WIDTH, 3) image with edges and the extremes 0 and 255."""
    image = np.random.RandomState(0).randint(0, 256, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    image[4:9, 5:14] = (250, 5, 128)
    image[0, 0], image[-1, -1] = 0, 255
    return image


def noise_map(name: str) -> np.ndarray:
    seed, channels = NOISE_SEEDS[name]
    return np.random.RandomState(seed).normal(0.0, 0.5 * 255, (HEIGHT, WIDTH, channels))


def encode(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array, np.uint8)
    return {"shape": list(array.shape), "uint8": base64.b64encode(array.tobytes()).decode()}


def decode(entry: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(entry["uint8"]), np.uint8).reshape(entry["shape"])


def load_golden() -> dict:
    with open(GOLDEN) as f:
        return json.load(f)


def main() -> None:
    import collections
    import collections.abc

    # imgaug 0.3.0 predates Python 3.10, which moved these names to collections.abc only
    for name in ("Iterable", "Sequence", "Mapping"):
        setattr(collections, name, getattr(collections.abc, name))
    import imgaug
    import imgaug.augmenters as iaa
    import imgaug.parameters as iap
    import skimage
    from imgaug.augmentables.kps import KeypointsOnImage

    class Fixed(iap.StochasticParameter):
        """draw_samples returns `values`, broadcast to the requested size."""

        def __init__(self, values):
            super().__init__()
            self.values = np.asarray(values, np.float64)

        def _draw_samples(self, size, random_state):
            return np.broadcast_to(self.values, size).copy()

    image = input_image()
    out = {"imgaug": imgaug.__version__, "skimage": skimage.__version__, "affine": {}, "noise": {}, "blur": {},
           "contrast": {}}
    for name, (scale, translate, rotate, shear, order, cval) in AFFINE.items():
        aug = iaa.Affine(scale={"x": scale[0], "y": scale[1]}, translate_percent={"x": translate[0], "y": translate[1]},
                         rotate=rotate, shear=shear, order=order, mode="constant")
        aug.cval = Fixed([cval])
        kps = KeypointsOnImage.from_xy_array(np.array(POINTS, np.float32), shape=image.shape)
        img_aug, kps_aug = aug(image=image.copy(), keypoints=kps)
        out["affine"][name] = {"image": encode(img_aug), "points": kps_aug.to_xy_array().astype(float).tolist()}
    for name in NOISE_SEEDS:
        noise = noise_map(name)
        aug = iaa.AddElementwise(value=Fixed(noise), per_channel=noise.shape[2] > 1)
        out["noise"][name] = encode(aug(image=image.copy()))
    for name, sigma in BLUR.items():
        out["blur"][name] = encode(iaa.GaussianBlur(sigma=sigma)(image=image.copy()))
    for name, alpha in CONTRAST.items():
        aug = iaa.ContrastNormalization(Fixed(alpha), per_channel=len(alpha) > 1)
        out["contrast"][name] = encode(aug(image=image.copy()))
    with open(GOLDEN, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {GOLDEN} (imgaug {imgaug.__version__}, scikit-image {skimage.__version__})", file=sys.stderr)


if __name__ == "__main__":
    main()
