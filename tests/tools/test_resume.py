"""Exact resume: a training process killed mid-epoch (SIGKILL) and resumed
with --resume ends with exactly the weights of an uninterrupted run; a corrupt
or truncated checkpoint.pth is reported and the previous one is used."""
import logging
import os
import signal
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, synthetic_opts, write_cfg

TRAIN = os.path.join(ROOT, "tools", "train.py")


def start(cfg_path: str, out_dir, *extra: str, watch: bool = False) -> subprocess.Popen:
    """tools/train.py in its own process group (a kill takes its loader workers
    too); its log (stderr) is piped when `watch`, else written to a file."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    err = subprocess.PIPE if watch else open(f"{out_dir}.log", "w")  # noqa: SIM115 (closed by finish)
    proc = subprocess.Popen([sys.executable, TRAIN, "--cfg", cfg_path, *extra, "OUTPUT_DIR", str(out_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=err, text=True, start_new_session=True)
    proc.log_path, proc.log_file = f"{out_dir}.log", None if watch else err
    return proc


def finish(proc: subprocess.Popen) -> str:
    proc.wait(timeout=300)
    proc.log_file.close()
    with open(proc.log_path) as f:
        log = f.read()
    assert proc.returncode == 0, log[-4000:]
    return log


def test_killed_mid_epoch_then_resumed_equals_an_uninterrupted_run(tmp_path, synthetic_root):
    # deterministic mode, two loader workers (their seeds follow the per-epoch generator),
    # shuffling and augmentation on, 3 steps per epoch, 2 epochs with a learning-rate step between
    cfg_path = write_cfg(tmp_path / "tiny.yaml", synthetic_opts(synthetic_root, str(tmp_path / "unused")) + [
        "CUDNN.DETERMINISTIC", "True", "CUDNN.BENCHMARK", "False", "WORKERS", "2", "PRINT_FREQ", "1",
        "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]", "TEST.FLIP_TEST", "False",
        "TRAIN.END_EPOCH", "2", "TRAIN.LR_STEP", "[1]", "TRAIN.LR", "0.01", "SEED", "5"])
    run = ("synthetic", "pose_resnet", "tiny")
    whole, killed = tmp_path / "whole", tmp_path / "killed"

    reference = start(cfg_path, whole)
    victim = start(cfg_path, killed, watch=True)
    for line in victim.stderr:  # the log line after the first step of epoch 1
        if "Epoch [1][0/3]" in line:
            os.killpg(victim.pid, signal.SIGKILL)
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    checkpoint = killed.joinpath(*run, "checkpoint.pth")
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1  # it died inside epoch 1
    assert not killed.joinpath(*run, "final_state.pth").exists()
    finish(reference)

    log = finish(start(cfg_path, killed, "--resume"))
    assert "resumed from" in log and "at epoch 1" in log

    expected = torch.load(whole.joinpath(*run, "final_state.pth"), weights_only=True)
    resumed = torch.load(killed.joinpath(*run, "final_state.pth"), weights_only=True)
    assert list(expected) == list(resumed)
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    a, b = (torch.load(d.joinpath(*run, "checkpoint.pth"), weights_only=True) for d in (whole, killed))
    assert a["global_step"] == b["global_step"] == 6 and a["scheduler"] == b["scheduler"]
    for state_a, state_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.fixture
def caplog_info(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def _checkpoint(epoch: int) -> dict:
    return {"epoch": epoch, "state_dict": {"w": torch.full((3,), float(epoch))}, "optimizer": {}, "scheduler": {},
            "perf": 0.1 * epoch}


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not a training checkpoint"])
def test_a_bad_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog_info, damage):
    import train as train_tool

    latest, previous = tmp_path / "checkpoint.pth", tmp_path / "checkpoint_prev.pth"
    train_tool._save_checkpoint(_checkpoint(1), str(tmp_path))
    train_tool._save_checkpoint(_checkpoint(2), str(tmp_path))  # epoch 1 rotates to checkpoint_prev.pth
    assert torch.load(previous, weights_only=True)["epoch"] == 1
    if damage == "truncated":
        latest.write_bytes(latest.read_bytes()[:300])
    elif damage == "garbage":
        latest.write_bytes(b"\x00" * 64)
    else:
        torch.save({"w": torch.zeros(3)}, latest)

    ckpt, path = train_tool.find_resume_checkpoint(str(tmp_path))
    assert path == str(previous) and ckpt["epoch"] == 1 and torch.equal(ckpt["state_dict"]["w"], torch.ones(3))
    warnings = [r.getMessage() for r in caplog_info.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert str(latest) in warnings[0] and "resuming from the previous checkpoint" in warnings[0]
    # the bad file is set aside, so the next save cannot rotate it over the good previous one
    assert not latest.exists() and (tmp_path / "checkpoint_corrupt.pth").exists()
    train_tool._save_checkpoint(_checkpoint(2), str(tmp_path))
    assert torch.load(previous, weights_only=True)["epoch"] == 1
    assert torch.load(latest, weights_only=True)["epoch"] == 2


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    import train as train_tool
    from posezoo.models.checkpoint import CheckpointError

    assert train_tool.find_resume_checkpoint(str(tmp_path)) is None  # nothing yet: train from scratch
    (tmp_path / "checkpoint.pth").write_bytes(b"PK\x03\x04 half a checkpoint")
    with pytest.raises(CheckpointError) as err:
        train_tool.find_resume_checkpoint(str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("cannot resume") and "checkpoint.pth" in msg and "scratch" in msg


def test_resume_flag_parses_before_overrides():
    import train as train_tool

    args = train_tool.parse_args(["--cfg", "x.yaml", "--resume", "TRAIN.END_EPOCH", "3"])
    assert args.resume and args.opts == ["TRAIN.END_EPOCH", "3"]
    assert not train_tool.parse_args(["--cfg", "x.yaml"]).resume


@pytest.mark.parametrize("workers", [0, 2])
def test_an_epoch_of_data_depends_only_on_seed_epoch_and_rank(synthetic_cfg, workers):
    """The batches (order and augmented crops) of epoch e are the same whatever
    ran before: what lets a resumed run replay the epoch it lost."""
    import numpy as np
    import train as train_tool
    from posezoo.codecs import build_codec
    from posezoo.config import update_config
    from posezoo.datasets import build_dataset
    from posezoo.utils.distributed import DistContext

    cfg = update_config(synthetic_cfg, ["WORKERS", str(workers), "MODEL.IMAGE_SIZE", "[32, 32]",
                                        "MODEL.HEATMAP_SIZE", "[8, 8]"])
    dataset = build_dataset(cfg, "train2017", True, build_codec(cfg))
    generator = torch.Generator()
    loader, sampler = train_tool._train_loader(cfg, dataset, DistContext(0, 1, 0, torch.device("cpu")), generator)
    assert sampler is None and not loader.persistent_workers

    def epoch(e: int) -> tuple[list, torch.Tensor]:
        train_tool.start_epoch(cfg.SEED, e, 0, generator)
        batches = list(loader)
        return [i for b in batches for i in b[3]["index"].tolist()], torch.cat([b[0] for b in batches])

    order, crops = epoch(1)
    torch.rand(10), np.random.rand(3), epoch(0)  # unrelated draws, another epoch
    again_order, again_crops = epoch(1)
    assert order == again_order and torch.equal(crops, again_crops)
    assert sorted(order) == list(range(len(dataset)))
    assert epoch(2)[0] != order


# tools/train.py with torch.save replaced: the save of the epoch-2 checkpoint writes half its
# temporary file and SIGKILLs its own process, as a power cut or the OOM killer would.
DIES_WHILE_SAVING = r"""
import os, runpy, signal, sys
import torch
real_save = torch.save
def dying_save(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    if isinstance(obj, dict) and obj.get("epoch") == 2 and ".tmp." in str(f):
        with open(f, "r+b") as half:
            half.truncate(os.path.getsize(f) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_killed_inside_a_checkpoint_write_keeps_the_previous_one_and_resumes(tmp_path, synthetic_root):
    out = tmp_path / "out"
    cfg_path = write_cfg(tmp_path / "tiny.yaml", synthetic_opts(synthetic_root, str(out)) + [
        "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]", "TEST.FLIP_TEST", "False",
        "TRAIN.END_EPOCH", "3", "TRAIN.LR_STEP", "[2]", "PRINT_FREQ", "100"])
    run = out / "synthetic" / "pose_resnet" / "tiny"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    victim = subprocess.run([sys.executable, "-c", DIES_WHILE_SAVING, TRAIN, "--cfg", cfg_path], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-3000:]
    assert torch.load(run / "checkpoint.pth", weights_only=True)["epoch"] == 1  # the good file is still in place
    partial = [p.name for p in run.iterdir() if ".tmp." in p.name]
    assert len(partial) == 1 and partial[0].startswith("checkpoint.pth.tmp.")

    log = finish(start(cfg_path, out, "--resume"))
    assert "resumed from" in log and "at epoch 1" in log
    assert partial[0] in log  # the one warning naming the removed temporary
    assert not [p for p in run.iterdir() if ".tmp." in p.name]
    assert torch.load(run / "checkpoint.pth", weights_only=True)["epoch"] == 3
    assert (run / "final_state.pth").exists()


def test_resume_with_no_checkpoint_warns_and_trains_from_scratch(tmp_path, synthetic_root):
    cfg_path = write_cfg(tmp_path / "tiny.yaml", synthetic_opts(synthetic_root, str(tmp_path / "out")) + [
        "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]", "TEST.FLIP_TEST", "False"])
    log = finish(start(cfg_path, tmp_path / "out", "--resume"))
    warnings = [line for line in log.splitlines() if "--resume: no checkpoint.pth" in line]
    assert len(warnings) == 1 and "training from scratch" in warnings[0]
    assert (tmp_path / "out" / "synthetic" / "pose_resnet" / "tiny" / "final_state.pth").exists()
