"""tools/benchmark.py --side-by-side: the markdown writer (header, rows, ratio = posezoo / official, the check
column, rows against posezoo's loop reference, absent and failed rows) and the command line; no official
code needed."""
import os
import statistics

import pytest

import benchmark
from bench.common import side_row
from bench.official import LOOP_LABEL
from bench.side_by_side import absent_row, decoder_label, decoder_rows, failed_row, machine_header, write_markdown

REF_TIMES, OUR_TIMES = [2.0, 1.6, 1.8], [0.25, 0.4, 0.2]


def table(text: str) -> list[list[str]]:
    """The markdown table's body rows as lists of cells."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| stage | reference |")
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[1:]]


def header(**extra) -> dict:
    h = machine_header("python tools/benchmark.py --side-by-side --official /x")
    h.update(load_end=(1.5, 2.5, 3.5), end="2026-12-07 17:00:00 UTC", seconds=600.0, **extra)
    return h


def test_rows_ratio_and_check_columns(tmp_path):
    n = 65794
    evaluate = side_row("whole evaluate", "deep-high-resolution-net.pytorch dataset/coco.py COCODataset.evaluate",
                        True, n, REF_TIMES, OUR_TIMES, "identical AP 0.6192 (all 10 stats)")
    evaluate["label"] = "whole evaluate, 65,794 dets"
    forward = side_row("forward+flip pose_hrnet, x", "deep-high-resolution-net.pytorch validate() forward", True, 32,
                       [7.0, 8.0, 7.5], [4.0, 4.5, 5.0], "max diff 2.3e-02 (|output| <= 8.6e+03)", unit="crops/s")
    forward["label"] = "flip-test forward HRNet-W32"
    # a decoder whose checkout was absent: bench_decoders_official's row against posezoo's loop reference
    loop = decoder_rows({"dark": {"reference": "_reference.get_final_preds_dark_loop", "official": False,
                                  "crops": 5000, "ref_crops_s": 400.0, "ref_median_crops_s": 350.0,
                                  "crops_s": 30000.0, "median_crops_s": 21000.0, "speedup": 75.0,
                                  "median_speedup": 60.0, "max_px_diff": 6.8e-5}})
    rows = [evaluate, forward, *loop, absent_row("flip-test forward LPN-50", "lpn-pytorch absent"),
            failed_row("data", RuntimeError("no COCO layout\nsecond line"))]
    path = tmp_path / "out" / "side_by_side.md"
    jobs = [{"name": "evaluate", "start": "2026-12-07 16:00:00 UTC", "load": (2.0, 2.0, 2.0), "seconds": 300.0}]
    text = write_markdown(str(path), header(), rows, jobs, reps=3)
    assert path.read_text() == text

    body = table(text)
    assert len(body) == 5
    ev, fw, dark, lpn, data = body
    # ratio = posezoo / official from the fastest calls and from the median calls, computed here from the times
    assert ev[4] == (f"x{min(REF_TIMES) / min(OUR_TIMES):.2f} / "
                     f"x{statistics.median(REF_TIMES) / statistics.median(OUR_TIMES):.2f}") == "x8.00 / x7.20"
    assert fw[4] == "x1.75 / x1.67"
    assert ev[2] == f"{n / 1.6:,.0f} / {n / 1.8:,.0f} dets/s (1.6 s)" and ev[3].endswith("dets/s (0.2 s)")
    assert fw[2] == "4.6 / 4.3 crops/s" and fw[3] == "8.0 / 7.1 crops/s"
    assert ev[5] == "identical AP 0.6192 (all 10 stats)" and fw[5] == "max diff 2.3e-02 (|output| <= 8.6e+03)"
    assert ev[1].startswith("deep-high-resolution-net.pytorch") and LOOP_LABEL not in ev[1]
    # the absent checkout's row names posezoo's loop reference as its reference, not the official code
    assert dark[0] == "DARK decode (blur 11), 5,000 crops"
    assert dark[1] == f"{LOOP_LABEL} (_reference.get_final_preds_dark_loop)"
    assert dark[2] == "(loop) 400 / 350 crops/s" and dark[4] == "x75.00 / x60.00" and dark[5] == "max diff 6.8e-05 px"
    assert lpn == ["flip-test forward LPN-50", "lpn-pytorch absent", "-", "-", "-", "not measured"]
    assert data[1] == "failed: RuntimeError: no COCO layout" and data[5] == "not measured"

    # the header: command, dates, machine, threads of both sides, load at start and end, the jobs' timing
    assert "- command: `python tools/benchmark.py --side-by-side --official /x`" in text
    assert "(10.0 min)" in text and "to 2026-12-07 17:00:00 UTC" in text
    assert f"{os.cpu_count()} cores" in text and "torch intra-op" in text and "OMP_NUM_THREADS" in text
    assert "1.50 / 2.50 / 3.50 at the end" in text and "3 times each" in text
    assert "- evaluate: started 2026-12-07 16:00:00 UTC, load 2.00, 300.0 s" in text


def test_compiled_rows_name_the_kernel_and_its_threads():
    """The decoders stage names a compiled twin ``<codec> compiled <N>t``; the table spells it out."""
    assert decoder_label("udp_offset") == "UDP offset decode (KPD 4)"
    assert decoder_label("dark compiled 1t") == "DARK decode (blur 11), `TEST.COMPILE` kernel, 1 thread"
    assert decoder_label("soft_argmax compiled 2t") == ("LPN soft-argmax (beta 160), `TEST.COMPILE` kernel, "
                                                        "2 threads")


def test_machine_header_fields():
    h = machine_header("cmd")
    assert h["cpu"] and h["cores"] == os.cpu_count() and len(h["load_start"]) == 3
    assert h["threads"]["torch intra-op"] >= 1 and h["command"] == "cmd" and h["start"].endswith("UTC")


@pytest.mark.parametrize("argv, message", [
    (["--side-by-side"], "needs --official"),
    (["--side-by-side", "--official", ".", "--cfg", "x.yaml"], "drop --cfg"),
    (["--side-by-side", "--official", ".", "--data-root", "/no/such/dir"], "--data-root"),
    (["--side-by-side", "--official", ".", "--device", "cuda"], "on the CPU"),
    ([], "--cfg (or --side-by-side)"),
])
def test_side_by_side_command_line_errors(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("POSEZOO_OFFICIAL", raising=False)
    with pytest.raises(SystemExit):
        benchmark.parse_args(argv)
    assert message in capsys.readouterr().err


def test_side_by_side_defaults(tmp_path):
    args = benchmark.parse_args(["--side-by-side", "--official", str(tmp_path)])
    assert (args.side_by_side, args.decoders, args.num_dets, args.iters) == (
        os.path.join("output", "benchmark", "side_by_side.md"), 5000, 65000, 128)
    plain = benchmark.parse_args(["--cfg", "x.yaml"])
    assert (plain.side_by_side, plain.decoders, plain.num_dets, plain.iters) == (None, 0, 50000, 100)
