"""tools/train.py: non-finite loss, failing or interrupted checkpoint writes."""
from __future__ import annotations

import os
import sys

import pytest
import torch

from posezoo.core.function import NonFiniteLossError
from posezoo.utils import utils as posezoo_utils


from .conftest import one_line, tiny_train_args


# ----------------------------------------------------------------------------- NaN loss

NAN_LOSS = '''
import torch
from torch import nn


class NanLoss(nn.Module):
    def forward(self, output, target, target_weight):
        return torch.tensor(float("nan")) + 0 * output.sum()


def get_loss(cfg):
    return NanLoss()
'''


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(synthetic_root, tmp_path, monkeypatch, restore_logging):
    import train

    pkg = "bad_input_nan_loss_pkg"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "nan_loss.py").write_text(NAN_LOSS)
    monkeypatch.syspath_prepend(str(tmp_path))
    out_dir = tmp_path / "output"
    opts = tiny_train_args(synthetic_root, tmp_path, out_dir)

    try:
        train.main(opts)  # one good epoch
        found = [os.path.join(d, f) for d, _, files in os.walk(out_dir) for f in files if f == "checkpoint.pth"]
        assert len(found) == 1
        checkpoint = found[0]
        with open(checkpoint, "rb") as f:
            good_bytes = f.read()
        good_mtime = os.stat(checkpoint).st_mtime_ns

        with pytest.raises(NonFiniteLossError) as err:
            train.main(opts + ["AUTO_RESUME", "True", "TRAIN.END_EPOCH", "2", "LOSS.NAME", f"{pkg}.nan_loss"])
    finally:
        for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
            del sys.modules[name]
    msg = one_line(err.value)
    assert checkpoint in msg and "nan" in msg.lower() and "epoch 1" in msg

    with open(checkpoint, "rb") as f:
        assert f.read() == good_bytes
    assert os.stat(checkpoint).st_mtime_ns == good_mtime
    leftovers = [f for _, _, files in os.walk(out_dir) for f in files if ".tmp" in f]
    assert not leftovers


# ----------------------------------------------------------------------------- atomic writes

def _failing_save(obj, f, *args, **kwargs):
    with open(f, "wb") as out:
        out.write(b"PK\x03\x04 half a checkpoint")
    raise OSError(28, "No space left on device")


def test_save_atomic_keeps_the_previous_file_when_saving_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pth")
    posezoo_utils.save_atomic({"w": torch.arange(5.0)}, path)
    with open(path, "rb") as f:
        good = f.read()

    monkeypatch.setattr(posezoo_utils.torch, "save", _failing_save)
    with pytest.raises(OSError, match="No space left"):
        posezoo_utils.save_atomic({"w": torch.zeros(5)}, path)
    monkeypatch.undo()

    with open(path, "rb") as f:
        assert f.read() == good
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(5.0))


def test_save_atomic_leaves_no_temporary_file_when_saving_fails(tmp_path, monkeypatch):
    path = str(tmp_path / "checkpoint.pth")
    monkeypatch.setattr(posezoo_utils.torch, "save", _failing_save)
    with pytest.raises(OSError):
        posezoo_utils.save_atomic({"w": torch.zeros(5)}, path)
    assert os.listdir(tmp_path) == []
