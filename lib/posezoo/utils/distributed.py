"""torch.distributed plumbing for ``torchrun``: process-group setup from the
environment, rank-0 helpers, a non-padding sharded sampler for testing, the
gather of per-box predictions onto rank 0, and the per-epoch seeds that make
training reproducible on every rank.

A run is distributed when torchrun sets ``WORLD_SIZE`` > 1; otherwise every
helper here is a no-op, so single-process code paths stay exactly as they were.
"""
from __future__ import annotations

import logging
import math
import os
import random
import re
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler

from .collate import packed_collate

logger = logging.getLogger("posezoo")


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job and which device it drives."""
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise RuntimeError(f"environment variable {name} = {value!r} is not an integer; "
                           f"start distributed runs with torchrun") from None


def init_distributed(gpus: Sequence[int]) -> DistContext:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR/PORT``): NCCL when CUDA is available and
    `gpus` (the config's ``GPUS``) is non-empty, else gloo on the CPU. Local rank
    i drives ``cuda:GPUS[i]``, so ``GPUS`` keeps its single-node meaning. Without
    ``WORLD_SIZE`` > 1 nothing is initialised and the device is ``GPUS[0]`` or
    the CPU, as in a plain run."""
    world_size = _env_int("WORLD_SIZE", 1)
    use_cuda = torch.cuda.is_available() and len(gpus) > 0
    if world_size <= 1:
        return DistContext(0, 1, 0, torch.device("cuda", gpus[0]) if use_cuda else torch.device("cpu"))
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if use_cuda:
        if local_rank >= len(gpus):
            raise RuntimeError(f"local rank {local_rank} has no GPU: GPUS = {list(gpus)} lists {len(gpus)}; "
                               f"list one GPU per process on a node (e.g. GPUS '(0,1,2,3)') or lower --nproc_per_node")
        gpu = gpus[local_rank]
        if gpu >= torch.cuda.device_count():
            raise RuntimeError(f"GPUS[{local_rank}] = {gpu} but this node has {torch.cuda.device_count()} GPUs")
        torch.cuda.set_device(gpu)
        device, backend = torch.device("cuda", gpu), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():  # 30 min: the other ranks wait while rank 0 runs a full COCO evaluation
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size,
                                timeout=timedelta(minutes=30))
    _record_peers(world_size)
    return DistContext(rank, world_size, local_rank, device)


class PeerLostError(RuntimeError):
    """Another process of the torchrun job died, so this one stops too."""


_PEERS: list[tuple[str, int]] = []  # (host name, pid) of every rank, gathered when the group is joined


def _record_peers(world_size: int) -> None:
    """Every rank learns every other rank's host and pid (one small all-gather
    at start-up), so that a survivor can later say which rank died."""
    peers: list = [None] * world_size
    dist.all_gather_object(peers, (socket.gethostname(), os.getpid()))
    _PEERS[:] = peers


def _process_alive(pid: int) -> bool:
    """False for a pid that is gone or a zombie (killed, not yet reaped by torchrun)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def dead_ranks() -> list[int]:
    """Ranks on this host whose process has died (ranks on other hosts cannot be
    checked from here and are never listed)."""
    host, me = socket.gethostname(), os.getpid()
    return [r for r, (h, pid) in enumerate(_PEERS) if h == host and pid != me and not _process_alive(pid)]


def peer_lost(reason: str) -> PeerLostError:
    """The one-line error of a survivor: which rank died, as far as this host can tell."""
    dead = dead_ranks()
    if dead:
        who = f"rank {', '.join(map(str, dead))} of {len(_PEERS)} died"
    else:
        who = "another process of the job failed (no rank on this host died: see the other nodes' logs)"
    reason = re.sub(r"^\[[^\]]*\]\s*", "", reason.strip().split("\n")[0])  # gloo's "[.../pair.cc:537] " prefix
    reason = reason.split(". ")[0] or "no message"
    return PeerLostError(f"rank {get_rank() if is_distributed() else os.environ.get('RANK', '?')}: {who} "
                         f"({reason}); stopping this process too; fix that rank's error, then resume with --resume")


@contextmanager
def peer_watch() -> Iterator[None]:
    """Around the work of a torchrun process (a no-op outside torchrun): when
    another rank dies, the survivor does not hang or vanish silently but raises
    PeerLostError naming the dead rank, whether it learns it from a failed
    collective (gloo's "Connection closed by peer") or from the SIGTERM with
    which torchrun stops the remaining workers. A failed collective is only
    reworded when a rank is seen dead; any other error passes unchanged."""
    if _env_int("WORLD_SIZE", 1) <= 1:
        yield
        return

    def on_sigterm(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the error line must not be cut by a second one
        raise peer_lost("stopped by the launcher with SIGTERM")

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    lost = False
    try:
        yield
    except PeerLostError:
        lost = True
        raise
    except RuntimeError as err:
        if not dead_ranks():
            raise
        lost = True
        raise peer_lost(str(err)) from err
    finally:
        if previous is not None:  # after a loss, torchrun's SIGTERM must not cut the error line being logged
            signal.signal(signal.SIGTERM, signal.SIG_IGN if lost else previous)


def shutdown_distributed() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 logs, writes files and evaluates; the others only compute."""
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """`obj` as held by rank `src`, on every rank (pickled; small objects only)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BatchNorm running statistics) to every rank.
    DDP all-reduces gradients, so parameters agree, but each rank updates its
    running statistics from its own batches; after this every rank holds the
    state dict that rank 0 saves, and sharded validation scores that model."""
    if not is_distributed():
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=src)


