"""The Megvii loss (codecs/megvii.py) on the test-time output: validation
(core.inference.predict) passes only the last map and the last target."""
import os

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from conftest import ROOT
from posezoo.codecs import build_codec
from posezoo.codecs.megvii import MultiOutputL2Loss
from posezoo.config import load_config
from posezoo.core.inference import predict
from posezoo.datasets import build_dataset
from posezoo.models import build_model


def test_megvii_loss_scores_the_test_time_last_output():
    """Validation passes the flip-averaged last map and the last target: the
    last output's rule (here OHKM top-2, weight 1), as in training."""
    torch.manual_seed(0)
    loss = MultiOutputL2Loss(2, [0.25, 1.0], ohkm=[1], topk=2)
    preds, targets = [torch.rand(2, 3, 4, 4) for _ in range(2)], [torch.rand(2, 3, 4, 4) for _ in range(2)]
    weight = torch.tensor([[1.0], [0.0], [1.0]]).expand(2, 3, 1)
    per_joint = (preds[1] - targets[1]).pow(2).mean((2, 3)) * weight[..., 0]
    expected = per_joint.topk(2, dim=1).values.mean()
    assert torch.allclose(loss(preds[1], targets[1], weight), expected)
    plain = (preds[0] - targets[0] * weight[..., None]).pow(2).mean()
    assert torch.allclose(loss(preds, targets, weight), 0.25 * plain + expected)
    with pytest.raises(ValueError, match="1 outputs and 2 targets, expected 2"):
        loss(preds[1], targets, weight)


def test_validation_of_a_multi_stage_model_reports_its_last_output_loss(synthetic_root, tmp_path):
    """core.inference.predict with the Megvii criterion (tools/train.py's
    validation, which stopped with "1 outputs and 64 targets")."""
    cfg = load_config(os.path.join(ROOT, "experiments/synthetic/rsn_18_128x96.yaml"),
                      ["DATASET.ROOT", synthetic_root, "OUTPUT_DIR", str(tmp_path), "WORKERS", "0",
                       "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
                       "MODEL.EXTRA", "{NUM_STAGES: 1, NUM_BLOCKS: [1, 1, 1, 1], UNIT_CHANNELS: 16}",
                       "TEST.COCO_BBOX_FILE", ""])
    torch.manual_seed(0)
    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True)
    val_set = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    loader = DataLoader(Subset(val_set, range(4)), batch_size=4)
    out = predict(cfg, loader, model, codec, val_set.flip_pairs, torch.device("cpu"), codec.loss(cfg))
    assert out["preds"].shape == (4, 17, 3) and out["loss"] > 0
