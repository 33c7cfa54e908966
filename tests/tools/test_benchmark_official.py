"""tools/benchmark.py --official: the import of official checkouts, the alternating side-by-side runs, the
equality checks and the absent-checkout fallback, on fake checkouts written here. Each fake has the official
file layout and function names, implemented by calling posezoo's loop oracles (tests/oracles), plus what the
real ones need from the runner: bare packages (its __init__ files fail if run), the Cython NMS imports of
lib/nms/nms.py, numpy 1.x aliases (np.float)."""
import re
import sys
import textwrap

import numpy as np
import pytest

from posezoo.codecs import compiled
import torch

import benchmark
from bench.common import ReferenceMismatch
from bench.decoders import bench_decoders_official
from bench.official import LOOP_LABEL, OfficialCodeError, load_official
from conftest import synthetic_opts, write_cfg

BROKEN_INIT = "raise ImportError('the official __init__ imports every model; the runner must not run it')\n"

HRNET_INFERENCE = """
import numpy as np
from utils.transforms import OFFSET
from oracles import reference


def get_final_preds(config, batch_heatmaps, center, scale):
    preds, maxvals = reference.get_final_preds_loop(batch_heatmaps, center, scale, config.TEST.POST_PROCESS)
    return preds.astype(np.float) + OFFSET, maxvals
"""

HRNET_NMS = """
import numpy as np

from .cpu_nms import cpu_nms
from .gpu_nms import gpu_nms
from oracles import reference

SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


def oks_nms(kpts_db, thresh, sigmas=None, in_vis_thre=None):
    if len(kpts_db) == 0:
        return []
    kpts = np.array([d["keypoints"] for d in kpts_db])
    scores = np.array([d["score"] for d in kpts_db])
    areas = np.array([d["area"] for d in kpts_db])
    return reference.oks_nms_loop(kpts, scores, areas, thresh, SIGMAS if sigmas is None else sigmas, in_vis_thre)
"""

HRNET_COCO = """
import json
import os
from collections import OrderedDict, defaultdict

import numpy as np
from pycocotools.cocoeval import COCOeval

from nms.nms import oks_nms

NAMES = ["AP", "Ap .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)"]


class COCODataset:
    def __init__(self, *args):
        raise RuntimeError("the runner builds the instance without __init__")

    def evaluate(self, cfg, preds, output_dir, all_boxes, img_path, *args, **kwargs):
        per_image = defaultdict(list)
        for idx, kpt in enumerate(preds):
            vis = kpt[:, 2][kpt[:, 2] > self.in_vis_thre]
            per_image[int(img_path[idx][-16:-4])].append({
                "keypoints": kpt, "area": all_boxes[idx][4], "image": int(img_path[idx][-16:-4]),
                "score": (vis.mean() if len(vis) else 0.0) * all_boxes[idx][5]})
        results = []
        for image, dets in per_image.items():
            keep = oks_nms(dets, self.oks_thre) or range(len(dets))
            results += [{"image_id": image, "category_id": self._class_to_coco_ind["person"],
                         "keypoints": dets[k]["keypoints"].reshape(-1).astype(np.float).tolist(),
                         "score": float(dets[k]["score"])} for k in keep]
        os.makedirs(os.path.join(output_dir, "results"), exist_ok=True)
        res_file = os.path.join(output_dir, "results", "keypoints_%s_results_%d.json" % (self.image_set, cfg.RANK))
        with open(res_file, "w") as f:
            json.dump(results, f)
        coco_eval = COCOeval(self.coco, self.coco.loadRes(res_file), "keypoints")
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        stats = OrderedDict(zip(NAMES, coco_eval.stats))
        return stats, stats["AP"]
"""

HRNET_JOINTS_DATASET = """
from oracles import reference


class JointsDataset:
    def __init__(self, *args):
        raise RuntimeError("the runner builds the instance without __init__")

    def generate_target(self, joints, joints_vis):
        assert self.target_type == "gaussian" and not self.use_different_joints_weight
        return reference.generate_target_loop(joints, joints_vis, self.image_size, self.heatmap_size, self.sigma)
"""

