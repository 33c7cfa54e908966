"""tools/benchmark.py on the tiny synthetic set, and the loop references it compares against."""
import os

import numpy as np
import pytest
import torch

import benchmark
from bench.common import ReferenceMismatch
from bench.decode import bench_decode
from bench.decoders import decoder_codecs
from bench.encode import bench_encode
from bench.evaluate import make_eval_set
from bench.references import decode_reference
from conftest import ROOT, synthetic_opts, write_cfg
from oracles import reference as _reference
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.nms import COCO_PERSON_SIGMAS, oks_iou, oks_nms

RATES = ["data_train_crops_s", "data_test_crops_s", "encode_items_s", "encode_ref_items_s", "forward_crops_s",
         "forward_flip_crops_s", "decode_crops_s", "decode_ref_crops_s", "eval_rescore_nms_dets_s",
         "eval_total_dets_s", "nms_dets_s", "nms_ref_dets_s", "encode_speedup", "decode_speedup", "nms_speedup"]


@pytest.fixture(autouse=True)
def no_official(monkeypatch):
    """These runs measure against the loop references: a $POSEZOO_OFFICIAL in the environment stays out."""
    monkeypatch.delenv("POSEZOO_OFFICIAL", raising=False)


@pytest.fixture
def tiny_cfg_file(synthetic_root, tmp_path) -> str:
    return write_cfg(tmp_path / "tiny.yaml", synthetic_opts(synthetic_root, str(tmp_path / "output")))


def test_benchmark_tiny(tiny_cfg_file, capsys):
    result = benchmark.main(["--cfg", tiny_cfg_file, "--device", "cpu", "--iters", "4", "--num-dets", "2000",
                             "--decode-batch", "64", "TEST.BATCH_SIZE_PER_GPU", "4"])
    for key in RATES:
        assert result[key] > 0, key
    assert result["encode_max_abs_diff"] == 0.0
    assert result["decode_max_px_diff"] < 1e-3
    assert result["nms_identical"] is True
    assert result["eval_num_dets"] >= 2000 and 0 < result["eval_kept"] <= result["eval_num_dets"]
    # floor from the known-good run (contract branch, 2026-12-06, CPU): the generated evaluation
    # set (seeded) scores AP 0.609 with 1608 of 2025 detections kept by OKS-NMS
    assert 0.58 <= result["eval_ap"] <= 1.0
    assert result["params"] > 0 and result["gmacs"] > 0 and result["peak_memory_mb"] > 0
    assert result["batch"] == 4  # the trailing override reached the config
    assert result["input_size"] == [64, 64] and result["output_shape"] == (17, 16, 16)
    printed = capsys.readouterr().out
    assert "loop reference" in printed and "identical keeps" in printed and "creating index" not in printed


def test_cuda_request_without_cuda(tiny_cfg_file):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA"):
        benchmark.main(["--cfg", tiny_cfg_file, "--device", "cuda"])


class _OffByALittle(GaussianHeatmapCodec):
    def encode(self, joints, joints_vis):
        target, weight = super().encode(joints, joints_vis)
        return target + np.float32(1e-6), weight

    def decode(self, output, meta):
        preds, maxvals = super().decode(output, meta)
        return preds + 0.01, maxvals


def test_reference_checks_catch_differences(synthetic_cfg):
    """The identity checks are not vacuous: a 1e-6 target or 0.01 px decode error stops the tool."""
    cfg = synthetic_cfg
    codec = _OffByALittle(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.HEATMAP_SIZE, cfg.MODEL.SIGMA)
    rng = np.random.default_rng(0)
    with pytest.raises(ReferenceMismatch):
        bench_encode(cfg, codec, 5, rng)
    with pytest.raises(ReferenceMismatch):
        bench_decode(cfg, codec, torch.device("cpu"), (17, 16, 16), 8, 1, rng)


DECODERS = {"gaussian": "_reference.get_final_preds_loop", "dark": "_reference_dark.get_final_preds_dark_loop",
            "soft_argmax": "_reference_soft_argmax.get_final_preds_soft_argmax_loop",
            "udp": "_reference_udp.get_final_preds_udp_loop", "udp_offset": "_reference_udp.get_final_preds_offset_loop"}


