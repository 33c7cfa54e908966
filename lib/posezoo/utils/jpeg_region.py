"""Region decoding of JPEG files for top-down crops (``DATASET.DECODE region``; docs/speed.md).

A top-down sample warps a 256x192 crop out of a 640x480 photo, and decoding the whole photo is about
two thirds of the official sample's time (deep-high-resolution-net.pytorch
``lib/dataset/JointsDataset.py:100-103``, ``cv2.imread``). libjpeg-turbo can stop decoding after the
last row a crop reads (``jpeg_skip_scanlines`` skips the inverse DCT of the rows above it, the
rows below are never read) and runs the inverse DCT, upsampling and colour conversion only on
the columns it reads (``jpeg_crop_scanline``). ``jpeg_region.c`` (posezoo's own) does that through
the system libjpeg-turbo (Debian ``libjpeg62-turbo-dev``), built on first use with the C compiler.

The pixels are the whole decode's: measured equal to ``cv2.imread(IMREAD_COLOR |
IMREAD_IGNORE_ORIENTATION)`` on every rectangle tried (tests/datasets/test_jpeg_region.py: 4:4:4,
4:2:2, 4:2:0, 4:1:1, 4:4:0 and grey, baseline and progressive, with and without restart markers,
odd sizes, the shared COCO photos). ``region_canvas`` puts them in an image-sized zero canvas at
their own place, so the warp runs with the unchanged matrix and reads the same values: the crop
is bit for bit the whole-image path's. A different libjpeg could decode differently, so
``library()`` checks a 4:2:0 image against ``cv2.imdecode`` once before it is used; without a
compiler, ``jpeglib.h`` or ``libjpeg``, or when that check fails, it logs one line and the datasets
decode whole images.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("jpeg_region.c")
#: J_COLOR_SPACE values decoded here (grey, YCbCr); others (CMYK, YCCK, Adobe RGB) go to the whole-image reader
_SPACES = (1, 3)
#: pixels of margin around the warp's source footprint: bilinear reads floor(x) and floor(x) + 1, and
#: OpenCV's warp rounds the mapped coordinates to 1/32 px
MARGIN = 2
_P, _U, _I, _L = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long


def _cache_dir() -> Path:
    return Path(os.environ.get("POSEZOO_CACHE", Path.home() / ".cache" / "posezoo"))


def _build() -> ctypes.CDLL:
    """The shared library, compiled once per source text into the cache directory (atomic rename,
    so DataLoader workers building at the same time never load a half-written file)."""
    source = SOURCE.read_bytes()
    target = _cache_dir() / f"jpeg_region_{hashlib.sha256(source).hexdigest()[:16]}.so"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler = os.environ.get("CC", "cc")
        with tempfile.TemporaryDirectory(dir=target.parent) as work:
            built = Path(work) / target.name
            run = subprocess.run([compiler, "-O2", "-shared", "-fPIC", str(SOURCE), "-o", str(built), "-ljpeg"],
                                 capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {(run.stderr.strip().splitlines() or [''])[0]}")
            os.replace(built, target)
    lib = ctypes.CDLL(str(target))
    lib.posezoo_jpeg_header.argtypes = [ctypes.c_char_p, _U, _P]
    lib.posezoo_jpeg_region.argtypes = [ctypes.c_char_p, _U, _I, _I, _I, _I, _I, _P, _L]
    return lib


def _self_check(lib: ctypes.CDLL) -> str:
    """'' when this libjpeg decodes a 4:2:0 image's region as OpenCV decodes the whole, else why not."""
    y, x = np.mgrid[0:37, 0:53]
    picture = np.stack([(x * 7 + y * 3) % 256, (x * x + y) % 256, (y * 11 + x * 5) % 256], -1).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                                  cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    whole = cv2.imdecode(encoded, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    data = encoded.tobytes()
    for x0, y0, x1, y1 in ((0, 0, 53, 37), (5, 9, 30, 20), (17, 3, 52, 36)):
        out = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        status = lib.posezoo_jpeg_region(data, len(data), x0, y0, x1, y1, 0, out.ctypes.data, out.strides[0])
        if status != 0 or not np.array_equal(out, whole[y0:y1, x0:x1]):
            return f"the system libjpeg decodes region {(x0, y0, x1, y1)} of a 4:2:0 test image unlike cv2.imdecode"
    return ""


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built decoder, or None (logged once) where it cannot be built or decodes unlike OpenCV."""
    try:
        lib = _build()
        reason = _self_check(lib)
    except Exception as err:  # no compiler, no jpeglib.h / libjpeg, an unloadable build: whole-image decoding
        reason = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
    if reason:
        logger.warning("posezoo: DATASET.DECODE region unavailable (%s); decoding whole images", reason)
        return None
    return lib


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG this decoder takes (grey or YCbCr), else None (not a JPEG, another
    colour layout, an unreadable header, or no decoder)."""
    lib = library()
    if lib is None or data[:2] != b"\xff\xd8":
        return None
    info = (ctypes.c_int * 4)()
    if lib.posezoo_jpeg_header(data, len(data), info) != 0 or info[3] not in _SPACES:
        return None
    return info[0], info[1]


def decode_region(data: bytes, x0: int, y0: int, x1: int, y1: int, rgb: bool, out: np.ndarray) -> bool:
    """Rows y0:y1 and columns x0:x1 of the JPEG `data` into `out` ((y1 - y0, x1 - x0, 3) uint8 whose
    rows may be strided, e.g. a view into a larger image), BGR or RGB; False where libjpeg failed or
    warned (the caller then decodes the whole image)."""
    lib = library()
    if lib is None or out.shape != (y1 - y0, x1 - x0, 3) or out.dtype != np.uint8 or out.strides[1:] != (3, 1):
        return False
    return lib.posezoo_jpeg_region(data, len(data), x0, y0, x1, y1, int(rgb), out.ctypes.data, out.strides[0]) == 0


def source_window(trans: np.ndarray, output_size: tuple[int, int], width: int, height: int
                  ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), the image pixels that ``cv2.warpAffine(image, trans, output_size, INTER_LINEAR)``
    can read: the box around the output corners mapped back to the image, MARGIN pixels wider,
    clipped to the image (empty when the crop lies outside it); the whole image for a matrix that is
    not finite."""
    (a, b, c), (d, e, f) = cv2.invertAffineTransform(np.asarray(trans, np.float64)).tolist()
    w, h = output_size
    corners = ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))
    xs = [a * x + b * y + c for x, y in corners]
    ys = [d * x + e * y + f for x, y in corners]
    if not all(math.isfinite(v) for v in xs + ys):
        return 0, 0, width, height
    x0 = min(max(math.floor(min(xs)) - MARGIN, 0), width)
    y0 = min(max(math.floor(min(ys)) - MARGIN, 0), height)
    x1 = min(max(math.ceil(max(xs)) + MARGIN + 1, 0), width)
    y1 = min(max(math.ceil(max(ys)) + MARGIN + 1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)


def region_canvas(data: bytes, width: int, height: int, trans: np.ndarray, output_size: tuple[int, int],
                  mirrored: bool, rgb: bool) -> np.ndarray | None:
    """An image-sized (height, width, 3) uint8 array holding the decoded pixels of the window that the
    warp with `trans` reads, zeros elsewhere (np.zeros: pages the window does not touch are never
    written); with `mirrored`, the pixels of the horizontally mirrored image (the official flip,
    ``image[:, ::-1]``) at their mirrored place. None where decoding failed."""
    canvas = np.zeros((height, width, 3), np.uint8)
    x0, y0, x1, y1 = source_window(trans, output_size, width, height)
    if x0 == x1 or y0 == y1:
        return canvas
    if not mirrored:
        return canvas if decode_region(data, x0, y0, x1, y1, rgb, canvas[y0:y1, x0:x1]) else None
    block = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    if not decode_region(data, width - x1, y0, width - x0, y1, rgb, block):
        return None
    cv2.flip(block, 1, dst=canvas[y0:y1, x0:x1])
    return canvas
