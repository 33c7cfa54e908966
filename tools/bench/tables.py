"""The summary tables printed at the end of a run."""
from __future__ import annotations

from .decoders import DECODERS_HEATMAP_SIZE, DECODERS_JOINTS


def aligned(header: tuple, rows: list, left: tuple) -> list[str]:
    """Header, rule and rows as columns padded to their widest cell; the columns in `left` flush left."""
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i in left else '>'}{wd}}}" for i, wd in enumerate(widths))
    return [fmt.format(*row).rstrip() for row in [header, ["-" * wd for wd in widths]] + rows]


def decoders_table(decoders: dict, device) -> str:
    rows = []
    for name, d in decoders.items():
        rows.append((name, d["codec"], f"{d['crops_s']:,.0f}", f"{d['ref_crops_s']:,.0f}", f"x{d['speedup']:.1f}",
                     f"{d['max_px_diff']:.1e}"))
    first = next(iter(decoders.values()))
    loop = f"loop crops/s (numpy, first {first['ref_crops']})"
    header = ("codec", "class", f"vectorised crops/s ({device.type})", loop, "speedup", "max px diff")
    title = (f"decoders: {first['crops']} crops of {DECODERS_JOINTS} x {DECODERS_HEATMAP_SIZE[1]}x"
             f"{DECODERS_HEATMAP_SIZE[0]} heatmaps (udp_offset: {3 * DECODERS_JOINTS} channels); the loop "
             f"references decode the first {first['ref_crops']} of them")
    return "\n".join([title] + aligned(header, rows, (0, 1)))


def summary_table(r: dict) -> str:
    """The stages that ran, one row per measurement."""
    def rate(key, unit):
        return f"{r[key]:,.1f} {unit}" if key in r else "-"

    def speed(key):
        return f"x{r[key]:.1f}" if key in r else "-"

    rows = []
    if "data_train_crops_s" in r:
        rows += [("data: train transform", rate("data_train_crops_s", "crops/s"), "-", "-", "read+augment+warp+encode"),
                 ("data: test transform", rate("data_test_crops_s", "crops/s"), "-", "-", "read+warp+encode")]
    if "encode_items_s" in r:
        note = "-"
        if "encode_max_abs_diff" in r:
            note = f"max |diff| {r['encode_max_abs_diff']:g}"
            if r["encode_ref_items"] != r["encode_items"]:
                note += f"; loop on {r['encode_ref_items']} of {r['encode_items']} sets"
        rows.append(("encode (targets)", rate("encode_items_s", "crops/s"), rate("encode_ref_items_s", "crops/s"),
                     speed("encode_speedup"), note))
    if "forward_crops_s" in r and "forward_flip_crops_s" not in r:
        rows.append(("forward + decode", rate("forward_crops_s", "frames/s"), "-", "-", f"batch {r['batch']}"))
    elif "forward_crops_s" in r:
        rows += [("forward", rate("forward_crops_s", "crops/s"), "-", "-", f"batch {r['batch']}"),
                 ("forward + flip", rate("forward_flip_crops_s", "crops/s"), "-", "-", "image+mirror in one forward")]
    if "decode_crops_s" in r:
        rows.append(("decode", rate("decode_crops_s", "crops/s"), rate("decode_ref_crops_s", "crops/s"),
                     speed("decode_speedup"),
                     f"max diff {r['decode_max_px_diff']:.1e} px" if "decode_max_px_diff" in r else "-"))
    if "eval_total_dets_s" in r:
        rows += [("eval: rescoring + OKS-NMS", rate("eval_rescore_nms_dets_s", "dets/s"), "-", "-",
                  f"{r['eval_num_dets']} dets"),
                 ("eval: OKS-NMS alone", rate("nms_dets_s", "dets/s"), rate("nms_ref_dets_s", "dets/s"),
                  speed("nms_speedup"), "identical keeps" if r.get("nms_identical") else "-"),
                 ("eval: whole evaluate", rate("eval_total_dets_s", "dets/s"), "-", "-",
                  f"{r['eval_total_s']:.1f} s, AP {r['eval_ap']:.3f}")]
    lines = []
    if rows:
        header = ("stage", "rate", "loop reference", "speedup", "check / note")
        lines = aligned(header, rows, (0, 4))
    footer = []
    if "params" in r:
        footer.append(f"params {r['params'] / 1e6:.2f} M, {r['gmacs']:.3f} GMACs per crop")
    if "peak_memory_mb" in r:
        footer.append(f"peak memory {r['peak_memory_mb']:.0f} MiB ({r['peak_memory_kind']})")
    if footer:
        lines.append("; ".join(footer))
    return "\n".join(lines)


def side_by_side_table(results: dict, device, reps: int) -> str:
    """The side-by-side runs (--official): per row the reference (official code or, labelled, posezoo's loop
    reference), both rates as fastest / median run, their ratio and what was checked equal."""
    def fmt(rate: float) -> str:
        return f"{rate:,.1f}" if rate < 100 else f"{rate:,.0f}"

    def measured(d: dict) -> tuple:
        source = "official" if d["official"] else "posezoo loop (not official)"
        what = d["stage"] if d["unit"] == "crops/s" else f"eval {d['stage']}"
        return (f"{what} ({d['items']} {'crops' if d['unit'] == 'crops/s' else 'dets'})",
                f"{source}: {d['reference']}", f"{fmt(d['ref_rate'])} / {fmt(d['ref_median_rate'])}",
                f"{fmt(d['rate'])} / {fmt(d['median_rate'])}", f"x{d['speedup']:.2f} / x{d['median_speedup']:.2f}",
                d["check"])

    rows = [measured(d) for d in results.get("data_side_by_side", []) + results.get("encode_side_by_side", [])
                                       + results.get("forward_side_by_side", [])]
    for name, d in results.get("decoders", {}).items():
        if "median_crops_s" not in d:
            continue
        source = "official" if d["official"] else "posezoo loop (not official)"
        rows.append((f"decode {name} ({d['crops']} crops, {device.type})", f"{source}: {d['reference']}",
                     f"{d['ref_crops_s']:,.0f} / {d['ref_median_crops_s']:,.0f}",
                     f"{d['crops_s']:,.0f} / {d['median_crops_s']:,.0f}",
                     f"x{d['speedup']:.1f} / x{d['median_speedup']:.1f}",
                     f"max diff {d['max_px_diff']:.1e} px; {d['floor_share']:.2f} / {d['floor_median_share']:.2f} of "
                     f"the argmax floor ({d['floor_crops_s']:,.0f} / {d['floor_median_crops_s']:,.0f})"))
    rows += [measured(d) for d in results.get("eval_side_by_side", [])]
    if not rows:
        return ""
    header = ("stage", "reference", "reference /s (min / median)", "posezoo /s (min / median)",
              "ratio (min / median)", "check")
    title = (f"side by side with the official code ({reps} alternating runs each; rates from the fastest and "
             "the median run; data, encode, forward and decode crops/s, eval dets/s)")
    return "\n".join([title] + aligned(header, rows, (0, 1, 5)))
