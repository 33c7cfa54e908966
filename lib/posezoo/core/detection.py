"""Detector test pass: images -> CornerNet boxes -> COCO results and bbox AP.

One forward per batch (the mirrored batch too with ``CORNERNET.FLIP_TEST``, the
official flip test), ``codec.decode_detections`` on the device, results in the
COCO format that ``TEST.COCO_BBOX_FILE`` reads.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch.utils.data import DataLoader


@torch.no_grad()
def detect(model: torch.nn.Module, codec, images: torch.Tensor, meta: Mapping[str, torch.Tensor],
           flip: bool = True) -> dict[str, torch.Tensor]:
    """Batched detections (see ``CornerNetCodec.decode_detections``) for network inputs."""
    model.eval()
    device = next(model.parameters()).device
    images = images.to(device)
    meta = {k: v.to(device) for k, v in meta.items() if isinstance(v, torch.Tensor)}
    if flip:
        outs = model(torch.cat([images, images.flip(-1)]))[-1]
        n = images.shape[0]
        return codec.decode_detections({k: v[:n] for k, v in outs.items()}, meta,
                                       output_flipped={k: v[n:] for k, v in outs.items()})
    return codec.decode_detections(model(images), meta)


def evaluate_detector(model: torch.nn.Module, codec, dataset, output_dir: str, flip: bool = True,
                      batch_size: int = 1, workers: int = 0):
    """Detect every test image of a ``coco_det`` dataset; (AP table, results list)."""
    from ..datasets.coco_det import collate

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    found = []
    for images, meta in loader:
        det = detect(model, codec, images, meta, flip)
        for i, image_id in enumerate(meta["image_id"]):
            found.append((image_id, det["boxes"][i].cpu(), det["scores"][i].cpu(), det["classes"][i].cpu()))
    results = dataset.results(found)
    return dataset.evaluate(results, output_dir), results
