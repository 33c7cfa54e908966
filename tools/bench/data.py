"""Stage 1: the dataset's __getitem__ (read + augment + warp + encode), crops/s; with --official, through
DataLoaders with 0 and more workers side by side with the official dataset on the same images."""
from __future__ import annotations

from torch.utils.data import DataLoader, Dataset

from posezoo.config import update_config
from posezoo.datasets import build_dataset
from posezoo.utils import jpeg_region
from posezoo.utils.collate import packed_collate
from posezoo.utils.normalise import input_normaliser

from .common import alternate_many, quiet, say, side_row, timed
from .official import official_dataset

LOADER_BATCH = 32


def bench_data(cfg, codec, n: int, tag: str = "[1/6]") -> dict:
    out = {}
    for key, image_set, is_train in (("train", cfg.DATASET.TRAIN_SET, True), ("test", cfg.DATASET.TEST_SET, False)):
        with quiet():
            dataset = build_dataset(cfg, image_set, is_train, codec)
        if len(dataset) == 0:
            raise ValueError(f"dataset {cfg.DATASET.DATASET} {image_set} has no person box to benchmark")
        dataset[0]  # warm-up (imports, first file read)
        seconds = timed(lambda it=iter(range(n)): dataset[next(it) % len(dataset)], n)
        out[f"data_{key}_crops_s"] = n / seconds
        out[f"_{key}_set"] = dataset
        say(f"{tag} data {key:5s} ({image_set}, {len(dataset)} boxes): {n} samples in {seconds:.2f} s "
            f"-> {n / seconds:.1f} crops/s")
    return out


class Repeated(Dataset):
    """`dataset` cycled to `n` samples (a small sample set stands for a long epoch)."""

    def __init__(self, dataset, n: int) -> None:
        self.dataset, self.n = dataset, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.dataset[i % len(self.dataset)]


def loader_pass(dataset, n: int, workers: int, collate_fn=None, normalise=None):
    """One epoch of `n` samples through a DataLoader (batches of LOADER_BATCH, `workers` processes started
    for it, as a training epoch starts them; posezoo's with its own collate and, under
    DATASET.UINT8_INPUTS, its batches normalised here, on the CPU, as the loops do on the device);
    returns the first batch's inputs and targets."""
    first = None
    for batch in DataLoader(Repeated(dataset, n), batch_size=LOADER_BATCH, num_workers=workers,
                            collate_fn=collate_fn):
        inputs = batch[0] if normalise is None else normalise(batch[0])
        first = first or (inputs, batch[1])
    return first


CONTENDER_SUFFIX = {"ours": "", "region": " (DATASET.DECODE region)",
                    "region+uint8": " (DATASET.DECODE region, DATASET.UINT8_INPUTS)",
                    "uint8": " (DATASET.UINT8_INPUTS)"}


def contender_configs(cfg) -> dict:
    """posezoo's configurations in the data rows: the YAML's, then region decoding (where it builds here
    and the YAML decodes whole images), then uint8 inputs on top of that."""
    out = {"ours": cfg}
    last = cfg
    if cfg.DATASET.DECODE == "whole" and jpeg_region.library() is not None:
        out["region"] = last = update_config(cfg, ["DATASET.DECODE", "region"])
    if not cfg.DATASET.UINT8_INPUTS:
        out["region+uint8" if "region" in out else "uint8"] = update_config(last, ["DATASET.UINT8_INPUTS", True])
    return out


def bench_data_official(cfg, codec, cfg_path: str, root: str, n: int, reps: int, workers: list[int],
                        tag: str = "[1/6]") -> list[dict]:
    """Samples/s of posezoo's and the official dataset (train: the YAML's augmentation; test: warp only) on
    the same DATASET.ROOT through DataLoaders with each count in `workers`, alternating `reps` epochs of `n`
    samples; the test-set inputs and targets (no random draw) are checked equal. ``DATASET.DECODE region``
    (utils/jpeg_region.py) and ``DATASET.UINT8_INPUTS`` (utils/normalise.py) run in the same rounds and get
    rows of their own (``contender_configs``). [] without the official dataset."""
    rows = []
    configs = contender_configs(cfg)
    for key, image_set, is_train in (("train", cfg.DATASET.TRAIN_SET, True), ("test", cfg.DATASET.TEST_SET, False)):
        with quiet():
            official, label = official_dataset(root, cfg, cfg_path, image_set, is_train)
            contenders = {name: (build_dataset(c, image_set, is_train, codec), input_normaliser(c))
                          for name, c in configs.items()}
        if official is None:
            say(f"{tag} data side by side: {label}")
            return []
        for count in workers:
            fns = {"official": lambda d=official, w=count: loader_pass(d, n, w)}
            fns.update({name: lambda d=d, f=f, w=count: loader_pass(d, n, w, packed_collate, f)
                        for name, (d, f) in contenders.items()})
            times, first = alternate_many(fns, reps)
            for name in contenders:
                if is_train:
                    check = "random augmentation: not compared"
                else:
                    diffs = [(a - b).abs().max().item() for a, b in zip(first["official"], first[name])]
                    check = f"inputs max diff {diffs[0]:.1e}, targets {diffs[1]:.1e}"
                suffix = CONTENDER_SUFFIX[name]
                rows.append(side_row(f"data {key} ({image_set}), {count} workers{suffix}", label, True, n,
                                     times["official"], times[name], check, unit="crops/s"))
                say(f"{tag} data side by side, {key}, {count} workers{suffix}: official "
                    f"{rows[-1]['ref_rate']:.1f} crops/s, posezoo {rows[-1]['rate']:.1f} "
                    f"(x{rows[-1]['speedup']:.2f} / x{rows[-1]['median_speedup']:.2f}; "
                    f"{rows[-1]['rate'] / max(count, 1):.1f} per worker), {check}")
    return rows
