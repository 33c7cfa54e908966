"""Stage 1: the dataset's __getitem__ (read + augment + warp + encode), crops/s."""
from __future__ import annotations

from posezoo.datasets import build_dataset

from .common import quiet, say, timed


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
