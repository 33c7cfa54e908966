"""The whole test flow (tools/test.py: detected boxes, crops, flip test, decode,
rescoring, OKS-NMS, results file) on the shared COCO samples against the results
files of the official code, run once under /tmp on the same weights (issue 10).

The weights are a small HRNet (the official YAMLs with ``SMALL_EXTRA``: widths
8/16/32/64, one module of one block per stage), or for SimpleBaseline the ResNet
YAML at ``NUM_LAYERS 18``, drawn by ``deterministic_state``.
Its raw maps are nearly flat and mostly negative (no joint would reach the DARK
Taylor step), so the final layer is rescaled: weights and bias times
``FINAL_GAIN`` plus a per-map bias ``FINAL_BIAS`` that centres each map a
little above 0 (measured once on these crops), which gives peaked maps.

Golden values (``official_results_files.json``): per flow and image, the
official results in file order, each as integers of 1e-4: the score, then 17
(x, y, score). The boxes are the detections scoring 0.3 or more (33 of the
118; ``TEST.IMAGE_THRE 0.3``, on both sides) so that the three flows take
~20 s on one thread; on all 118 boxes the three flows were compared the same
way and are equal too (docs/models.md, "Official results files"). Official
runs: DarkPose ``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml``, UDP-Pose
master ``w32_256x192_adam_lr1e-3_offset_ofm.yaml``, HRNet
``w32_256x192_adam_lr1e-3.yaml`` and (SimpleBaseline's flow, as HRNet's repository
carries it) ``resnet/res50_256x192_d256x3_adam_lr1e-3.yaml``, each with the overrides of ``flow_opts``,
on CPU with numpy 2 (``np.float`` aliased to float), torchvision's
ToTensor+Normalize written out with the same ops, and the compiled box-NMS
modules stubbed (OKS-NMS is pure Python)."""
import json
import os

import numpy as np
import pytest
import torch

import test as test_tool
from conftest import COCO_SAMPLES, ROOT, deterministic_state, link_coco_samples, needs_shared
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.models import build_model

GOLDEN = os.path.join(os.path.dirname(__file__), "official_results_files.json")

SMALL_EXTRA = []
for _stage, _branches in (("STAGE2", 2), ("STAGE3", 3), ("STAGE4", 4)):
    SMALL_EXTRA += [f"MODEL.EXTRA.{_stage}.NUM_MODULES", "1", f"MODEL.EXTRA.{_stage}.NUM_BLOCKS", str([1] * _branches),
                    f"MODEL.EXTRA.{_stage}.NUM_CHANNELS", str([8, 16, 32, 64][:_branches])]

FINAL_GAIN = 5.0
NOISE = 3e-6  # relative: float32 differences between CPUs' forward kernels are ~1e-6
NOISE_DRAWS = 5
#: per output map: added to the rescaled final bias (heatmaps; for UDP's offset
#: head the classification maps, its offset maps get 0)
FINAL_BIAS = {
    "offset": [-4.69, 10.14, 10.14, -0.85, -0.85, -6.62, -6.62, -3.77, -3.77, 1.4, 1.4, 1.29, 1.29, 7.21, 7.21, -8.63,
               -8.63],
    "heatmap": [1.24, 0.36, 0.36, 1.16, 1.16, 0.93, 0.93, 1.61, 1.61, -0.85, -0.85, -1.49, -1.49, -0.2, -0.2,
                1.75, 1.75],
    # ResNet-18 + deconv head: 0.25 minus each map's mean over these crops (maps are near flat)
    "resnet": [0.47, 0.23, 0.59, 0.76, -0.19, -0.96, 0.45, -0.39, 0.18, 0.76, -0.43, -0.47, 0.28, -1.48, 0.29, 1.47,
               1.3],
}