DARK_INFERENCE = """
from oracles import reference_dark


def get_final_preds(config, hm, center, scale):
    return reference_dark.get_final_preds_dark_loop(hm, center, scale, config.TEST.BLUR_KERNEL)
"""


def write_checkout(root, name, files: dict) -> None:
    """root/name/lib/... with `files` {relative path: source}; every package gets the broken __init__."""
    lib = root / name / "lib"
    for rel, source in files.items():
        path = lib / rel
        for parent in [p for p in path.relative_to(lib).parents if str(p) != "."]:
            (lib / parent).mkdir(parents=True, exist_ok=True)
            (lib / parent / "__init__.py").write_text(BROKEN_INIT)
        path.write_text(textwrap.dedent(source))


def fake_hrnet(root, offset: float = 0.0) -> None:
    write_checkout(root, "deep-high-resolution-net.pytorch", {
        "core/inference.py": HRNET_INFERENCE, "utils/transforms.py": f"OFFSET = {offset!r}\n",
        "nms/nms.py": HRNET_NMS, "dataset/coco.py": HRNET_COCO, "dataset/JointsDataset.py": HRNET_JOINTS_DATASET})


@pytest.fixture
def tiny_cfg_file(synthetic_root, tmp_path) -> str:
    return write_cfg(tmp_path / "tiny.yaml", synthetic_opts(synthetic_root, str(tmp_path / "output")))


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def run(cfg_file, *extra):
    return benchmark.main(["--cfg", cfg_file, "--device", "cpu", "--threads", "1", "--stages", "encode,evaluate",
                           "--iters", "2", "--num-dets", "300", "--decoders", "12", "--decode-batch", "8", "--reps", "2", *extra])


def test_side_by_side_with_fake_checkouts(tiny_cfg_file, tmp_path, capsys, restore_threads):
    """HRNet and DarkPose present: their rows are official and checked; UDP-Pose and LPN absent: one line
    each, and their rows use the loop references, labelled as not the official code."""
    root = tmp_path / "official"
    fake_hrnet(root)
    write_checkout(root, "DarkPose", {"core/inference.py": DARK_INFERENCE})
    result = run(tiny_cfg_file, "--official", str(root))
    decoders = result["decoders"]
    twins = [" compiled 1t", " compiled 2t"] if compiled.library() is not None else []
    assert [name for name, d in decoders.items() if d["official"]] == ["gaussian", "dark"] + [
        "dark" + twin for twin in twins]
    for base in ("udp", "udp_offset"):  # the compiled rows of the loop-reference decoders, same reference
        assert [name for name in decoders if name.startswith(base + " ")] == [base + twin for twin in twins]
    assert decoders["gaussian"]["reference"] == "deep-high-resolution-net.pytorch core/inference.py get_final_preds"
    assert decoders["dark"]["reference"] == "DarkPose core/inference.py get_final_preds"
    assert decoders["soft_argmax"]["reference"] == "_reference_soft_argmax.get_final_preds_soft_argmax_loop"
    assert decoders["udp_offset"]["reference"] == "_reference_udp.get_final_preds_offset_loop"
    for name, d in decoders.items():
        assert d["crops"] == 12 and d["reps"] == 2 and d["max_px_diff"] < 1e-3, name
        assert d["speedup"] == pytest.approx(d["crops_s"] / d["ref_crops_s"])
        assert d["ref_crops_s"] >= d["ref_median_crops_s"] > 0 and d["crops_s"] >= d["median_crops_s"] > 0
        assert d["floor_crops_s"] >= d["floor_median_crops_s"] > 0  # the argmax pass, timed alongside
        assert d["floor_share"] == pytest.approx(d["crops_s"] / d["floor_crops_s"])
    (encode,) = result["encode_side_by_side"]
    assert encode["official"] and encode["items"] == 40 and encode["check"] == "identical targets and weights"
    assert encode["reference"] == "deep-high-resolution-net.pytorch dataset/JointsDataset.py generate_target (gaussian)"
    nms, whole = result["eval_side_by_side"]
    assert nms["official"] and nms["reference"] == "deep-high-resolution-net.pytorch nms/nms.py oks_nms"
    assert whole["official"] and whole["check"] == f"identical AP {result['eval_ap']:.4f} (all 10 stats)"
    assert nms["items"] == whole["items"] == result["eval_num_dets"]
    printed = capsys.readouterr().out
    assert printed.count(" absent: ") == 3  # udp, udp_offset (UDP-Pose) and soft_argmax (lpn-pytorch)
    assert f"{root / 'UDP-Pose'} absent: UDPHeatmapCodec against the {LOOP_LABEL}" in printed
    assert f"{root / 'lpn-pytorch'} absent: SoftArgmaxCodec against the {LOOP_LABEL}" in printed
    assert "side by side with the official code (2 alternating runs each" in printed
    assert re.search(r"\nencode GaussianHeatmapCodec \(40 crops\) +official: deep-high", printed)
    assert "posezoo loop (not official): _reference_udp.get_final_preds_udp_loop" in printed
    assert "creating index" not in printed
    assert [name for name in sys.modules if name.split(".")[0] in ("core", "nms", "dataset")] == []


