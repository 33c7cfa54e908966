"""Output-folder faults: two runs on one OUTPUT_DIR, a full disk during a
write, the temporaries a killed writer leaves, and NaN named by sample."""
import errno
import os

import pytest
import torch

from posezoo.core.function import non_finite_samples
from posezoo.utils.utils import (LOCK_FILE, TMP_INFIX, OutputDirError, remove_partial_files, run_lock, save_atomic,
                                 write_text_atomic)


def test_a_second_run_on_a_locked_folder_is_refused_and_the_lock_is_released(tmp_path):
    with run_lock(str(tmp_path), "train") as path:
        assert os.path.basename(path) == LOCK_FILE
        assert open(path).read().startswith(f"train pid {os.getpid()} on ")
        with pytest.raises(OutputDirError, match=r"is in use by another run \(train pid \d+ on .*\); wait for it"):
            with run_lock(str(tmp_path), "train"):
                pass
    with run_lock(str(tmp_path), "train"):  # released at the end of the first run
        pass


def test_full_disk_is_one_line_and_the_previous_file_survives(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pth"
    save_atomic({"epoch": 1}, str(target))

    def no_space(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(OSError, match=r"cannot write .*checkpoint.pth: No space left on device \(free some space"):
        save_atomic({"epoch": 2}, str(target))
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]  # no partial file left beside it


def test_temporaries_of_a_killed_writer_are_removed_at_the_next_start(tmp_path):
    write_text_atomic(str(tmp_path / "log.json"), "{}")
    left = tmp_path / f"checkpoint.pth{TMP_INFIX}12345"
    left.write_bytes(b"half a checkpoint")
    assert remove_partial_files(str(tmp_path)) == [str(left)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json"]


def test_non_finite_inputs_and_targets_are_named_by_sample():
    inputs, target = torch.zeros(3, 3, 4, 4), torch.zeros(3, 2, 2, 2)
    inputs[1, 0, 2, 2] = float("nan")
    target[2, 1, 0, 0] = float("inf")
    batch = {"inputs": inputs, "target": target, "target_weight": torch.ones(3, 2, 1),
             "meta": {"index": torch.tensor([4, 7, 9]), "image": ["a.jpg", "b.jpg", "c.jpg"]}}
    assert non_finite_samples(batch) == "non-finite inputs in sample #7 (b.jpg); non-finite target in sample #9 (c.jpg)"
    batch["inputs"][1] = 0
    batch["target"][2] = 0
    assert non_finite_samples(batch) == ""


def test_read_only_output_dir_is_one_line_and_the_previous_file_survives(tmp_path, monkeypatch):
    """A read-only OUTPUT_DIR (simulated: as root chmod does not stop writes) fails
    the first write with one line naming the file and the reason."""
    target = tmp_path / "log.json"
    write_text_atomic(str(target), "{}")
    real_open = open

    def read_only(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", read_only)
    with pytest.raises(OSError, match=r"cannot write .*log.json: Read-only file system \(the file there before"):
        write_text_atomic(str(target), '{"new": 1}')
    monkeypatch.undo()
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["log.json"]