def flow_opts(root: str, model_file: str, out_dir: str, flow: str = "hrnet") -> list:
    """The overrides a flow runs with, official and posezoo alike."""
    small = ["MODEL.EXTRA.NUM_LAYERS", "18"] if FLOWS[flow][0] == "resnet" else SMALL_EXTRA
    return small + ["DATASET.ROOT", root, "TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE",
                          os.path.join(COCO_SAMPLES, "test_coco_det_AP_H_56.json"), "TEST.MODEL_FILE", model_file,
                          "WORKERS", "0", "OUTPUT_DIR", out_dir, "LOG_DIR", os.path.join(out_dir, "log"),
                          "DEBUG.DEBUG", "False", "TEST.FLIP_TEST", "True", "GPUS", "(0,)",
                          "MODEL.INIT_WEIGHTS", "False", "MODEL.PRETRAINED", "''", "TEST.IMAGE_THRE", "0.3"]


def small_state(model: torch.nn.Module, bias_kind: str, maps_per_joint: int = 1) -> dict:
    """``deterministic_state`` (seed 0) with the final layer rescaled (module docstring)."""
    state = deterministic_state(model, seed=0)
    shift = torch.zeros_like(state["final_layer.bias"]).reshape(-1, maps_per_joint)
    shift[:, 0] = torch.tensor(FINAL_BIAS[bias_kind])
    state["final_layer.weight"] = state["final_layer.weight"] * FINAL_GAIN
    state["final_layer.bias"] = state["final_layer.bias"] * FINAL_GAIN + shift.reshape(-1)
    return state


#: flow -> (folder under experiments/coco, posezoo YAML, FINAL_BIAS kind, maps per joint)
FLOWS = {
    "darkpose": ("hrnet", "w32_256x192_adam_lr1e-3_dark.yaml", "heatmap", 1),
    "hrnet": ("hrnet", "w32_256x192_adam_lr1e-3.yaml", "heatmap", 1),
    "udp_offset": ("hrnet", "w32_256x192_adam_lr1e-3_offset_ofm.yaml", "offset", 3),
    "simplebaseline": ("resnet", "res50_256x192_d256x3_adam_lr1e-3.yaml", "resnet", 1),
}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """The shared samples in HRNet's layout, by symlinks."""
    return link_coco_samples(tmp_path_factory.mktemp("coco"))


def run_flow(flow: str, root: str, tmp_path, monkeypatch=None) -> tuple[dict, tuple]:
    """posezoo's tools/test.py on the flow's YAML and weights: its results file grouped
    by image in file order, as the golden values are, and (with ``monkeypatch``) the
    codec's own decode with what each of its calls saw: (codec, maps, meta, coordinates)."""
    folder, yaml_name, bias_kind, maps_per_joint = FLOWS[flow]
    cfg_path = os.path.join(ROOT, "experiments", "coco", folder, yaml_name)
    weights = str(tmp_path / f"{flow}.pth")
    opts = flow_opts(root, weights, str(tmp_path / "out"), flow)
    cfg = load_config(cfg_path, opts)
    model = build_model(cfg, is_train=False)
    torch.save(small_state(model, bias_kind, maps_per_joint), weights)
    calls, plain_decode = [], None
    if monkeypatch is not None:
        codec_class = type(build_codec(cfg))
        plain_decode = codec_class.decode

        def recording_decode(codec, output, meta):
            coords, scores = plain_decode(codec, output, meta)
            calls.append((codec, output.detach().clone(), dict(meta), coords.detach().clone()))
            return coords, scores
        monkeypatch.setattr(codec_class, "decode", recording_decode)
    test_tool.main(["--cfg", cfg_path, *opts])
    final = os.path.join(str(tmp_path / "out"), "coco", cfg.MODEL.NAME, yaml_name[:-len(".yaml")])
    with open(os.path.join(final, "results", "keypoints_val2017_det_results_0.json")) as f:
        results = json.load(f)
    per_image = {}
    for r in results:
        per_image.setdefault(str(r["image_id"]), []).append([r["score"], *r["keypoints"]])
    return per_image, (plain_decode, calls)


