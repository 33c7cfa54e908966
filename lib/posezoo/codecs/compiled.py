"""Compiled CPU decode kernels for DARK, UDP and LPN's soft-argmax (``TEST.COMPILE``; docs/speed.md "Compiled decode kernels").

The kernels are C++ (``compiled_decode.cpp``, posezoo's own), built on first use by inductor's C++ toolchain
(``torch._inductor.codecache.CppCodeCache``: the compiler, ``-O3 -march=native``, OpenMP and the on-disk cache that
``torch.compile`` uses on a CPU), so they need no new dependency, only the C++ compiler that ``TEST.COMPILE``
needs anyway. Each one reads every map once, prefetching the next, and does the refinement while the map is in
cache: DARK's argmax, 13 blurred values, log and Taylor step; UDP Gaussian's whole-map blur fused with its
minimum and maximum; UDP offset's blur of only the rows that can hold the blurred maximum (a bound per row from
the raw row maxima). One vector type serves the AVX-512, AVX2 and scalar builds, all with fused multiply-adds, so
a result does not depend on the build (tested).

Why not ``torch.compile`` of the decode written in torch ops: inductor's CPU code for the gathered 15x15
windows vectorises along the 5-wide window axis with per-lane scratch gathers and index checks, 16 us per map
against 1.8 for the plain decode (measured, docs/speed.md).

Every kernel marks the maps it cannot vouch for (NaN maps; DARK steps its rounding bound does not trust; UDP
offset maps whose blurred maximum has a near tie) and the codecs decode those with the plain path, so results
stay within the plain path's 1e-3 px of the official code. Where no compiler is found or the build fails,
``library()`` logs one line and returns None, and the codecs use the plain path.
"""
from __future__ import annotations

import ctypes
import functools
import logging
from pathlib import Path

import cv2
import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("compiled_decode.cpp")
#: compiler flags on top of inductor's: no FMA contraction (DARK's float32 differences keep torch's roundings)
#: and loop vectorisation, which inductor turns off for its own generated code
EXTRA_FLAGS = ("-ffp-contract=off", "-ftree-loop-vectorize")

_P, _I, _D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double


def _build(source: str) -> ctypes.CDLL:
    from torch._inductor.codecache import CppCodeCache

    return CppCodeCache.load(source, device_type="cpu", extra_flags=EXTRA_FLAGS, needs_vec_isa=True)


def kernel_source(vector_bits: int = 512) -> str:
    """The kernels' C++ with the DARK rounding bound it shares with dark.py; ``vector_bits`` 256 or 32 builds the
    AVX2 or scalar path on a machine with wider vectors (tests)."""
    from .dark import MAX_ROUNDING_SHIFT

    return (f"#define MAX_SHIFT {MAX_ROUNDING_SHIFT!r}\n#define POSEZOO_VECTOR_BITS {int(vector_bits)}\n"
            + SOURCE.read_text())


@functools.cache
def library() -> ctypes.CDLL | None:
    """The built kernels, or None (logged once) where they cannot be built here."""
    try:
        return _build(kernel_source())
    except Exception as err:  # no compiler, a failed build or an inductor without this API: the plain path
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        logger.warning("posezoo: compiled decode unavailable (%s: %s); decoding with the plain path",
                       type(err).__name__, reason)
        return None


def usable(maps: torch.Tensor, min_size: int) -> bool:
    """Whether the kernels take ``maps``: float32 on the CPU, no autograd, both sides >= ``min_size``, and the
    library built."""
    return (maps.device.type == "cpu" and maps.dtype == torch.float32 and not maps.requires_grad
            and maps.dim() >= 2 and min(maps.shape[-2:]) >= min_size and maps.numel() > 0
            and library() is not None)


@functools.cache
def _taps(kernel: int, dtype: torch.dtype) -> torch.Tensor:
    """``cv2.getGaussianKernel(kernel, 0)`` in float64 (CV_64F) or float32 (CV_32F, OpenCV's float32 blur)."""
    ktype = cv2.CV_64F if dtype == torch.float64 else cv2.CV_32F
    return torch.from_numpy(cv2.getGaussianKernel(kernel, 0, ktype=ktype)[:, 0].copy())


