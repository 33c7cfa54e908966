"""tools/export_onnx.py: the ONNX graph, run by onnxruntime at batch sizes the
export never saw, gives PyTorch's outputs; with --with-decode it gives
codec.decode's coordinates and scores."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY_MODEL, deterministic_state
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.models import build_model

MISSING = "is not installed (pip install -e '.[test]', or pip install onnx onnxruntime)"
pytest.importorskip("onnx", reason=f"onnx, which torch.onnx.export needs, {MISSING}")
ort = pytest.importorskip("onnxruntime", reason=f"onnxruntime {MISSING}")
import export_onnx

CFG = os.path.join(ROOT, "experiments", "synthetic", "pose_resnet_18_128x96.yaml")
TOL = 1e-4


def _stage(channels: list[int], modules: int = 1) -> dict:
    return {"NUM_MODULES": modules, "NUM_BRANCHES": len(channels), "BLOCK": "BASIC",
            "NUM_BLOCKS": [1] * len(channels), "NUM_CHANNELS": channels, "FUSE_METHOD": "SUM"}


SIZE_64x48 = ["MODEL.IMAGE_SIZE", "[48, 64]", "MODEL.HEATMAP_SIZE", "[12, 16]", "MODEL.PRETRAINED", "''"]
TINY_HRNET = ["MODEL.NAME", "pose_hrnet", *TINY_MODEL[2:8], "MODEL.EXTRA", json.dumps(
    {"PRETRAINED_LAYERS": ["*"], "FINAL_CONV_KERNEL": 1, "STAGE2": _stage([8, 16]),
     "STAGE3": _stage([8, 16, 32]), "STAGE4": _stage([8, 16, 32, 64])})]
TINY_LPN = ["MODEL.NAME", "lpn", *SIZE_64x48, "MODEL.EXTRA", json.dumps(
    {"NUM_LAYERS": 50, "NUM_DECONV_FILTERS": [32, 32]})]
TINY_HOURGLASS = ["MODEL.NAME", "pose_hourglass", "MODEL.NUM_JOINTS", "16", *SIZE_64x48, "MODEL.EXTRA",
                  json.dumps({"NUM_STACKS": 2, "NUM_FEATURES": 32, "DEPTH": 2})]
TINY_MSPN = ["MODEL.NAME", "mspn", *SIZE_64x48, "MODEL.TARGET_TYPE", "megvii", "MODEL.TARGET_KERNELS",
             "[15, 11, 9, 7, 11, 9, 7, 5]", "MODEL.EXTRA", json.dumps(
                 {"NUM_STAGES": 2, "NUM_BLOCKS": [1, 1, 1, 1], "UNIT_CHANNELS": 32})]
STAGE_OUTPUTS = {"pose_hourglass": 2, "mspn": 8}  # one output per stack / per MSPN unit


def _model_and_weights(opts: list, tmp_path) -> tuple[torch.nn.Module, str]:
    """The configured model with a seeded state (not its init), saved for --weights."""
    model = build_model(load_config(CFG, opts)).eval()
    model.load_state_dict(deterministic_state(model, seed=1))
    path = str(tmp_path / "weights.pth")
    torch.save(model.state_dict(), path)
    return model, path


def _session(path: str):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def _crops(cfg, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    width, height = cfg.MODEL.IMAGE_SIZE
    images = torch.randn(batch, 3, height, width, generator=g)
    center = torch.rand(batch, 2, generator=g) * 400 + 50
    scale = torch.rand(batch, 2, generator=g) * 0.5 + 0.75
    return images, center, scale


@pytest.mark.parametrize("name, opts", [("pose_resnet", TINY_MODEL), ("pose_hrnet", TINY_HRNET),
                                        ("lpn", TINY_LPN), ("pose_hourglass", TINY_HOURGLASS),
                                        ("mspn", TINY_MSPN)])
def test_onnx_matches_pytorch_at_any_batch(name, opts, tmp_path):
    model, weights = _model_and_weights(opts, tmp_path)
    cfg = load_config(CFG, opts)
    path = export_onnx.main(["--cfg", CFG, "--weights", weights, "--output", str(tmp_path / "m.onnx"), *opts])
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].shape[0] == "batch"  # a named, dynamic axis
    for batch in (1, 3):
        images, _, _ = _crops(cfg, batch, seed=batch)
        with torch.no_grad():
            expected = model(images)
        if name in STAGE_OUTPUTS:  # one output per stage; the last is exported (what testing decodes)
            assert len(expected) == STAGE_OUTPUTS[name]
            expected = expected[-1]
        (heatmaps,) = session.run(None, {"images": images.numpy()})
        diff = float(np.abs(heatmaps - expected.numpy()).max())
        print(f"{name} batch {batch}: heatmaps {tuple(heatmaps.shape)}, max abs diff {diff:.2e}")
        assert heatmaps.shape == tuple(expected.shape)
        assert diff <= TOL


DECODE_CASES = [("gaussian", TINY_MODEL),
                ("soft_argmax", TINY_LPN + ["TEST.SOFT_ARGMAX", "True", "TEST.BIAS", "0.5"])]
# Model + decode against model + codec.decode. Argmax-based decoding passes the
# model's float32 rounding (< 1e-6) through untouched. LPN's soft-argmax
# multiplies the maps by beta = 160 before the softmax, so the same rounding
# moves its expectation by ~1e-5 heatmap px, ~2e-4 image px at these crop
# zooms (about 20 px per heatmap px); the decode alone is checked to 1e-4 below.
END_TO_END_TOL = {"gaussian": TOL, "soft_argmax": 1e-3}


@pytest.mark.parametrize("codec, opts", DECODE_CASES)
def test_with_decode_matches_codec_decode(codec, opts, tmp_path):
    model, weights = _model_and_weights(opts, tmp_path)
    cfg = load_config(CFG, opts)
    reference = build_codec(cfg)
    assert type(reference).__name__ == {"gaussian": "GaussianHeatmapCodec", "soft_argmax": "SoftArgmaxCodec"}[codec]
    path = export_onnx.main(["--cfg", CFG, "--weights", weights, "--output", str(tmp_path / "d.onnx"),
                             "--with-decode", *opts])
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == ["images", "center", "scale"]
    for batch in (1, 3):
        images, center, scale = _crops(cfg, batch, seed=10 + batch)
        with torch.no_grad():
            want_coords, want_maxvals = reference.decode(model(images), {"center": center, "scale": scale})
        coords, maxvals = session.run(None, {"images": images.numpy(), "center": center.numpy(),
                                             "scale": scale.numpy()})
        assert coords.dtype == np.float64 and coords.shape == tuple(want_coords.shape)
        coord_diff = float(np.abs(coords - want_coords.numpy()).max())
        score_diff = float(np.abs(maxvals - want_maxvals.numpy()).max())
        print(f"{codec} model + decode, batch {batch}: coords max abs diff {coord_diff:.2e} px, "
              f"maxvals {score_diff:.2e}")
        assert coord_diff <= END_TO_END_TOL[codec] and score_diff <= TOL


@pytest.mark.parametrize("codec, opts", DECODE_CASES)
def test_decode_graph_alone_matches_codec_decode(codec, opts, tmp_path):
    """The decode part on identical heatmaps (the model's): within 1e-4 px."""
    model, _ = _model_and_weights(opts, tmp_path)
    cfg = load_config(CFG, opts)
    images, center, scale = _crops(cfg, 2, seed=20)
    with torch.no_grad():
        heatmaps = model(images)
    size = (heatmaps.shape[3], heatmaps.shape[2])
    graph = export_onnx.WithDecode(torch.nn.Identity(), export_onnx.decode_module(export_onnx.exportable_codec(cfg), size))
    path = str(tmp_path / "decode.onnx")
    export_onnx.export_graph(graph, (heatmaps, center, scale), ["heatmaps", "center", "scale"],
                             ["coords", "maxvals"], path)
    session = _session(path)
    for batch in (1, 3):
        images, center, scale = _crops(cfg, batch, seed=30 + batch)
        with torch.no_grad():
            heatmaps = model(images)
        want_coords, want_maxvals = build_codec(cfg).decode(heatmaps, {"center": center, "scale": scale})
        coords, maxvals = session.run(None, {"heatmaps": heatmaps.numpy(), "center": center.numpy(),
                                             "scale": scale.numpy()})
        coord_diff = float(np.abs(coords - want_coords.numpy()).max())
        score_diff = float(np.abs(maxvals - want_maxvals.numpy()).max())
        print(f"{codec} decode alone, batch {batch}: coords max abs diff {coord_diff:.2e} px, "
              f"maxvals {score_diff:.2e}")
        assert coord_diff <= TOL and score_diff == 0


@pytest.mark.parametrize("opts, name", [(["TEST.BLUR_KERNEL", "11"], "dark"),
                                        (["MODEL.TARGET_TYPE", "udp"], "udp"),
                                        (["MODEL.TARGET_TYPE", "offset"], "udp")])
def test_with_decode_refuses_non_graph_codecs(opts, name, tmp_path):
    with pytest.raises(ValueError, match=f"the '{name}' codec's decode cannot be exported to ONNX"):
        export_onnx.main(["--cfg", CFG, "--output", str(tmp_path / "x.onnx"), "--with-decode",
                          "OUTPUT_DIR", str(tmp_path), *TINY_MODEL, *opts])
    assert not (tmp_path / "x.onnx").exists()


def test_default_weights_follow_tools_test(tmp_path, caplog):
    """No --weights: random init with a warning, or the experiment's final_state.pth once it exists."""
    opts = ["OUTPUT_DIR", str(tmp_path / "out"), *TINY_MODEL]
    with caplog.at_level("WARNING", logger="posezoo.export"):
        export_onnx.main(["--cfg", CFG, "--output", str(tmp_path / "random.onnx"), *opts])
    assert "randomly initialised pose_resnet" in caplog.text

    model, _ = _model_and_weights(opts, tmp_path)
    final_dir = tmp_path / "out" / "synthetic" / "pose_resnet" / "pose_resnet_18_128x96"
    torch.save(model.state_dict(), final_dir / "final_state.pth")
    path = export_onnx.main(["--cfg", CFG, *opts])
    assert path == str(final_dir / "pose_resnet_18_128x96.onnx")
    images, _, _ = _crops(load_config(CFG, opts), 2, seed=0)
    (heatmaps,) = _session(path).run(None, {"images": images.numpy()})
    with torch.no_grad():
        assert np.abs(heatmaps - model(images).numpy()).max() <= TOL


def test_export_checks_its_own_file_with_onnxruntime(tmp_path, caplog):
    """The tool runs the file it wrote and logs the largest difference; a graph
    that computes something else than the model is refused."""
    _, weights = _model_and_weights(TINY_MODEL, tmp_path)
    with caplog.at_level("INFO"):
        path = export_onnx.main(["--cfg", CFG, "--weights", weights, "--output", str(tmp_path / "m.onnx"),
                                 *TINY_MODEL])
    line = next(r.getMessage() for r in caplog.records if "onnxruntime vs PyTorch" in r.getMessage())
    assert float(line.rsplit(" ", 1)[1]) <= TOL
    torch.manual_seed(123)  # other weights than the exported ones
    other = export_onnx.LastStage(build_model(load_config(CFG, TINY_MODEL), is_train=False)).eval()
    images = torch.zeros(2, 3, 64, 64)
    with pytest.raises(RuntimeError, match="onnxruntime differs from PyTorch by"):
        export_onnx.self_check(other, path, (images,), ["images"])
