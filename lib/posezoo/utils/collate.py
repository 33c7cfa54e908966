"""The DataLoaders' collate: ``default_collate``'s batches, with a worker's small tensors in one shared block.

A worker hands each tensor of a batch to the main process as its own shared-memory segment: one
``shm_open`` + ``mmap`` + file-descriptor pass per tensor, on both sides. A pose sample carries about
ten small ones besides its input and target (target weights, the meta dict's joints, centre, scale,
rotation, score, ids), so those fixed costs outweigh their bytes. ``packed_collate`` builds the same
batch as ``default_collate`` (same structure, values, dtypes and shapes) and then moves every tensor
under ``SMALL_BYTES`` into one shared block, each a view of it: one segment per batch instead of a
dozen. Measured with two workers on the w32 COCO training pipeline: 708 -> 749 crops/s (docs/speed.md).
Large tensors (the inputs and heatmaps) keep segments of their own, so a consumer that keeps a small
meta tensor keeps only that batch's block of small tensors alive, never its inputs.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info
from torch.utils.data._utils.collate import (collate, collate_float_fn, collate_int_fn, collate_numpy_scalar_fn,
                                             collate_tensor_fn, default_collate_fn_map)

#: a batch's tensor up to this many bytes goes into the shared block
SMALL_BYTES = 1 << 16
_ALIGN = 64


def packed_collate(batch: list) -> Any:
    """``default_collate(batch)``; inside a DataLoader worker its small tensors share one segment."""
    if get_worker_info() is None:
        return default_collate(batch)
    small: list[torch.Tensor] = []

    def kept(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.layout == torch.strided and tensor.numel() * tensor.element_size() <= SMALL_BYTES:
            small.append(tensor)
        return tensor

    def tensors(items, *, collate_fn_map=None):
        first = items[0]
        if first.is_nested or first.layout != torch.strided or \
                sum(x.numel() for x in items) * first.element_size() > SMALL_BYTES:
            return collate_tensor_fn(items, collate_fn_map=collate_fn_map)  # its own shared segment
        return kept(torch.stack(items, 0))

    def wrap(fn):
        return lambda items, *, collate_fn_map=None: kept(fn(items, collate_fn_map=collate_fn_map))

    fn_map = {**default_collate_fn_map, torch.Tensor: tensors,
              (np.bool_, np.number, np.object_): wrap(collate_numpy_scalar_fn),
              float: wrap(collate_float_fn), int: wrap(collate_int_fn)}
    out = collate(batch, collate_fn_map=fn_map)
    share_in_one_block(small)
    return out


def share_in_one_block(tensors: list[torch.Tensor]) -> None:
    """Rebind each (contiguous) tensor, in place, to a view of one shared-memory block holding its values."""
    offsets, total = [], 0
    for tensor in tensors:
        offsets.append(total)
        total += -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
    if not total:
        return
    block = torch.empty(total, dtype=torch.uint8).share_memory_().untyped_storage()
    for tensor, offset in zip(tensors, offsets):
        view = torch.empty(0, dtype=tensor.dtype).set_(block, offset // tensor.element_size(), tensor.shape)
        view.copy_(tensor)
        tensor.set_(view)
