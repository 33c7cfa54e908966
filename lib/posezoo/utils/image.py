"""Reading images, with the one rule every reader follows (datasets, API, tools):
a missing, undecodable or truncated file is an ``ImageReadError`` naming it,
which the datasets may turn into a counted skip (``DATASET.SKIP_CORRUPT_IMAGES``)."""
from __future__ import annotations

import os

import cv2
import numpy as np


class ImageReadError(OSError):
    """An image that is missing or cannot be decoded."""


SKIP_HINT = "set DATASET.SKIP_CORRUPT_IMAGES True to skip and count such images"


def truncated(path: str) -> bool:
    """Whether a JPEG or PNG file was cut short, from its first and last bytes
    only (no second decode): libjpeg decodes a truncated JPEG partially and only
    warns on stderr, so a half-downloaded image would otherwise be scored. A
    JPEG must hold its end-of-image marker FFD9 near its end (trailing padding
    allowed), a PNG its IEND chunk; other formats are left to the decoder."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64))
            tail = f.read()
    except OSError:
        return False  # missing: the decoder's error names it
    return truncated_bytes(head, tail)


def truncated_bytes(head: bytes, tail: bytes) -> bool:
    """``truncated`` from a file's first 8 and last 64 bytes (a caller that has read the file already)."""
    if head[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in tail
    if head == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail[-12:]
    return False


def read_image(path: str, color_rgb: bool) -> np.ndarray:
    """An image as uint8 HWC (BGR, or RGB with `color_rgb`); ImageReadError
    naming the file when it is missing, undecodable or truncated."""
    if truncated(path):
        raise ImageReadError(f"image {path} is truncated (its end marker is missing: a partial download?); "
                             f"{SKIP_HINT}")
    # OpenCV >= 4.10 decodes to RGB directly (the same pixels as BGR + cvtColor, one full-image pass less)
    rgb = color_rgb and hasattr(cv2, "IMREAD_COLOR_RGB")
    image = cv2.imread(path, (cv2.IMREAD_COLOR_RGB if rgb else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ImageReadError(f"cannot read image {path} (missing or corrupt); {SKIP_HINT}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color_rgb and not rgb else image
