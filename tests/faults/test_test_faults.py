"""tools/test.py and validate(): what is left out of an evaluation (unreadable
images, images without detections) and how it is reported."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from posezoo.codecs import build_codec
from posezoo.core.function import TrainContext, validate
from posezoo.core.inference import predict
from posezoo.datasets import build_dataset
from posezoo.models import build_model

from .conftest import CPU, ann_path, coco_cfg, copy_root, det_cfg, det_path, labelled, loader_of, read_json, write_json


def test_predict_and_validate_leave_unreadable_boxes_out(broken_images, tmp_path):
    root, bad = broken_images
    cfg = coco_cfg(root, tmp_path, "DATASET.SKIP_CORRUPT_IMAGES", "True")
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True)
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    bad_rows = [i for i, rec in enumerate(dataset.db) if rec["image_id"] in bad]
    assert len(bad_rows) >= 2

    out = predict(cfg, loader_of(dataset), model, codec, dataset.flip_pairs, CPU)
    assert len(out["valid"]) == len(dataset)
    assert not out["valid"][bad_rows].any()
    assert out["valid"].sum() == len(dataset) - len(bad_rows)

    out_dir = str(tmp_path / "eval")
    stats, perf = validate(TrainContext(cfg, model, codec, output_dir=out_dir), loader_of(dataset), dataset)
    assert "AP" in stats and perf == stats["AP"] and np.isfinite(list(stats.values())).all()
    results = read_json(os.path.join(out_dir, "results", "keypoints_val2017_results_0.json"))
    assert results, "the readable images must still be evaluated"
    assert not {r["image_id"] for r in results} & set(bad)
    metrics = read_json(os.path.join(out_dir, "results", "metrics_val2017.json"))
    assert metrics["skipped"] == {"unreadable_image_boxes": len(bad_rows), "unreadable_image_ids": sorted({dataset.db[i]["image_id"] for i in bad_rows}),
                                  "unusable_boxes": 0}
    assert (metrics["boxes"], metrics["evaluated"]) == (len(dataset), len(dataset) - len(bad_rows))
    assert metrics["metrics"]["AP"] == pytest.approx(stats["AP"])


def test_image_without_any_detection_still_evaluates(synthetic_root, tmp_path):
    root = copy_root(synthetic_root, tmp_path)
    val = read_json(ann_path(root, "val2017"))
    dropped = sorted({a["image_id"] for a in val["annotations"] if labelled(a)})[0]
    dets = read_json(det_path(root))
    kept = [d for d in dets if d["image_id"] != dropped]
    assert 0 < len(kept) < len(dets)
    write_json(det_path(root), kept)

    cfg = det_cfg(root, tmp_path)
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    assert len(dataset) == len(kept) and dropped not in {r["image_id"] for r in dataset.db}
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True)
    stats, perf = validate(TrainContext(cfg, model, codec, output_dir=str(tmp_path / "eval")), loader_of(dataset),
                           dataset, gallery=False)
    assert "AP" in stats and perf == stats["AP"] and np.isfinite(list(stats.values())).all()
