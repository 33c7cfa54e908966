"""tools/summary.py: parameter total, MACs and per-stage shapes, checked against
the model itself and against shapes worked out by hand."""
from __future__ import annotations

import json
import os
import re

import pytest
import summary
import torch
from conftest import ROOT, TINY_MODEL
from posezoo.config import load_config
from posezoo.models import build_model
from posezoo.utils.utils import count_flops
from torch import nn

CFG = os.path.join(ROOT, "experiments", "synthetic", "pose_resnet_18_128x96.yaml")


def _rows(text: str) -> dict[str, list[str]]:
    """stage name -> [output, params] per printed table row (the first call of each)."""
    rows = {}
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 3 and parts[0] not in rows:
            rows[parts[0]] = parts[1:]
    return rows


def test_pose_resnet_summary(capsys):
    result = summary.main(["--cfg", CFG, *TINY_MODEL])
    out = capsys.readouterr().out
    model = build_model(load_config(CFG, TINY_MODEL))
    total = sum(p.numel() for p in model.parameters())
    assert result["params"] == total
    assert f"parameters: {total:,}" in out
    assert re.search(rf"^total\s+{total:,}$", out, re.MULTILINE)

    rows = _rows(out)
    # 64x64 input: stride-2 conv1 and max pool -> 16x16; layer2-4 halve it each -> 2x2;
    # three stride-2 deconvs (32 filters) -> 16x16; a 1x1 conv to 17 joints
    expected = {"conv1": "64x32x32", "maxpool": "64x16x16", "layer1": "64x16x16", "layer2": "128x8x8",
                "layer3": "256x4x4", "layer4": "512x2x2", "deconv_layers": "32x16x16", "final_layer": "17x16x16"}
    assert {name: rows[name][0] for name in expected} == expected
    assert list(rows)[1:11] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                "deconv_layers", "final_layer"]  # the order they run in
    assert rows["conv1"][1] == f"{64 * 3 * 7 * 7:,}"
    assert rows["layer4"][1] == f"{sum(p.numel() for p in model.layer4.parameters()):,}"
    assert rows["final_layer"][1] == f"{32 * 17 + 17:,}"

    # MACs of the 1x1 head alone by hand, and the total as printed in both units
    head = count_flops(nn.Sequential(model.final_layer), (32, 16, 16))
    assert head == 16 * 16 * 17 * 32
    macs = result["macs"]
    assert f"MACs: {macs:,} = {macs / 1e9:.3f} G = {macs / 2 ** 30:.3f} x 2^30" in out


def test_hrnet_branches_transitions_and_repeated_stem_relu(capsys):
    def stage(channels):
        return {"NUM_MODULES": 1, "NUM_BRANCHES": len(channels), "BLOCK": "BASIC",
                "NUM_BLOCKS": [1] * len(channels), "NUM_CHANNELS": channels, "FUSE_METHOD": "SUM"}

    opts = ["MODEL.NAME", "pose_hrnet", *TINY_MODEL[2:8], "MODEL.EXTRA", json.dumps(
        {"PRETRAINED_LAYERS": ["*"], "FINAL_CONV_KERNEL": 1, "STAGE2": stage([8, 16]),
         "STAGE3": stage([8, 16, 32]), "STAGE4": stage([8, 16, 32, 64])})]
    result = summary.main(["--cfg", CFG, *opts])
    out = capsys.readouterr().out
    model = build_model(load_config(CFG, opts))
    assert result["params"] == sum(p.numel() for p in model.parameters())
    assert sum(r.params for r in result["stages"]) == result["params"]
    rows = _rows(out)
    # stem: two stride-2 convs -> 16x16; branches at 1/4, 1/8, 1/16 of the input
    assert rows["stage2"][0] == "[8x16x16, 16x8x8]"
    assert rows["stage3"][0] == "[8x16x16, 16x8x8, 32x4x4]"
    assert rows["transition3.3"][0] == "64x2x2"  # the ModuleList is listed element by element
    assert rows["final_layer"][0] == "17x16x16"
    relu_calls = [r for r in result["stages"] if r.name == "relu"]
    assert len(relu_calls) == 2 and relu_calls[1].repeat and re.search(r"^relu\s+64x16x16\s+\(again\)$", out, re.MULTILINE)


def test_stage_table_lists_idle_stages_and_own_parameters():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(5))
            self.convs = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 2, 1)])
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            return [c(x) for c in self.convs[:1]] + [self.convs[1](self.convs[0](x))]

    rows = summary.stage_table(Toy(), (3, 6, 5))
    assert [(r.name, r.shape, r.params, r.repeat) for r in rows] == [
        ("convs.0", "4x6x5", 4 * 3 * 9 + 4, False), ("convs.0", "4x6x5", 0, True), ("convs.1", "2x6x5", 10, False),
        ("unused", "(not called)", 6, False), ("(own parameters)", "", 5, False)]


# tools/summary.py on the multi-stage YAMLs (full size, batch 1): posezoo's MAC count
# (exact) and its distance to the published "GFLOPs" (MACs / 2^30, as HRNet counts).
# MSPN paper: 4.4 (1 stage; the other stages in docs/multistage.md); RSN README: RSN-18 2.5, RSN-50 6.4.
# MSPN comes out 7-11 % above the paper (the paper's count is not published as code);
# RSN-18 16 % below; RSN-50 (expansion-1 RSB, mmpose's tree) at 3.79 is far below 6.4: the
# paper's RSN-50 is not in the official repo (only RSN-18 exps), so that gap stays open
# (docs/multistage.md).
MULTISTAGE_MACS = [
    ("coco/mspn/mspn_1stg_256x192.yaml", 25141708, 5072646144, 4.4, 0.10),
    ("coco/rsn/rsn_18_256x192.yaml", 9159072, 2245441536, 2.5, 0.20),
    ("coco/rsn/rsn_50_256x192.yaml", 19355132, 4067801088, 6.4, None),
]


@pytest.mark.parametrize("path,params,macs,paper,tol", MULTISTAGE_MACS)
def test_multistage_summary_against_papers(path, params, macs, paper, tol, capsys):
    result = summary.main(["--cfg", os.path.join(ROOT, "experiments", path)])
    assert (result["params"], result["macs"]) == (params, macs)
    assert f"parameters: {params:,}" in capsys.readouterr().out
    if tol is not None:
        assert abs(macs / 2 ** 30 - paper) / paper < tol
    else:  # the known gap: below the published figure by more than a third
        assert macs / 2 ** 30 < 0.65 * paper
