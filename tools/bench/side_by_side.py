"""--side-by-side: every row of the README's side-by-side table from one run, and the markdown file.

One process runs a fixed list of jobs in a fixed order (JOBS): the five decoders on the same crops, the
evaluation (OKS-NMS alone and the whole COCODataset.evaluate), the flip-test forward of PoseResNet-50,
HRNet-W32 (eager and TEST.COMPILE) and LPN-50 with the fast float32 options, and the training / test data
loaders with the w32 COCO augmentation. Each job is one of the existing stage functions (decoders.py,
evaluate.py, forward.py, data.py), which alternate official and posezoo runs on the same inputs and check
the outputs equal. A job that fails is reported as a row naming its error, and the run goes on; an absent
checkout is labelled as such (decode and OKS-NMS rows then use posezoo's loop reference).
``write_markdown`` writes the table with a header giving the machine, threads, load, date and command.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.models import build_model

from .common import say
from .data import bench_data_official
from .decoders import DECODERS_HEATMAP_SIZE, DECODERS_JOINTS, bench_decoders_official
from .evaluate import bench_evaluate
from .forward import FORWARD_VARIANTS, bench_forward_official, default_flip_pairs
from .official import LOOP_LABEL, REPOS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUTPUT = os.path.join("output", "benchmark", "side_by_side.md")
DEFAULT_SAMPLES = os.path.join(REPO, "..", "shared", "data", "coco_mmpose_tests")
DEFAULT_DECODERS = 5000
DEFAULT_NUM_DETS = 65000
DEFAULT_DATA_ITERS = 128  # epochs of 12 x 128 = 1,536 samples: workers start once an epoch (a COCO epoch is 150k)
HRNET_W32 = os.path.join("experiments", "coco", "hrnet", "w32_256x192_adam_lr1e-3.yaml")
RESNET_50 = os.path.join("experiments", "coco", "resnet", "res50_256x192_d256x3_adam_lr1e-3.yaml")
LPN_50 = os.path.join("experiments", "coco", "lpn", "lpn50_256x192_gd256x2_gc.yaml")
_VARIANTS = dict(FORWARD_VARIANTS)
FAST_EAGER = "+ CHANNELS_LAST + FOLD_BN + FORWARD_CHUNK 8"
FAST_COMPILE = "+ CHANNELS_LAST + FOLD_BN + FORWARD_CHUNK 8 + TEST.COMPILE"
DECODER_LABELS = {"gaussian": "HRNet decode (`get_final_preds`, post-process)", "dark": "DARK decode (blur 11)",
                  "soft_argmax": "LPN soft-argmax (beta 160)", "udp": "UDP Gaussian decode (UDP-Pose master)",
                  "udp_offset": "UDP offset decode (KPD 4)"}


@dataclass
class Job:
    """One group of rows of the table: `run()` returns its rows (side_row dicts, each with a "label")."""
    name: str
    run: Callable[[], list]


def decoder_label(name: str) -> str:
    """The table's name of a decoders-stage row: ``dark`` -> DARK decode (blur 11); a compiled twin
    ``dark compiled 2t`` -> DARK decode (blur 11), `TEST.COMPILE` kernel, 2 threads."""
    codec, _, threads = name.partition(" compiled ")
    label = DECODER_LABELS.get(codec, codec)
    if threads:
        count = int(threads.rstrip("t"))
        label += f", `TEST.COMPILE` kernel, {count} thread{'s' if count > 1 else ''}"
    return label


def decoder_rows(decoders: dict) -> list[dict]:
    """bench_decoders_official's results as table rows (min / median rates, ratio posezoo / reference)."""
    rows = []
    for name, d in decoders.items():
        rows.append({"label": f"{decoder_label(name)}, {d['crops']:,} crops", "reference": d["reference"],
                     "official": d["official"], "items": d["crops"], "unit": "crops/s",
                     "ref_rate": d["ref_crops_s"], "ref_median_rate": d["ref_median_crops_s"],
                     "rate": d["crops_s"], "median_rate": d["median_crops_s"], "speedup": d["speedup"],
                     "median_speedup": d["median_speedup"], "check": f"max diff {d['max_px_diff']:.1e} px"})
    return rows


