"""Stage 6: peak CUDA memory (on CUDA) and the process's peak RSS."""
from __future__ import annotations

import resource
import sys

import torch

from .common import say


def peak_memory(device: torch.device, tag: str = "[6/6]") -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mb = rss / 2 ** 20 if sys.platform == "darwin" else rss / 2 ** 10
    out = {"host_peak_rss_mb": rss_mb}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
        out["peak_memory_kind"] = "cuda max_memory_allocated"
    else:
        out["peak_memory_mb"] = rss_mb
        out["peak_memory_kind"] = "process peak RSS"
    say(f"{tag} peak memory: {out['peak_memory_mb']:.0f} MiB ({out['peak_memory_kind']}); "
        f"host peak RSS {rss_mb:.0f} MiB")
    return out
