"""The official CC-SSL configuration as one YAML
(``experiments/animal/ccssl_hg_s4_b1_horse_256x256.yaml``): it builds the
model, codec, dataset and strategy, and its numbers are the defaults of
JitengMu/Learning-from-Synthetic-Animals ``CCSSL/options/train_options.py``
and ``CCSSL/CCSSL.py``."""
import os

import cv2
import numpy as np
import pytest
import torch

from conftest import ROOT

from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core.adaptation import CCSSL, build_domain_dataset, domain_specs, keep_fraction
from posezoo.core.schedule import build_scheduler
from posezoo.datasets import build_dataset
from posezoo.models import build_model
from posezoo.utils.utils import build_optimizer

YAML = os.path.join(ROOT, "experiments", "animal", "ccssl_hg_s4_b1_horse_256x256.yaml")
SYN_YAML = os.path.join(ROOT, "experiments", "animal", "ccssl_hg_s4_b1_horse_syn_256x256.yaml")
# train_options.py defaults (lines 11-36), the consistency check's (consistency.py:10, 24-25) and the horse mean
OFFICIAL = {"batch": 6, "lr": 2.5e-4, "momentum": 0.0, "wd": 0.0, "classes": 18, "epochs": 60, "gamma": 10.0,
            "inp": 256, "out": 64, "sigma": 1, "stacks": 4, "blocks": 1, "transforms": 5, "sf": 0.25, "rf": 30}
HORSE_MEAN = [0.40381085872650146, 0.39560505747795105, 0.3924943804740906]  # mean.pth.tar, weights_only load


def write_black_horses(root, count: int, seed: int, span: tuple) -> object:
    """`count` black 640 x 480 renders with 1800 random mesh points in `span`, in unreal_animal's layout."""
    folder = root / "synthetic_animal" / "horse_combineds5r5_texture"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        np.save(folder / f"{i}kpts.npy", np.column_stack([rng.uniform(*span, (1800, 2)), np.ones(1800)]))
        cv2.imwrite(str(folder / f"{i}img.png"), np.zeros((480, 640, 3), np.uint8))
    return folder


def official_keep(epoch: int) -> float:
    """1 - p of CCSSL.py:148-153 at a labelling epoch."""
    p = 1.0 - 0.02 * (epoch + 10)
    return 1.0 - (p if p > 0.2 else 0.2)


def test_ccssl_yaml_numbers_are_the_official_defaults():
    cfg = load_config(YAML)
    o = OFFICIAL
    assert (cfg.TRAIN.BATCH_SIZE_PER_GPU, cfg.TRAIN.LR, cfg.TRAIN.MOMENTUM, cfg.TRAIN.WD) == (o["batch"], o["lr"],
                                                                                          o["momentum"], o["wd"])
    assert cfg.TRAIN.OPTIMIZER == "rmsprop" and cfg.TRAIN.END_EPOCH == o["epochs"]
    assert cfg.MODEL.NUM_JOINTS == o["classes"] and cfg.MODEL.SIGMA == o["sigma"]
    assert list(cfg.MODEL.IMAGE_SIZE) == [o["inp"]] * 2 and list(cfg.MODEL.HEATMAP_SIZE) == [o["out"]] * 2
    assert (cfg.MODEL.EXTRA.NUM_STACKS, cfg.MODEL.EXTRA.NUM_BLOCKS) == (o["stacks"], o["blocks"])
    a = cfg.ADAPT
    assert (a.TARGET_WEIGHT, a.NUM_TRANSFORMS, a.SCALE_FACTOR, a.ROT_FACTOR) == (o["gamma"], o["transforms"], o["sf"],
                                                                                 o["rf"])
    assert a.EPOCHS_PER_ROUND == 10 and a.SOURCE_EPOCHS == 0 and not a.FLIP and a.TEMPORAL
    rounds = range(o["epochs"] // a.EPOCHS_PER_ROUND)
    assert [keep_fraction(cfg, r) for r in rounds] == pytest.approx([official_keep(10 * r) for r in rounds])
    assert cfg.DATASET.INPUT_MEAN == pytest.approx(HORSE_MEAN) and list(cfg.DATASET.INPUT_STD) == [1, 1, 1]
    assert not cfg.TEST.FLIP_TEST and cfg.LOSS.USE_TARGET_WEIGHT


def test_ccssl_yaml_builds_model_codec_dataset_strategy(tmp_path):
    write_black_horses(tmp_path, 5, 0, (100, 500))
    cfg = load_config(YAML, ["DATASET.ROOT", str(tmp_path), "MODEL.PRETRAINED", "''", "WORKERS", "0",
                             "OUTPUT_DIR", str(tmp_path / "out")])
    with torch.device("meta"):
        model = build_model(cfg, is_train=True)
        outputs = model.eval()(torch.empty(1, 3, 256, 256))
    assert len(outputs) == 4 and list(outputs[-1].shape) == [1, 18, 64, 64]
    optimizer = build_optimizer(cfg, torch.nn.Linear(1, 1))
    assert isinstance(optimizer, torch.optim.RMSprop)
    scheduler = build_scheduler(cfg, optimizer, 1)
    for _ in range(59):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2.5e-4)  # constant, as CCSSL.py
    codec = build_codec(cfg)
    train = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    assert len(train) == 4 and tuple(train[0][1].shape) == (18, 64, 64)
    strategy = CCSSL(cfg)
    assert strategy.target_spec["dataset"] == "tigdog" and strategy.target_spec["set"] == "horse_train"
    assert [strategy.round_of(e) for e in (0, 9, 10, 59)] == [0, 0, 1, 5]