def link_coco_layout(samples: str, root: str, splits=("train2017", "val2017")) -> str:
    """HRNet's COCO layout under `root` from a folder of COCO images + ``test_coco.json`` (the shared
    samples), by symlinks: annotations/person_keypoints_<split>.json and images/<split>/*.jpg."""
    ann = os.path.join(samples, "test_coco.json")
    if not os.path.isfile(ann):
        raise FileNotFoundError(f"{ann} is absent: give --data-root, a COCO layout with train2017 and val2017")
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    for split in splits:
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        os.symlink(os.path.abspath(ann), os.path.join(root, "annotations", f"person_keypoints_{split}.json"))
        for name in sorted(os.listdir(samples)):
            if name.endswith(".jpg"):
                os.symlink(os.path.abspath(os.path.join(samples, name)), os.path.join(root, "images", split, name))
    return root


def _labelled(rows: list, label: Callable[[dict], str]) -> list:
    for row in rows:
        row["label"] = label(row)
    return rows


def build_jobs(official: str, reps: int, decoders: int, num_dets: int, data_root: str | None, data_iters: int,
               workers: list, decode_batch: int) -> list[Job]:
    """The fixed list of jobs, in the order they run (see the module docstring)."""
    def cfg_of(path, opts=()):
        return load_config(os.path.join(REPO, path), list(opts))

    def decode_job():
        rng = np.random.default_rng(cfg_of(HRNET_W32).SEED)
        return decoder_rows(bench_decoders_official(torch.device("cpu"), decoders, decode_batch, official, reps,
                                                    rng, "[decode]"))

    def evaluate_job():
        cfg = cfg_of(HRNET_W32, ["TEST.COCOEVAL", "faster_coco_eval"])
        out = bench_evaluate(cfg, build_codec(cfg), num_dets, np.random.default_rng(cfg.SEED), "[evaluate]",
                             official, reps)
        rows = _labelled(out.get("eval_side_by_side", []),
                         lambda r: (f"OKS-NMS (HRNet `oks_nms`), {r['items']:,} dets" if r["stage"] == "OKS-NMS alone"
                                    else f"whole evaluate, `TEST.COCOEVAL faster_coco_eval`, {r['items']:,} dets"))
        if not any(r["stage"] == "whole evaluate" for r in rows):  # no HRNet checkout: no reference for it
            rows.append(absent_row("whole evaluate, `TEST.COCOEVAL faster_coco_eval`",
                                   f"{REPOS['hrnet'][0]} absent (no loop reference of the whole flow)"))
        return rows

    def forward_job(path, title, variants):
        def run():
            cfg = cfg_of(path)
            codec = build_codec(cfg)
            model = build_model(cfg, is_train=False).eval()
            chosen = [(name, _VARIANTS[name]) for name in variants]
            rows = bench_forward_official(cfg, codec, model, os.path.join(REPO, path), official, reps,
                                          default_flip_pairs(cfg), "[forward]", variants=chosen)
            if not rows:
                return [absent_row(f"flip-test forward {title}", "official model absent (see the log line above)")]
            return _labelled(rows, lambda r: (f"flip-test forward {title}, batch {r['items']}, float32, "
                                              f"{r['stage'].split(', ', 1)[1].lstrip('+ ')}"))
        return run

    def data_job():
        with contextlib.ExitStack() as stack:
            root = data_root
            if root is None:
                root = link_coco_layout(DEFAULT_SAMPLES, stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="posezoo_sbs_coco_")))
            cfg = cfg_of(HRNET_W32, ["DATASET.ROOT", root, "TEST.USE_GT_BBOX", True])
            rows = bench_data_official(cfg, build_codec(cfg), os.path.join(REPO, HRNET_W32), official,
                                       12 * data_iters, reps, workers, "[data]")
        if not rows:
            return [absent_row("training data", "official dataset absent (see the log line above)")]
        return _labelled(rows, lambda r: (f"{'training' if 'train' in r['stage'].split()[1] else 'test'} data, "
                                          f"w32 COCO {'augmentation' if 'train' in r['stage'].split()[1] else 'warp'}"
                                          f", {r['stage'].split('), ', 1)[1]}"))

    return [Job("decode", decode_job), Job("evaluate", evaluate_job),
            Job("forward PoseResNet-50", forward_job(RESNET_50, "PoseResNet-50", [FAST_EAGER])),
            Job("forward HRNet-W32", forward_job(HRNET_W32, "HRNet-W32", [FAST_EAGER, FAST_COMPILE])),
            Job("forward LPN-50", forward_job(LPN_50, "LPN-50", [FAST_EAGER])),
            Job("data", data_job)]