def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Rank ``src``'s parameters on every rank: for modules DDP does not wrap (a
    strategy's discriminator, whose lazy first layer is initialised from each
    rank's own RNG stream)."""
    if not is_distributed():
        return
    for param in module.parameters():
        dist.broadcast(param.data, src=src)


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """The mean over ranks of the gradients of parameters outside DDP's model
    (``core/strategy.py``'s ``extra_parameters``), as DDP does for the model's
    own: every rank then takes the same optimizer step."""
    if not is_distributed():
        return
    world = get_world_size()
    for param in params:
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(world)


def setup_worker_logging(rank: int) -> None:
    """Ranks other than 0 print warnings and errors only, tagged with their rank."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)-15s [rank {rank}] %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


class ShardedSampler(Sampler[int]):
    """Indices ``rank, rank + W, rank + 2W, ...`` of a dataset of `length` items:
    every index lands on exactly one rank and none is repeated. Unlike
    DistributedSampler it does not pad the shards to equal length, so no
    duplicate box ever reaches the evaluation (test-time use: there is no
    collective inside the prediction loop, so unequal shard lengths are fine)."""

    def __init__(self, length: int, rank: int | None = None, world_size: int | None = None):
        self.length = length
        self.rank = get_rank() if rank is None else rank
        self.world_size = get_world_size() if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world_size} processes")

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return max(0, math.ceil((self.length - self.rank) / self.world_size))


def merge_shards(parts: Sequence[dict], index_key: str = "index") -> dict:
    """One prediction dict from per-rank dicts, in dataset order, each dataset
    index once. Arrays with one row per box (first dimension = number of
    indices) are concatenated, sorted by `index_key` and de-duplicated (first
    occurrence wins, so a padding sampler's repeats are dropped too); a Python
    or 0-d number (a mean such as the loss) becomes the row-weighted mean; any
    other value is taken from the first part."""
    for i, part in enumerate(parts):
        if index_key not in part:
            raise KeyError(f"predictions of rank {i} have no '{index_key}' array: a distributed test needs each "
                           f"box's dataset index to put the shards back together")
    counts = np.array([len(part[index_key]) for part in parts])
    index = np.concatenate([np.asarray(part[index_key]) for part in parts])
    _, rows = np.unique(index, return_index=True)  # sorted unique indices, first occurrence of each
    merged = {}
    for key, value in parts[0].items():
        values = [part[key] for part in parts]
        if isinstance(value, np.ndarray) and value.ndim > 0 and all(
                isinstance(v, np.ndarray) and v.ndim > 0 and len(v) == n for v, n in zip(values, counts)):
            merged[key] = np.concatenate(values)[rows]
        elif isinstance(value, (int, float, np.number)) or (isinstance(value, np.ndarray) and value.ndim == 0):
            merged[key] = float(np.dot(np.asarray(values, np.float64), counts) / max(counts.sum(), 1))
        else:
            merged[key] = value
    return merged


def gather_shards(out: dict, index_key: str = "index") -> dict | None:
    """Rank 0 receives every rank's predictions merged by `merge_shards`; the
    other ranks get None. In a single process `out` is returned unchanged."""
    if not is_distributed():
        return out
    parts = [None] * dist.get_world_size() if is_main_process() else None
    dist.gather_object(out, parts, dst=0)
    return merge_shards(parts, index_key) if is_main_process() else None


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 63-bit seed for (SEED, epoch, rank), from numpy's SeedSequence so that
    neighbouring epochs and ranks get unrelated streams."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the DataLoader seeds each worker's torch RNG
    from the loader's generator; numpy and random follow it, so augmentation that
    draws from either is as reproducible as the torch draws."""
    seed = torch.initial_seed()
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def build_test_loader(cfg, dataset, device: torch.device) -> DataLoader:
    """The validation/test loader. In a torchrun job each rank reads its
    ShardedSampler shard, ``TEST.BATCH_SIZE_PER_GPU`` boxes per step; in one
    process the batch is ``TEST.BATCH_SIZE_PER_GPU x len(GPUS)`` on CUDA (split
    by DataParallel), as in HRNet's test.py."""
    pin = cfg.PIN_MEMORY and device.type == "cuda"
    if is_distributed():
        return DataLoader(dataset, batch_size=cfg.TEST.BATCH_SIZE_PER_GPU, sampler=ShardedSampler(len(dataset)),
                          num_workers=cfg.WORKERS, pin_memory=pin, collate_fn=packed_collate)
    n_gpus = max(1, len(cfg.GPUS)) if device.type == "cuda" else 1
    return DataLoader(dataset, batch_size=cfg.TEST.BATCH_SIZE_PER_GPU * n_gpus, shuffle=False,
                      num_workers=cfg.WORKERS, pin_memory=pin, collate_fn=packed_collate)


def _float_sum(outputs) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs.float().sum() if outputs.is_floating_point() else outputs.new_zeros((), dtype=torch.float32)
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return sum((_float_sum(o) for o in outputs), torch.zeros(()))


def unused_parameters(model: torch.nn.Module, inputs: torch.Tensor) -> list[str]:
    """Names of the parameters that get no gradient from a forward of `inputs`
    (e.g. layers an official checkpoint layout keeps but the forward skips).
    DDP must be told about them (``find_unused_parameters``) or its gradient
    reduction stalls at the second step. The probe runs in eval mode, so
    BatchNorm running statistics are untouched, and leaves no gradient behind."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            _float_sum(model(inputs)).backward()
        return [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