def test_ccssl_yaml_augments_source_and_target_as_the_official_datasets():
    """Source: the strong pipeline only (ssl_synthetic_animal_sp.py:142-160, 233-235, r = 0, no flip);
    target: bearpaw's scale 0.25 / rotation 30 / flip (ssl_real_animal_crop.py:245-252), via OPTS."""
    cfg = load_config(YAML)
    d = cfg.DATASET
    assert (d.STRONG_AUG, d.FLIP, d.SCALE_FACTOR, d.ROT_FACTOR) == ("ccssl", False, 0.0, 0.0)
    target = domain_specs(cfg)[1]
    opts = dict(zip(target["opts"][::2], target["opts"][1::2]))
    assert opts == {"DATASET.STRONG_AUG": "none", "DATASET.FLIP": True, "DATASET.SCALE_FACTOR": OFFICIAL["sf"],
                    "DATASET.ROT_FACTOR": float(OFFICIAL["rf"])}


def test_synthetic_only_yaml_numbers_are_train_py_defaults():
    """train/train.py defaults (lines 404-451) with --dataset synthetic_animal_sp: strong pipeline then
    a mirror (synthetic_animal_sp.py:208-225), lr x 0.1 at 60 and 90 of 100 epochs."""
    cfg = load_config(SYN_YAML)
    t = cfg.TRAIN
    assert (t.OPTIMIZER, t.LR, t.MOMENTUM, t.WD, t.BATCH_SIZE_PER_GPU, t.END_EPOCH) == ("rmsprop", 2.5e-4, 0.0, 0.0,
                                                                                       6, 100)
    assert (list(t.LR_STEP), t.LR_FACTOR, t.STRATEGY) == ([60, 90], 0.1, "supervised")
    d = cfg.DATASET
    assert (d.STRONG_AUG, d.FLIP, d.SCALE_FACTOR, d.ROT_FACTOR) == ("ccssl", True, 0.0, 0.0)
    assert d.INPUT_MEAN == pytest.approx(HORSE_MEAN) and not cfg.TEST.FLIP_TEST
    assert (cfg.MODEL.EXTRA.NUM_STACKS, cfg.MODEL.EXTRA.NUM_BLOCKS, cfg.MODEL.NUM_JOINTS) == (4, 1, 18)


def test_strong_augmentation_reaches_the_training_crops(tmp_path):
    """A black render stays a constant crop without augmentation; with STRONG_AUG ccssl the
    noise / contrast / affine border change it in some draws, never in the validation set."""
    folder = write_black_horses(tmp_path, 2, 1, (200, 400))
    np.save(folder / "train_idxs.npy", np.array([0]))
    np.save(folder / "valid_idxs.npy", np.array([1]))
    opts = ["DATASET.ROOT", str(tmp_path), "MODEL.PRETRAINED", "''", "WORKERS", "0", "MODEL.IMAGE_SIZE", "[64, 64]",
            "MODEL.HEATMAP_SIZE", "[16, 16]"]
    spreads = {}
    for aug in ("none", "ccssl"):
        cfg = load_config(YAML, opts + ["DATASET.STRONG_AUG", aug])
        codec = build_codec(cfg)
        train = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
        torch.manual_seed(0)
        spreads[aug] = [float(train[0][0].flatten(1).std(1).max()) for _ in range(8)]
        valid = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
        assert float(valid[0][0].flatten(1).std(1).max()) == 0.0
    assert spreads["none"] == [0.0] * 8
    assert 0 < sum(s > 0 for s in spreads["ccssl"]) < 8
