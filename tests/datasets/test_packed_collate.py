"""packed_collate: the batches default_collate makes, through worker processes, with the small tensors
of a batch in one shared segment and the large ones in segments of their own."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from posezoo.codecs import build_codec
from posezoo.config import update_config
from posezoo.datasets import build_dataset
from posezoo.utils.collate import SMALL_BYTES, packed_collate

Pair = collections.namedtuple("Pair", "left right")


class Mixed(Dataset):
    """Every kind of leaf default_collate handles, nested as the datasets nest them."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int):
        rng = np.random.default_rng(i)
        return (torch.from_numpy(rng.standard_normal((3, 64, 48)).astype(np.float32)),  # > SMALL_BYTES per batch
                [torch.full((17, 8, 6), float(i)), torch.arange(4, dtype=torch.int16) + i],
                {"joints": rng.standard_normal((17, 3)).astype(np.float32), "id": i, "score": 0.5 * i,
                 "flag": i % 2 == 0, "name": f"image{i}.jpg", "np_scalar": np.float32(i) / 3,
                 "pair": Pair(np.int64(i), torch.tensor([i, -i])), "nested": {"rot": np.float64(i)}})


def _same(a, b, path="batch") -> None:
    assert type(a) is type(b), path
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for key in a:
            _same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


def _batches(dataset, collate, workers: int) -> list:
    return list(DataLoader(dataset, batch_size=4, num_workers=workers, collate_fn=collate))


def _storages(batch) -> list[tuple[int, int]]:
    """(storage address, bytes) of every tensor leaf, in order."""
    out = []

    def walk(x):
        if isinstance(x, torch.Tensor):
            out.append((x.untyped_storage().data_ptr(), x.numel() * x.element_size()))
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
    walk(batch)
    return out


def test_worker_batches_equal_default_collate_with_small_tensors_in_one_segment():
    expected = _batches(Mixed(), default_collate, 0)
    got = _batches(Mixed(), packed_collate, 2)
    assert len(got) == len(expected) == 3
    for a, b in zip(expected, got):
        _same(a, b)
    for batch in got:
        leaves = _storages(batch)
        small = {ptr for ptr, size in leaves if size <= SMALL_BYTES}
        large = [ptr for ptr, size in leaves if size > SMALL_BYTES]
        assert len(small) == 1, "every small tensor of a batch is a view of one shared block"
        assert len(large) == 1 and large[0] not in small, "the input keeps a segment of its own"
        assert batch[2]["joints"].is_shared() and batch[0].is_shared()
    # the views are ordinary tensors: writable, and independent of each other
    got[0][2]["joints"].add_(1)
    _same(got[0][2]["id"], expected[0][2]["id"])


def test_main_process_is_default_collate():
    batch = [Mixed()[i] for i in range(3)]
    _same(default_collate(batch), packed_collate(batch))


def test_dataset_batches_through_workers_equal_the_default_loader(synthetic_cfg):
    cfg = update_config(synthetic_cfg, ["TEST.USE_GT_BBOX", "True"])
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, build_codec(cfg))
    expected = _batches(dataset, default_collate, 0)
    for a, b in zip(expected, _batches(dataset, packed_collate, 2)):
        _same(a, b)


@pytest.mark.parametrize("workers", [0, 2])
def test_train_loader_uses_it(synthetic_cfg, workers):
    from train import _train_loader  # tools/train.py

    from posezoo.utils.distributed import DistContext, build_test_loader

    cfg = update_config(synthetic_cfg, ["WORKERS", str(workers)])
    dataset = build_dataset(cfg, cfg.DATASET.TEST_SET, False, build_codec(cfg))
    ctx = DistContext(0, 1, 0, torch.device("cpu"))
    loader, _ = _train_loader(cfg, dataset, ctx, torch.Generator().manual_seed(0))
    assert loader.collate_fn is packed_collate
    assert build_test_loader(cfg, dataset, torch.device("cpu")).collate_fn is packed_collate
