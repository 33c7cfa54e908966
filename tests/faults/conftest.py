"""Helpers shared by the fault tests (tests/faults/test_*_faults.py): copies of the
tiny synthetic set to corrupt, configs on them, JSON editing, the one-line check."""
from __future__ import annotations

import json
import logging
import os
import shutil

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import synthetic_opts
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.datasets.synthetic import DETECTIONS_FILE


CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- helpers

def copy_root(synthetic_root: str, tmp_path) -> str:
    root = str(tmp_path / "data")
    shutil.copytree(synthetic_root, root)
    return root


def coco_cfg(root: str, tmp_path, *extra: str):
    """The tiny config on a (copied) root, read by the plain COCO loader: the
    ``synthetic`` entry point regenerates data whose files look incomplete, which
    would mask the corruption under test."""
    return load_config(None, synthetic_opts(root, str(tmp_path / "output")) + ["DATASET.DATASET", "coco", *extra])


def ann_path(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"person_keypoints_{split}.json")


def det_path(root: str) -> str:
    return os.path.join(root, "person_detection_results", DETECTIONS_FILE)


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


def write_json(path: str, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)


def edit_json(path: str, fn) -> None:
    data = read_json(path)
    fn(data)
    write_json(path, data)


def one_line(err: BaseException) -> str:
    msg = str(err)
    assert msg and "\n" not in msg, f"expected a one-line message, got {msg!r}"
    return msg


def labelled(ann: dict) -> bool:
    return ann.get("category_id") == 1 and max(ann["keypoints"]) > 0


def build(cfg, split: str, is_train: bool):
    return build_dataset(cfg, split, is_train, build_codec(cfg))


def loader_of(dataset) -> DataLoader:
    return DataLoader(dataset, batch_size=16, shuffle=False, num_workers=0)


@pytest.fixture
def restore_logging():
    """tools/train.py replaces the root logger's handlers with its own (one of them
    a log file in tmp_path); close those afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def broken_images(synthetic_root, tmp_path):
    """A copy where one val image is missing, one val image is garbage bytes, one
    val image is a truncated JPEG (its first third) and one train image is
    missing. Returns (root, {image_id: path})."""
    root = copy_root(synthetic_root, tmp_path)
    bad = {}
    for split, n in (("val2017", 3), ("train2017", 1)):
        data = read_json(ann_path(root, split))
        files = {im["id"]: os.path.join(root, "images", split, im["file_name"]) for im in data["images"]}
        ids = sorted({a["image_id"] for a in data["annotations"] if labelled(a)})[:n]
        for k, image_id in enumerate(ids):
            if k == 0:
                os.remove(files[image_id])
            elif k == 2:
                with open(files[image_id], "rb") as f:
                    data = f.read()
                with open(files[image_id], "wb") as f:
                    f.write(data[:len(data) // 3])
            else:
                with open(files[image_id], "wb") as f:
                    f.write(b"\x00\x01 this is not an image \xff\xd8" * 40)
            bad[image_id] = files[image_id]
    return root, bad


def det_cfg(root, tmp_path, *extra):
    return coco_cfg(root, tmp_path, "TEST.USE_GT_BBOX", "False", "TEST.COCO_BBOX_FILE", det_path(root), *extra)


def _yaml(tmp_path, text: str) -> str:
    path = str(tmp_path / "exp.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def tiny_train_args(synthetic_root: str, tmp_path, out_dir) -> list:
    """tools/train.py's command line for the smallest run that exercises the
    loop: 32x32 crops, the 10 val boxes as one training batch, one epoch."""
    exp = _yaml(tmp_path, "# everything comes from the command line\n")
    return ["--cfg", exp] + synthetic_opts(synthetic_root, str(out_dir)) + [
        "PRINT_FREQ", "1000", "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]",
        "DATASET.TRAIN_SET", "val2017", "TRAIN.BATCH_SIZE_PER_GPU", "16", "TEST.FLIP_TEST", "False"]


def run_tool(main, argv: list, capsys) -> tuple[int, str]:
    """A tool's main under tools/_setup.run, as on the command line: its exit
    status and what it printed on stderr."""
    import _setup

    capsys.readouterr()
    try:
        _setup.run(lambda: main(argv))
        code = 0
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


@pytest.fixture
def small_tmpfs(tmp_path):
    """A mount factory: ``small_tmpfs(size, read_only=False)`` mounts a tmpfs of
    `size` under tmp_path (a real full or read-only file system). Skips when
    this process may not mount (not root, or no CAP_SYS_ADMIN)."""
    import subprocess

    mounted = []

    def mount(size: str, read_only: bool = False, prepare=None) -> str:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()[:80]})")
        mounted.append(point)
        if prepare is not None:
            prepare(str(point))
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return str(point)

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)