def test_environment_variable_and_all_absent(tiny_cfg_file, tmp_path, monkeypatch, capsys, restore_threads):
    """$POSEZOO_OFFICIAL names the folder; with no checkout in it every row is the labelled loop reference and
    the whole evaluate flow, which has no loop reference, is not compared."""
    empty = tmp_path / "nothing"
    empty.mkdir()
    monkeypatch.setenv("POSEZOO_OFFICIAL", str(empty))
    result = run(tiny_cfg_file)
    assert not any(d["official"] for d in result["decoders"].values())
    (encode,) = result["encode_side_by_side"]
    assert not encode["official"] and encode["reference"] == "_reference.generate_target_loop"
    (nms,) = result["eval_side_by_side"]
    assert not nms["official"] and nms["reference"] == "_reference.oks_nms_loop" and nms["check"] == "identical keeps"
    printed = capsys.readouterr().out
    assert f"{empty / 'deep-high-resolution-net.pytorch'} absent: OKS-NMS against the {LOOP_LABEL}" in printed
    assert "the whole evaluate flow is not compared" in printed
    assert f"GaussianHeatmapCodec encode: {empty / 'deep-high-resolution-net.pytorch'} absent: against the " \
        f"{LOOP_LABEL}" in printed
    assert printed.count(" absent") == 7


def test_official_disagreement_stops_the_run(tmp_path, restore_threads):
    """A fake official decode 0.01 px off is caught: the side-by-side check is not vacuous."""
    fake_hrnet(tmp_path, offset=0.01)
    torch.set_num_threads(1)
    with pytest.raises(ReferenceMismatch, match="deep-high-resolution-net.pytorch core/inference.py"):
        bench_decoders_official(torch.device("cpu"), 4, 4, str(tmp_path), 1, np.random.default_rng(0))


def test_fresh_module_table(tmp_path):
    """Two checkouts with the same package names get their own modules, and the caller's are put back."""
    for name, value in (("a", 1.5), ("b", 2.5)):
        write_checkout(tmp_path / name, "repo", {"core/inference.py": "from utils.transforms import OFFSET\n",
                                                 "utils/transforms.py": f"OFFSET = {value}\n"})
    mine = type(sys)("core")
    sys.modules["core"] = mine
    try:
        first = load_official(str(tmp_path / "a" / "repo" / "lib"), "core.inference")
        second = load_official(str(tmp_path / "b" / "repo" / "lib"), "core.inference")
        assert (first.OFFSET, second.OFFSET) == (1.5, 2.5)
        assert sys.modules["core"] is mine and "core.inference" not in sys.modules and "utils" not in sys.modules
    finally:
        del sys.modules["core"]


def test_bad_official_folder_and_checkout(tiny_cfg_file, tmp_path):
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--cfg", tiny_cfg_file, "--official", str(tmp_path / "missing")])
    write_checkout(tmp_path, "repo", {"core/inference.py": "import not_a_module_anywhere\n"})
    with pytest.raises(OfficialCodeError, match="cannot import core.inference .*ModuleNotFoundError"):
        load_official(str(tmp_path / "repo" / "lib"), "core.inference")
