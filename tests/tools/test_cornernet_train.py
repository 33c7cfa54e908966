"""The tiny CornerNet through the one training path: tools/train.py (box AP as
the validation metric and the checkpoint's best), --resume, tools/test.py."""
import json
import os

import pytest
import torch

import test as test_tool
import train as train_tool
from conftest import ROOT
from posezoo.datasets.coco_det import AP_NAMES

YAML = os.path.join(ROOT, "experiments", "synthetic", "cornernet_tiny_person_127x127.yaml")
# narrower than the YAML (width 8) and fewer pairs: seconds on a CPU
SMALL = ["WORKERS", "0", "TRAIN.BATCH_SIZE_PER_GPU", "4", "TEST.BATCH_SIZE_PER_GPU", "3", "MODEL.EXTRA",
         "{'NUM_CLASSES': 1, 'DIMS': [8, 8, 8], 'MODULES': [1, 1, 1], 'STEM_DIM': 8, 'POOL_DIM': 8, 'HEAD_DIM': 8}",
         "CORNERNET.TOP_K", "10", "CORNERNET.NUM_DETS", "50", "CORNERNET.FLIP_TEST", "False"]


def test_tiny_cornernet_trains_resumes_and_tests(synthetic_root, tmp_path):
    opts = ["DATASET.ROOT", synthetic_root, "OUTPUT_DIR", str(tmp_path), *SMALL]
    torch.manual_seed(0)
    perf = train_tool.main(["--cfg", YAML, *opts, "TRAIN.END_EPOCH", "1"])
    final = tmp_path / "coco_det" / "cornernet" / "cornernet_tiny_person_127x127"
    ckpt = torch.load(final / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["perf"] == perf and 0.0 <= perf <= 1.0
    results = json.load(open(final / "results" / "bbox_val2017_results.json"))
    assert results and {r["category_id"] for r in results} == {1}
    assert os.path.isfile(final / "gallery" / "detections_val2017.png")

    resumed = train_tool.main(["--cfg", YAML, "--resume", *opts, "TRAIN.END_EPOCH", "2"])
    ckpt = torch.load(final / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["perf"] == max(perf, resumed)
    logs = "".join(p.read_text() for p in final.glob("*_train.log"))
    assert "resumed from" in logs and "Epoch [1][0/3]" in logs and logs.count("Epoch [0][0/3]") == 1

    table = test_tool.main(["--cfg", YAML, *opts])
    assert list(table) == list(AP_NAMES)
    assert table["AP"] == pytest.approx(resumed)  # final_state.pth = the last validated weights
    # a known-good run (seed 0, the 12 + 6 generated images, 2 epochs) gave AP 0.0085, AP .5 0.028,
    # AR 0.18; the floors are half of those (CPU kernels may round differently)
    assert 0.004 <= table["AP"] <= 1.0 and 0.014 <= table["AP .5"] <= 1.0 and 0.09 <= table["AR"] <= 1.0
    assert table["AP (S)"] == -1.0  # no small person in the generated images: COCOeval's "absent"


def test_test_outputs_are_named_by_box_source(tmp_path):
    for name in ("results/keypoints_val2017_results_0.json", "predictions_val2017.png", "gallery/best_val2017.png",
                 "gallery/worst_val2017.png", "gallery/val2017.json"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(name)
    done = test_tool.name_by_box_source(str(tmp_path), "val2017", "cornernet")
    assert sorted(done) == sorted(["results/keypoints_val2017_cornernet_results_0.json",
                                   "predictions_val2017_cornernet.png", "gallery/best_val2017_cornernet.png",
                                   "gallery/worst_val2017_cornernet.png", "gallery/val2017_cornernet.json"])
    assert (tmp_path / "predictions_val2017_cornernet.png").read_text() == "predictions_val2017.png"
    assert not (tmp_path / "predictions_val2017.png").exists()
    assert test_tool.name_by_box_source(str(tmp_path), "val2017", "gt") == []  # nothing left to name