@pytest.fixture
def restore_threads():
    """--threads 1 keeps the small runs below steady when another process shares the cores (two OpenMP
    threads on a busy 2-core machine made the HRNet forward 40x slower); main() sets it process-wide."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_decoders_stage(tiny_cfg_file, capsys, restore_threads):
    """Every codec against its loop reference; 64 crops in chunks of 16 cycle through a pool of 32, the
    references decode the first 24."""
    result = benchmark.main(["--cfg", tiny_cfg_file, "--device", "cpu", "--threads", "1", "--stages", "none",
                             "--decoders", "64", "--decode-batch", "16", "--decoders-ref", "24"])
    assert result["stages"] == ["decoders"] and "forward_crops_s" not in result
    assert list(result["decoders"]) == list(DECODERS)
    for name, d in result["decoders"].items():
        assert d["reference"] == DECODERS[name]
        assert d["crops"] == 64 and d["ref_crops"] == 24
        assert d["crops_s"] > 0 and d["ref_crops_s"] > 0 and d["speedup"] > 0, name
        assert d["max_px_diff"] < 1e-3, name
        assert d["shape"] == ((51 if name == "udp_offset" else 17), 64, 48)
    printed = capsys.readouterr().out
    assert "loop crops/s (numpy, first 24)" in printed and all(f"\n{name} " in printed for name in DECODERS)


def test_forward_stage_needs_no_data(tmp_path, restore_threads):
    """--stages forward on an official HRNet YAML (shrunk) with no COCO on disk."""
    cfg_file = os.path.join(ROOT, "experiments", "coco", "hrnet", "w32_256x192_adam_lr1e-3.yaml")
    absent = tmp_path / "no_coco"
    result = benchmark.main(["--cfg", cfg_file, "--device", "cpu", "--threads", "1", "--stages", "forward",
                             "--iters", "1",
                             "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
                             "TEST.BATCH_SIZE_PER_GPU", "2", "DATASET.ROOT", str(absent)])
    assert result["stages"] == ["forward"] and result["model"] == "pose_hrnet"
    assert result["forward_crops_s"] > 0 and result["forward_flip_crops_s"] > 0
    assert result["output_shape"] == (17, 16, 16)
    assert not any(key.startswith(("data_", "encode_", "decode_", "eval_")) for key in result)
    assert not absent.exists()


def test_stage_selection_errors(tiny_cfg_file):
    for bad in (["--stages", "forward,tarin"], ["--stages", "none"], ["--stages", ""], ["--decoders", "-1"]):
        with pytest.raises(SystemExit):
            benchmark.parse_args(["--cfg", tiny_cfg_file] + bad)
    assert benchmark.parse_args(["--cfg", tiny_cfg_file, "--stages", "memory,forward"]).stages == ["forward", "memory"]


def test_decoder_names_select_rows(tiny_cfg_file, restore_threads):
    """--decoder-names runs only the named decoders (an unknown name is a usage error)."""
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--cfg", tiny_cfg_file, "--decoders", "8", "--decoder-names", "udp,upd"])
    result = benchmark.main(["--cfg", tiny_cfg_file, "--device", "cpu", "--threads", "1", "--stages", "none",
                             "--decoders", "16", "--decode-batch", "8", "--decoder-names", "udp_offset,udp"])
    assert list(result["decoders"]) == ["udp", "udp_offset"]
    assert all(d["max_px_diff"] < 1e-3 for d in result["decoders"].values())


@pytest.mark.parametrize("name", list(DECODERS))
def test_every_codec_matches_its_references(synthetic_cfg, name):
    """encode_reference / decode_reference pick the right loop for each codec, and both checks pass."""
    codec = decoder_codecs()[name]
    assert decode_reference(codec).name == DECODERS[name]
    rng = np.random.default_rng(0)
    out = bench_encode(synthetic_cfg, codec, 20, rng)
    assert out["encode_max_abs_diff"] == 0.0
    assert out["encode_ref_items"] == (1 if name == "udp_offset" else 20)  # the offset loop runs per pixel
    shape = (51 if name == "udp_offset" else 17, 64, 48)
    out = bench_decode(synthetic_cfg, codec, torch.device("cpu"), shape, 8, 1, rng)
    assert out["decode_max_px_diff"] < 1e-3 and out["decode_speedup"] > 0


@pytest.mark.parametrize("name", list(DECODERS))
def test_decode_checks_catch_differences(synthetic_cfg, name):
    """0.01 px off stops the decode stage for every codec, not only the Gaussian one."""
    codec = decoder_codecs()[name]

    class OffByALittle(type(codec)):
        def decode(self, output, meta):
            preds, maxvals = super().decode(output, meta)
            return preds + 0.01, maxvals

    codec.__class__ = OffByALittle
    shape = (51 if name == "udp_offset" else 17, 16, 16)
    with pytest.raises(ReferenceMismatch, match="px"):
        bench_decode(synthetic_cfg, codec, torch.device("cpu"), shape, 4, 1, np.random.default_rng(0))


@pytest.mark.parametrize("in_vis_thre", [None, 0.5])
def test_oks_loop_references_match_library(in_vis_thre):
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(0, 12))
        base = rng.uniform(0, 200, (1, 17, 2))
        kpts = np.concatenate([base + rng.normal(0, rng.uniform(0.5, 20), (n, 17, 2)), rng.random((n, 17, 1))], 2)
        scores = rng.random(n).round(1)  # ties: both must break them as argsort()[::-1] does
        areas = rng.uniform(500, 5000, n)
        thre = float(rng.choice([0.3, 0.5, 0.9]))
        expected = oks_nms(kpts, scores, areas, thre, COCO_PERSON_SIGMAS, in_vis_thre)
        assert _reference.oks_nms_loop(kpts, scores, areas, thre, COCO_PERSON_SIGMAS, in_vis_thre) == expected
        if n:
            np.testing.assert_array_equal(
                _reference.oks_iou_loop(kpts[0], kpts, areas[0], areas, COCO_PERSON_SIGMAS, in_vis_thre),
                oks_iou(kpts[0], kpts, areas[0], areas, COCO_PERSON_SIGMAS, in_vis_thre))


def test_eval_set_is_valid_coco():
    sigmas = np.asarray(COCO_PERSON_SIGMAS)
    gt, dets, kpts = make_eval_set(np.random.default_rng(0), 500, sigmas)
    assert len(dets) >= 500 and kpts.shape == (len(dets), 17, 3)
    image_ids = {im["id"] for im in gt["images"]}
    assert all(d["image_id"] in image_ids and d["bbox"][2] > 0 and d["bbox"][3] > 0 for d in dets)
    assert all(len(a["keypoints"]) == 51 and a["num_keypoints"] == sum(v > 0 for v in a["keypoints"][2::3])
               for a in gt["annotations"])


def test_scaling_runs(tiny_cfg_file, capsys, restore_threads):
    """--scaling / --scaling-dets: us per crop for every decoder at each size, us per detection at each set size."""
    result = benchmark.main(["--cfg", tiny_cfg_file, "--device", "cpu", "--threads", "1", "--stages", "none",
                             "--scaling", "16,48", "--scaling-dets", "100,300", "--decode-batch", "16"])
    assert result["stages"] == ["scaling"]
    assert list(result["scaling_decode"]) == list(DECODERS)
    for name, per_size in result["scaling_decode"].items():
        assert list(per_size) == [16, 48] and all(us > 0 for us in per_size.values()), name
    assert list(result["scaling_evaluate"]) == [100, 300]
    for n, row in result["scaling_evaluate"].items():
        assert row["dets"] >= n and row["images"] > 0 and row["nms_us"] > 0 and row["evaluate_us"] > row["nms_us"]
    printed = capsys.readouterr().out
    assert "scaling: decode udp_offset" in printed and "us/det" in printed
    for bad in (["--scaling", "10,x"], ["--scaling-dets", "0"], ["--scaling", ","]):
        with pytest.raises(SystemExit):
            benchmark.parse_args(["--cfg", tiny_cfg_file, "--stages", "none"] + bad)
