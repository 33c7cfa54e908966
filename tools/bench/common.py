"""Small pieces every benchmark stage uses: timing, printing, the mismatch error."""
from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable

import numpy as np
import torch

MAX_DECODE_PX_DIFF = 1e-3


class ReferenceMismatch(RuntimeError):
    """A vectorised function disagrees with its loop reference (or the official code)."""


def make_sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(fn, reps: int, sync=lambda: None) -> float:
    """Seconds for `reps` calls of fn (device work included)."""
    sync()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return time.perf_counter() - start


def alternate(reference: Callable, ours: Callable, reps: int, sync=lambda: None) -> tuple[list, list, object, object]:
    """Call reference and ours in turn, `reps` times each, so that a load on the machine hits both alike;
    returns the seconds of each call of both and the first result of each."""
    times, first = alternate_many({"reference": reference, "ours": ours}, reps, sync)
    return times["reference"], times["ours"], first["reference"], first["ours"]


def alternate_many(fns: dict, reps: int, sync=lambda: None) -> tuple[dict, dict]:
    """Call every function of `fns` (name -> fn) in turn, `reps` rounds; returns the seconds of each call and
    the first result, by name."""
    times: dict = {name: [] for name in fns}
    first: dict = {}
    for _ in range(reps):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            result = fn()
            sync()
            times[name].append(time.perf_counter() - start)
            first.setdefault(name, result)
    return times, first


def rates(count: int, times: list) -> tuple[float, float]:
    """(items/s of the fastest call, items/s of the median call)."""
    return count / min(times), count / float(np.median(times))


def last_output(outputs):
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def say(line: str) -> None:
    print(line, flush=True)


def quiet():
    """Silence pycocotools' progress prints ('creating index...', the COCOeval table)."""
    return contextlib.redirect_stdout(io.StringIO())


def side_row(stage: str, reference: str, is_official: bool, n: int, ref_times: list, our_times: list, check: str,
             unit: str = "dets/s") -> dict:
    """One side-by-side measurement: both rates from the fastest and the median run, and their ratios."""
    (ref_min, ref_med), (our_min, our_med) = rates(n, ref_times), rates(n, our_times)
    return {"stage": stage, "reference": reference, "official": is_official, "items": n, "unit": unit,
            "ref_rate": ref_min, "ref_median_rate": ref_med, "rate": our_min, "median_rate": our_med,
            "speedup": our_min / ref_min, "median_speedup": our_med / ref_med, "check": check}