def noise_sensitivity(plain_decode, calls: list) -> tuple[np.ndarray, np.ndarray]:
    """Every decoded crop's image coordinates (N, K, 2) and how far each joint moves (N, K)
    when its maps carry float32-level noise: ``NOISE`` relative, the most of ``NOISE_DRAWS``
    draws. The official results were made on another CPU, whose kernels sum the forward in
    another order: a joint decoded from a near tie (two equal maxima, a quarter-offset
    neighbour pair, a flat DARK Hessian) lands elsewhere there for reasons no decoder controls."""
    coords, moved = [], []
    for codec, maps, meta, decoded in calls:
        shifts = []
        for draw in range(NOISE_DRAWS):
            noise = torch.randn(maps.shape, generator=torch.Generator().manual_seed(draw), dtype=maps.dtype)
            noisy, _ = plain_decode(codec, maps * (1 + NOISE * noise), meta)
            shifts.append((noisy - decoded).abs().amax(-1))
        coords.append(decoded.numpy())
        moved.append(torch.stack(shifts).amax(0).numpy())
    return np.concatenate(coords), np.concatenate(moved)


@needs_shared
@pytest.mark.parametrize("flow", list(FLOWS))
def test_results_file_equals_the_official_one(flow, coco_root, tmp_path, monkeypatch):
    """Same people kept per image (OKS-NMS after rescoring) in the same order,
    scores within 1e-4 and every keypoint within 1e-3 px (plus the 5e-5 of the
    golden rounding) plus twice what float32 noise on its maps moves it
    (``noise_sensitivity``). That slack matters for a few near-tie joints only: on
    the AVX2 CPU of 2026-12-07, 6 of the DarkPose flow's 561 maps move more than
    1e-3 px (one argmax tie 29 px), and exactly those differed from the golden
    values made on an AVX-512 CPU; the test fails if more than 2 % of the joints
    need it. On these weights no DARK step is Taylor-singular by the rule of
    ``codecs/dark.py`` (|det H| < 1e-4 |H|_F^2). Without this branch's two DarkPose
    fixes (crop matrix, float32 log) the DarkPose flow here is up to 2.8e-3 px off
    (on all 118 boxes of unscaled weights: 0.3 px)."""
    with open(GOLDEN) as f:
        golden = json.load(f)[flow]
    ours, decodes = run_flow(flow, coco_root, tmp_path, monkeypatch)
    decoded, moved = noise_sensitivity(*decodes)
    assert {k: len(v) for k, v in ours.items()} == {k: len(v) for k, v in golden.items()}
    slack_joints = 0
    for image_id, expected in golden.items():
        got = np.asarray(ours[image_id], np.float64)
        want = np.asarray(expected, np.float64) * 1e-4
        np.testing.assert_allclose(got[:, 0], want[:, 0], atol=1.5e-4, rtol=0, err_msg=f"{flow} {image_id} score")
        kpts, want_kpts = got[:, 1:].reshape(-1, 17, 3), want[:, 1:].reshape(-1, 17, 3)
        # each kept person's crop: the decode whose coordinates the results file holds (to 1e-4)
        crop = np.abs(decoded[None] - kpts[:, None, :, :2]).reshape(len(kpts), len(decoded), -1).max(-1)
        assert (crop.min(1) < 1e-3).all(), f"{flow} {image_id}: a kept person matches no decoded crop"
        slack = 2 * moved[crop.argmin(1)]
        slack_joints += int((slack > 1e-3).sum())
        error = np.abs(kpts[..., :2] - want_kpts[..., :2]).max(-1)
        assert (error <= 1e-3 + 5e-5 + slack).all(), \
            f"{flow} {image_id} keypoints: {error.max():.2e} px off, slack {slack[error == error.max()].max():.2e}"
        np.testing.assert_allclose(kpts[..., 2], want_kpts[..., 2], atol=1.5e-4, rtol=0,
                                   err_msg=f"{flow} {image_id} joint scores")
    assert slack_joints <= 0.02 * sum(len(v) for v in golden.values()) * 17