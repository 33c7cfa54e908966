"""The reconstruction component trained and tested through tools/train.py and tools/test.py."""
import json
import math

import pytest

import test as test_tool
import train as train_tool
from conftest import LIFTING_TINY, write_cfg


def test_train_and_test_through_the_tools(tmp_path):
    cfg_path = write_cfg(tmp_path / "lift.yaml", LIFTING_TINY + [
        "OUTPUT_DIR", str(tmp_path / "out"), "TRAIN.END_EPOCH", "1", "TRAIN.BATCH_SIZE_PER_GPU", "16",
        "TRAIN.OPTIMIZER", "adam", "TRAIN.LR", "0.001", "TEST.BATCH_SIZE_PER_GPU", "8", "GPUS", "(0,)"])
    perf = train_tool.main(["--cfg", cfg_path])
    out_dir = tmp_path / "out" / "synthetic_h36m_lifting" / "lifting_mlp" / "lift"
    results = json.loads((out_dir / "results" / "lifting_test_results.json").read_text())
    assert results["format"] == "posezoo-lifting-results-1" and len(results["frames"]) == 16
    assert perf == pytest.approx(-results["metrics"]["MPJPE"])
    assert (out_dir / "gallery" / "worst_test_3d.png").is_file()
    table = test_tool.main(["--cfg", cfg_path])
    assert table["MPJPE (mm)"] == pytest.approx(results["metrics"]["MPJPE"], rel=1e-6)
    assert math.isfinite(table["P-MPJPE (mm)"]) and table["P-MPJPE (mm)"] <= table["MPJPE (mm)"] + 1e-9
    assert table["Mean-pose MPJPE (mm)"] > 0
