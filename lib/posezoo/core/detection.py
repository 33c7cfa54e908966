"""Detector test pass: images -> CornerNet boxes -> COCO results and bbox AP.

The same forward and decode as every test set (``core.inference``): the
mirrored batch too with ``CORNERNET.FLIP_TEST`` (the official flip test), one
input batch per ``CORNERNET.TEST_SCALES`` entry, ``codec.decode`` on the
device, results in the COCO format that ``TEST.COCO_BBOX_FILE`` reads.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch.utils.data import DataLoader

from ..utils.collate import packed_collate
from ..utils.utils import to_device
from .inference import forward_test, predict


@torch.no_grad()
def detect(model: torch.nn.Module, codec, images, meta: Mapping[str, torch.Tensor],
           flip: bool = True) -> dict[str, torch.Tensor]:
    """Batched detections ``boxes`` (N, D, 4), ``scores`` (N, D), ``classes``
    (N, D) for network inputs (a batch, or a list of them: one per test scale)."""
    model.eval()
    device = next(model.parameters()).device
    images = to_device(images, device)
    meta = {k: v.to(device) for k, v in meta.items() if isinstance(v, torch.Tensor)}
    boxes, scores = codec.decode(forward_test(model, images, codec, [], flip), meta)
    return {"boxes": boxes, "scores": scores[..., 0], "classes": scores[..., 1].long()}


def evaluate_detector(model: torch.nn.Module, codec, dataset, output_dir: str, flip: bool = True,
                      batch_size: int = 1, workers: int = 0):
    """Detect every test image of a ``coco_det`` dataset through ``predict``;
    (AP table, results list). ``flip`` overrides ``CORNERNET.FLIP_TEST``."""
    from ..config import update_config

    cfg = update_config(dataset.cfg, ["CORNERNET.FLIP_TEST", str(bool(flip))])
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        collate_fn=packed_collate)
    device = next(model.parameters()).device
    out = predict(cfg, loader, model, codec, dataset.flip_pairs, device, desc="detect")
    table, _ = dataset.evaluate(out["preds"], None, out["image_ids"], output_dir)
    return table, dataset.results(out["preds"], out["image_ids"])
