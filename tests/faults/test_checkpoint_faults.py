"""Checkpoint loading: wrong architecture, wrong head, damaged files and pickled
code, each refused with one line naming the file and the keys."""
from __future__ import annotations

import os
import re

import pytest
import torch

from posezoo.config import update_config
from posezoo.models import CheckpointError, build_model, load_checkpoint

from .conftest import one_line


# ----------------------------------------------------------------------------- wrong or damaged checkpoints

@pytest.fixture
def tiny_model(synthetic_cfg):
    torch.manual_seed(1)
    return build_model(synthetic_cfg).eval()


def _depth(cfg, depth: int):
    return update_config(cfg, ["MODEL.EXTRA.NUM_LAYERS", str(depth)])


def test_checkpoint_of_a_deeper_or_shallower_resnet_lists_the_keys(synthetic_cfg, tiny_model, tmp_path):
    p18, p34 = str(tmp_path / "r18.pth"), str(tmp_path / "r34.pth")
    torch.save(tiny_model.state_dict(), p18)
    torch.save(build_model(_depth(synthetic_cfg, 34)).state_dict(), p34)

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(_depth(synthetic_cfg, 34)), p18, strict=True)
    msg = one_line(err.value)
    assert p18 in msg and "missing" in msg and "layer1.2.conv1.weight" in msg and "unexpected" not in msg

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(synthetic_cfg), p34, strict=True)
    msg = one_line(err.value)
    assert p34 in msg and "unexpected" in msg and "layer1.2.conv1.weight" in msg and "missing" not in msg


def test_resnet18_checkpoint_into_resnet50_is_refused(synthetic_cfg, tiny_model, tmp_path):
    path = str(tmp_path / "r18.pth")
    torch.save(tiny_model.state_dict(), path)
    model = build_model(_depth(synthetic_cfg, 50))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, path, strict=True)
    msg = one_line(err.value)
    assert path in msg and "layer1.0.conv1.weight" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_resnet18_checkpoint_into_resnet50_lists_missing_keys(synthetic_cfg, tiny_model, tmp_path):
    path = str(tmp_path / "r18.pth")
    torch.save(tiny_model.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(build_model(_depth(synthetic_cfg, 50)), path, strict=True)
    msg = one_line(err.value)
    assert "missing" in msg and "layer1.0.conv3.weight" in msg


def test_head_for_another_number_of_joints_names_the_shape(synthetic_cfg, tiny_model, tmp_path):
    path = str(tmp_path / "k10.pth")
    torch.save(build_model(update_config(synthetic_cfg, ["MODEL.NUM_JOINTS", "10"])).state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, path, strict=True)
    msg = one_line(err.value)
    assert path in msg and "final_layer.weight" in msg
    assert "(10, 32, 1, 1)" in msg and "(17, 32, 1, 1)" in msg
    with pytest.raises(CheckpointError, match="final_layer.weight"):  # strict=False does not hide it
        load_checkpoint(tiny_model, path, strict=False)


def test_wrapped_and_prefixed_checkpoints_give_identical_outputs(synthetic_cfg, tiny_model, tmp_path):
    state = tiny_model.state_dict()
    prefixed = {"module." + k: v for k, v in state.items()}
    wrapped = {"bare": state, "module_prefix": prefixed, "state_dict": {"epoch": 3, "state_dict": state},
               "model": {"model": state}, "state_dict_module_prefix": {"state_dict": prefixed}}
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = tiny_model(x)
        for wrap, obj in wrapped.items():
            path = str(tmp_path / f"{wrap}.pth")
            torch.save(obj, path)
            torch.manual_seed(2)
            other = build_model(synthetic_cfg).eval()
            if wrap == "bare":
                assert not torch.equal(other(x), expected)  # the load below is what makes them equal
            load_checkpoint(other, path, strict=True)
            assert torch.equal(other(x), expected), wrap


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "no_state_dict"])
def test_unreadable_checkpoint_names_the_file(tiny_model, tmp_path, damage):
    path = str(tmp_path / "bad.pth")
    if damage == "no_state_dict":
        torch.save({"epoch": 3, "perf": 0.5}, path)
    elif damage != "missing":
        torch.save(tiny_model.state_dict(), path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 16)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, path, strict=True)
    assert path in one_line(err.value)


class _Payload:
    """Unpickling this runs os.makedirs(marker): what a malicious file would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def _weights_only_refused(msg: str) -> bool:
    return "weights only" in msg.lower().replace("_", " ")


def test_pickle_with_python_objects_is_refused(tiny_model, tmp_path):
    plain = str(tmp_path / "object.pth")
    torch.save({"x": object()}, plain)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, plain, strict=True)
    assert plain in one_line(err.value) and _weights_only_refused(str(err.value))

    marker = str(tmp_path / "code_ran")
    evil = str(tmp_path / "evil.pth")
    torch.save({"state_dict": tiny_model.state_dict(), "extra": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, evil, strict=True)
    assert evil in one_line(err.value) and _weights_only_refused(str(err.value))
    assert not os.path.exists(marker)
    torch.load(evil, weights_only=False)  # the payload is real: a plain torch.load would run it
    assert os.path.isdir(marker)


def test_refused_pickle_message_names_the_refused_global(tiny_model, tmp_path):
    path = str(tmp_path / "pickled.pth")
    torch.save({"x": object()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model, path, strict=True)
    msg = one_line(err.value)
    assert "\x1b[" not in msg  # no terminal escape codes in a log line
    assert re.search(r"\bobject\b", msg.replace(path, ""))  # the refused global
