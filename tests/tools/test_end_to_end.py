"""tools/train.py and tools/test.py end to end on a tiny synthetic set."""
import glob
import os

import pytest
import torch

import test as test_tool
import train as train_tool
from conftest import synthetic_opts, write_cfg
from posezoo.config import load_config
from posezoo.models import build_model


def tiny_cfg_file(tmp_path, root):
    return write_cfg(tmp_path / "tiny.yaml", synthetic_opts(root, str(tmp_path / "output")) + ["TRAIN.LR", "0.001"])


def test_train_then_test_with_gt_and_detected_boxes(tmp_path, synthetic_root):
    cfg_path = tiny_cfg_file(tmp_path, synthetic_root)
    train_tool.main(["--cfg", cfg_path])
    out_dir = tmp_path / "output" / "synthetic" / "pose_resnet" / "tiny"
    for name in ("checkpoint.pth", "model_best.pth", "final_state.pth", "predictions_val2017.png",
                 "results/keypoints_val2017_results_0.json"):
        assert (out_dir / name).is_file(), name
    assert glob.glob(str(out_dir / "tensorboard" / "train" / "events.out.tfevents.*"))
    assert glob.glob(str(out_dir / "tiny_*_train.log"))

    ckpt = torch.load(out_dir / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and {"state_dict", "optimizer", "scheduler", "perf"} <= set(ckpt)
    # final_state.pth is a bare state dict: the official tools' load_state_dict works on it
    final = torch.load(out_dir / "final_state.pth", weights_only=True)
    model = build_model(load_config(cfg_path))
    model.load_state_dict(final, strict=True)
    assert torch.equal(final["final_layer.weight"], ckpt["state_dict"]["final_layer.weight"])

    gt_stats = test_tool.main(["--cfg", cfg_path])
    det_stats = test_tool.main(["--cfg", cfg_path, "TEST.USE_GT_BBOX", "False"])
    for stats in (gt_stats, det_stats):
        assert list(stats)[:3] == ["AP", "Ap .5", "AP .75"] and all(0 <= v <= 1 for v in stats.values())

    # resuming continues at the saved epoch and trains only the remaining one
    # (with the official DEBUG switches on: batch images and heatmaps written as files)
    debug = ["DEBUG.DEBUG", "True", "DEBUG.SAVE_BATCH_IMAGES_GT", "True", "DEBUG.SAVE_BATCH_IMAGES_PRED", "True",
             "DEBUG.SAVE_HEATMAPS_GT", "True", "DEBUG.SAVE_HEATMAPS_PRED", "True"]
    train_tool.main(["--cfg", cfg_path, "AUTO_RESUME", "True", "TRAIN.END_EPOCH", "2", *debug])
    assert torch.load(out_dir / "checkpoint.pth", weights_only=True)["epoch"] == 2
    for suffix in ("gt.jpg", "pred.jpg", "hm_gt.jpg", "hm_pred.jpg"):
        assert (out_dir / "debug" / f"train_1_0_{suffix}").stat().st_size > 0
    logs = sorted(glob.glob(str(out_dir / "tiny_*_train.log")), key=os.path.getmtime)
    assert "resumed from" in open(logs[-1]).read()


def test_tools_help_describes_usage(capsys):
    with pytest.raises(SystemExit):
        train_tool.parse_args(["--help"])
    assert "KEY VALUE" in capsys.readouterr().out


def test_progress_bar_only_on_a_terminal(monkeypatch):
    """A redirected log (file, CI) gets the logger's lines and no bar refreshes;
    a terminal gets the bar with its ETA (issue 18)."""
    import sys

    from posezoo.utils.utils import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_bar(range(3)).disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    bar = progress_bar(range(3), file=open(os.devnull, "w"))
    assert not bar.disable and list(bar) == [0, 1, 2]