def _outputs(count: int) -> tuple[torch.Tensor, ...]:
    return (torch.empty(count, dtype=torch.float32), torch.empty(count, dtype=torch.int64),
            torch.empty(count, 2, dtype=torch.float64), torch.empty(count, dtype=torch.uint8))


def dark_peaks(maps: torch.Tensor, kernel: int, threads: int = 1
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DARK on (L, H, W) float32 CPU ``maps``: the raw maxima (L,), their flat argmax (L,), the refined
    heatmap coordinates (L, 2) float64 and which maps (L,) bool the plain path must redo (``dark.dark_refine``
    in its double tier, same bound)."""
    lib = library()
    maps = maps.contiguous()
    l, h, w = maps.shape
    maxval, index, coords, redo = _outputs(l)
    taps = _taps(kernel, torch.float64)
    lib.dark_decode(_P(maps.data_ptr()), _I(l), _I(h), _I(w), _I(kernel), _P(taps.data_ptr()),
                    _P(maxval.data_ptr()), _P(index.data_ptr()), _P(coords.data_ptr()), _P(redo.data_ptr()),
                    _I(threads))
    return maxval, index, coords, redo.bool()


def udp_gaussian(maps: torch.Tensor, kernel: int, threads: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UDP-Pose master's Gaussian decode on (L, H, W) float32 CPU ``maps`` (``udp.udp_taylor_refine`` with
    rescale): the raw maxima (L,), the refined heatmap coordinates (L, 2) float64, and the maps (L,) bool to
    redo (NaN maps)."""
    lib = library()
    maps = maps.contiguous()
    l, h, w = maps.shape
    maxval, index, coords, redo = _outputs(l)
    taps32, taps = _taps(kernel, torch.float32), _taps(kernel, torch.float64)
    lib.udp_gaussian_decode(_P(maps.data_ptr()), _I(l), _I(h), _I(w), _I(kernel), _P(taps32.data_ptr()),
                            _P(taps.data_ptr()), _P(maxval.data_ptr()), _P(index.data_ptr()),
                            _P(coords.data_ptr()), _P(redo.data_ptr()), _I(threads))
    return maxval, coords, redo.bool()


def udp_offset(output: torch.Tensor, kernel: int, offset_kernel: int, kpd: float, rtol: float, threads: int = 1
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UDP-Pose master's offset decode on an (N, 3K, H, W) float32 CPU ``output``: the blurred classification
    maxima (N, K), the heatmap coordinates (N, K, 2) float64 (argmax + blurred offsets x ``kpd``), and the maps
    (N, K) bool to redo (NaN maps, a near tie of the blurred maximum within ``rtol``)."""
    lib = library()
    output = output.contiguous()
    n, c, h, w = output.shape
    k = c // 3
    maxval, _, coords, redo = _outputs(n * k)
    taps32, taps = _taps(kernel, torch.float32), _taps(offset_kernel, torch.float64)
    lib.udp_offset_decode(_P(output.data_ptr()), _I(n), _I(k), _I(h), _I(w), _I(kernel), _P(taps32.data_ptr()),
                          _I(offset_kernel), _P(taps.data_ptr()), _D(kpd), _D(rtol), _P(maxval.data_ptr()),
                          _P(coords.data_ptr()), _P(redo.data_ptr()), _I(threads))
    return maxval.reshape(n, k), coords.reshape(n, k, 2), redo.bool().reshape(n, k)


#: softmax weights below e^-SOFT_ARGMAX_CUTOFF of the maximum's are left out: together they move a 64x48 map's
#: point by less than 8e-13 px (compiled_decode.cpp soft_argmax_decode)
SOFT_ARGMAX_CUTOFF = 40.0


def soft_argmax(maps: torch.Tensor, beta: float, threads: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """LPN's beta-soft-argmax of (L, H, W) float32 CPU ``maps``: the expected (x, y) (L, 2) float64 and the maps
    (L,) bool to redo (NaN or infinite maxima)."""
    lib = library()
    maps = maps.contiguous()
    l, h, w = maps.shape
    coords, redo = torch.empty(l, 2, dtype=torch.float64), torch.empty(l, dtype=torch.uint8)
    lib.soft_argmax_decode(_P(maps.data_ptr()), _I(l), _I(h), _I(w), _D(beta), _D(SOFT_ARGMAX_CUTOFF),
                           _P(coords.data_ptr()), _P(redo.data_ptr()), _I(threads))
    return coords, redo.bool()