def absent_row(label: str, why: str) -> dict:
    """A row that was not measured: `why` is shown in the reference column."""
    return {"label": label, "reference": why, "official": False, "missing": True}


def failed_row(job: str, err: BaseException) -> dict:
    return {"label": job, "reference": f"failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
            "official": False, "missing": True}


def _threads() -> dict:
    """The thread settings both sides run with."""
    info = {"torch intra-op": torch.get_num_threads(), "torch inter-op": torch.get_num_interop_threads(),
            "OpenCV": cv2.getNumThreads()}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        info[var] = os.environ.get(var, "unset")
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415  (optional dependency)
        info["BLAS"] = ", ".join(f"{p.get('internal_api')} {p.get('num_threads')}" for p in threadpool_info()
                                 if p.get("user_api") == "blas") or "none found"
    except ImportError:
        info["BLAS"] = "threadpoolctl absent: unknown"
    return info


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return head + (" with uncommitted changes" if dirty else "")


def machine_header(command: str) -> dict:
    """What the run started on: CPU, cores, versions, threads, load, date, command, commit."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "affinity": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__,
            "threads": _threads(), "load_start": os.getloadavg(), "start": _now(), "command": command,
            "commit": _commit()}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def table_rows(rows: list) -> list[str]:
    """Markdown rows: stage, reference, official and posezoo rates (fastest / median run), ratio posezoo /
    reference (fastest / median), check. A row whose reference is posezoo's loop reference says so."""
    lines = ["| stage | reference | official (fastest / median) | posezoo (fastest / median) | "
             "ratio posezoo / official (fastest / median) | check |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("missing"):
            lines.append(f"| {r['label']} | {r['reference']} | - | - | - | not measured |")
            continue
        unit = r["unit"]
        reference = r["reference"] if r["official"] else f"{LOOP_LABEL} ({r['reference']})"
        ref_cell = f"{_rate(r['ref_rate'])} / {_rate(r['ref_median_rate'])} {unit}"
        if not r["official"]:
            ref_cell = f"(loop) {ref_cell}"
        ours = f"{_rate(r['rate'])} / {_rate(r['median_rate'])} {unit}"
        if unit == "dets/s":  # the evaluation also in seconds, as people quote it
            ref_cell += f" ({r['items'] / r['ref_rate']:.1f} s)"
            ours += f" ({r['items'] / r['rate']:.1f} s)"
        ratio = f"x{r['rate'] / r['ref_rate']:.2f} / x{r['median_rate'] / r['ref_median_rate']:.2f}"
        lines.append(f"| {r['label']} | {reference} | {ref_cell} | {ours} | {ratio} | {r['check']} |")
    return lines


def write_markdown(path: str, header: dict, rows: list, jobs: list, reps: int) -> str:
    """The README-ready table with the machine/command header above it and the per-job timing below;
    writes it to `path` (folders made) and returns the text."""
    t = header["threads"]
    start, end = header["load_start"], header["load_end"]
    lines = [
        "# Side by side with the official code, one run",
        "",
        f"- command: `{header['command']}`",
        f"- date: {header['start']} to {header['end']} ({header['seconds'] / 60:.1f} min); posezoo commit "
        f"{header['commit']}",
        f"- machine: {header['cpu']}, {header['cores']} cores ({header['affinity']} usable); Python "
        f"{header['python']}, torch {header['torch']}, numpy {header['numpy']}, OpenCV {header['opencv']}",
        f"- threads, both sides: torch intra-op {t['torch intra-op']}, inter-op {t['torch inter-op']}, OpenCV "
        f"{t['OpenCV']}, BLAS {t['BLAS']}; OMP_NUM_THREADS {t['OMP_NUM_THREADS']}, MKL_NUM_THREADS "
        f"{t['MKL_NUM_THREADS']}, OPENBLAS_NUM_THREADS {t['OPENBLAS_NUM_THREADS']}; posezoo's CPU decoders drop "
        "to 1 torch, 1 OpenCV and 1 BLAS thread inside each decode (`codecs.base.single_threaded_on_cpu`), the "
        "official decoders keep the settings above",
        f"- load average (1 / 5 / 15 min): {start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} at the start, "
        f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end",
        f"- method: official and posezoo called in turn, {reps} times each, on the same inputs, in one process; "
        "rates from the fastest and the median call; ratio = posezoo / official; outputs checked equal before "
        f"a row is written (decode 1e-3 px, NMS identical keeps, COCOeval all 10 stats). Decoders: "
        f"{DECODERS_JOINTS} x {DECODERS_HEATMAP_SIZE[1]}x{DECODERS_HEATMAP_SIZE[0]} heatmaps (UDP offset: "
        f"{3 * DECODERS_JOINTS} channels), random weights for the forwards",
        "",
    ]
    lines += table_rows(rows)
    lines += ["", "Jobs, in the order they ran:", ""]
    lines += [f"- {j['name']}: started {j['start']}, load {j['load'][0]:.2f}, {j['seconds']:.1f} s"
              + (f", **{j['error']}**" if j.get("error") else "") for j in jobs]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return text


def run_side_by_side(args, argv=None) -> dict:
    """Run every job of build_jobs in order and write the markdown (args.side_by_side) and a JSON of the
    rows next to it; returns {"rows", "jobs", "header", "markdown"}."""
    missing = [name for name, _ in REPOS.values() if not os.path.isdir(os.path.join(args.official, name))]
    command = shlex.join(["python", *(sys.argv if argv is None else ["tools/benchmark.py", *argv])])
    header = machine_header(command)
    plan = build_jobs(args.official, args.reps, args.decoders, args.num_dets, args.data_root, args.iters,
                      args.workers, args.decode_batch)
    say(f"side by side, one run: {len(plan)} jobs ({', '.join(job.name for job in plan)}), official checkouts in "
        f"{args.official}" + (f" (absent: {', '.join(missing)})" if missing else ""))
    rows, jobs = [], []
    started = time.perf_counter()
    for job in plan:
        record = {"name": job.name, "start": _now(), "load": os.getloadavg()}
        say(f"== {job.name} (load {record['load'][0]:.2f})")
        t0 = time.perf_counter()
        try:
            rows += job.run()
        except Exception as err:  # one job's failure (official code, compile, data) must not end the run
            rows.append(failed_row(job.name, err))
            record["error"] = rows[-1]["reference"]
            say(f"== {job.name}: {record['error']}")
        record["seconds"] = time.perf_counter() - t0
        jobs.append(record)
    header.update(load_end=os.getloadavg(), end=_now(), seconds=time.perf_counter() - started)
    text = write_markdown(args.side_by_side, header, rows, jobs, args.reps)
    with open(os.path.splitext(args.side_by_side)[0] + ".json", "w") as f:
        json.dump({"header": header, "rows": rows, "jobs": jobs}, f, indent=1)
    say(text)
    say(f"written to {args.side_by_side} in {header['seconds'] / 60:.1f} min")
    return {"rows": rows, "jobs": jobs, "header": header, "markdown": text}
