"""Every experiment YAML loads verbatim, builds its model, and runs one training
step and one test pass (tiny sizes, on the synthetic data)."""
import glob
import importlib.util
import os

import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from conftest import ROOT, synthetic_opts
from posezoo.codecs import build_codec, codec_name
from posezoo.config import load_config, update_config
from posezoo.core.inference import predict
from posezoo.core.loss import build_loss
from posezoo.core.strategy import stage_loss
from posezoo.datasets import build_dataset
from posezoo.models import build_model
from posezoo.utils.utils import build_optimizer

EXPERIMENTS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "experiments", "**", "*.yaml"),
                                                                 recursive=True))
# Only the data, the sizes and the weights' source change; model, codec, loss,
# optimizer and test settings stay as the YAML has them.
TINY_KEYS = ("MODEL.EXTRA", "MODEL.NAME", "MODEL.PRETRAINED", "MODEL.SIGMA")
# Multi-stage nets (MSPN/RSN/CPN) keep their stages, blocks, layout and heads but run one
# block per ResNet layer and narrow upsampling units: the full widths take ~10 s a step here.
TINY_EXTRA = {"NUM_BLOCKS": [1, 1, 1, 1], "UNIT_CHANNELS": 32}
MULTI_STAGE = ("mspn", "rsn", "cpn")


def tiny_overrides(root, out):
    opts = synthetic_opts(root, out)
    pairs = [(k, v) for k, v in zip(opts[0::2], opts[1::2])
             if k not in TINY_KEYS and not k.startswith("TEST.") or k in ("TEST.COCO_BBOX_FILE", "TEST.USE_GT_BBOX",
                                                                          "TEST.BATCH_SIZE_PER_GPU")]
    pairs += [("MODEL.NUM_JOINTS", "17"), ("MODEL.INIT_WEIGHTS", "False"), ("MODEL.IMAGE_SIZE", "[64, 64]"),
              ("MODEL.HEATMAP_SIZE", "[16, 16]"), ("TRAIN.BATCH_SIZE_PER_GPU", "2")]
    return [x for pair in pairs for x in pair]


def test_experiments_exist():
    assert "experiments/synthetic/pose_resnet_18_128x96.yaml" in EXPERIMENTS


def signature(cfg) -> str:
    """What the smoke step depends on once sizes and data are tiny: the model,
    the codec and the loss (official YAMLs differing only in input size, epochs or
    paths share one)."""
    return repr((cfg.MODEL.NAME, dict(cfg.MODEL.EXTRA), cfg.MODEL.STYLE, codec_name(cfg), cfg.LOSS.NAME,
                 cfg.LOSS.USE_OHKM, cfg.TRAIN.OPTIMIZER, cfg.TEST.FLIP_TEST, cfg.TEST.SHIFT_HEATMAP,
                 cfg.TEST.POST_PROCESS, cfg.TEST.BLUR_KERNEL, cfg.TEST.BIAS))


def tiny_depth_overrides(root, out, cfg):
    """Depth YAMLs: the synthetic NYU data, 64x64 crops, the model's own heads."""
    size = ["MODEL.IMAGE_SIZE", "[64, 64]"]
    if cfg.MODEL.NAME == "awr":
        size += ["MODEL.HEATMAP_SIZE", f"[{64 // cfg.MODEL.EXTRA.DOWNSAMPLE}, {64 // cfg.MODEL.EXTRA.DOWNSAMPLE}]"]
    return ["DATASET.ROOT", root, "OUTPUT_DIR", out, "WORKERS", "0", "MODEL.INIT_WEIGHTS", "False",
            "MODEL.PRETRAINED", "''", "TRAIN.BATCH_SIZE_PER_GPU", "2"] + size


_DONE: dict = {}  # signature -> predictions of the first YAML that ran it


BODY3D = ("h36m", "synthetic_h36m")


@pytest.fixture(scope="session")
def synthetic_h36m_root(tmp_path_factory) -> str:
    from posezoo.datasets.synthetic_h36m import generate_synthetic_h36m

    root = str(tmp_path_factory.mktemp("synthetic_h36m"))
    generate_synthetic_h36m(root, seed=3, num_train=4, num_test=4)
    return root


def _missing_model(path: str):
    """The posezoo model a YAML names when its module is not in this checkout
    (the Human3.6M YAMLs name c2f_vol, which lands from another branch)."""
    with open(os.path.join(ROOT, path)) as f:
        name = (yaml.safe_load(f).get("MODEL") or {}).get("NAME", "")
    if name and "." not in name and importlib.util.find_spec(f"posezoo.models.{name}") is None:
        return name
    return None


def body3d_step(official, root, out):
    """A Human3.6M YAML: one step on the synthetic H36M frames (tiny widths,
    64x64 crops), its codec's loss per stack, and a test pass in camera mm."""
    extra = dict(official.MODEL.EXTRA, NUM_FEATURES=16, DEPTH=2)
    cfg = update_config(official, ["DATASET.DATASET", "synthetic_h36m", "DATASET.ROOT", root, "OUTPUT_DIR", out,
                                   "WORKERS", "0", "MODEL.IMAGE_SIZE", "[64, 64]", "MODEL.HEATMAP_SIZE", "[16, 16]",
                                   "MODEL.EXTRA", repr(extra), "TRAIN.BATCH_SIZE_PER_GPU", "2"])
    step_and_test_3d(cfg, batch_size=2)


def step_and_test_3d(cfg, batch_size: int) -> None:
    """One step with the codec's loss at every stage (the loop's ``stage_loss``)
    and a test pass of 4 frames predicting (4, 17, 3) finite joints in mm."""
    torch.manual_seed(0)
    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True)
    criterion, optimizer = codec.loss(cfg), build_optimizer(cfg, model)
    train_set = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    inputs, target, weight, _ = next(iter(DataLoader(train_set, batch_size=batch_size, shuffle=False)))
    loss = stage_loss(criterion, model(inputs), target, weight)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    val_set = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    out = predict(cfg, DataLoader(val_set, batch_size=4), model, codec, val_set.flip_pairs, torch.device("cpu"))
    assert out["preds"].shape == (4, 17, 3) and np.isfinite(out["preds"]).all()


def lifting_step(official, out):
    """A lifting YAML (the reconstruction component): its codec, loss, inputs and
    optimizer on synthetic MoCap-style poses (the Human3.6M one's data swapped for
    them), a 32-unit MLP, one step and a test pass in root-relative mm."""
    cfg = update_config(official, ["DATASET.DATASET", "synthetic_h36m_lifting", "DATASET.TRAIN_SET", "train",
                                   "DATASET.TEST_SET", "test", "OUTPUT_DIR", out, "WORKERS", "0",
                                   "LIFTING.NUM_TRAIN", "8", "LIFTING.NUM_TEST", "4",
                                   "MODEL.EXTRA", repr(dict(official.MODEL.EXTRA, LINEAR_SIZE=32))])
    step_and_test_3d(cfg, batch_size=4)


@pytest.mark.parametrize("path", EXPERIMENTS)
def test_experiment_yaml_trains_one_step_and_tests(path, synthetic_root, synthetic_nyu_root, tmp_path, request):
    missing = _missing_model(path)
    if missing:
        pytest.skip(f"{path} names MODEL.NAME {missing}, whose module is not in this checkout")
    official = load_config(os.path.join(ROOT, path))
    if official.MODEL.NAME == "lifting_mlp":
        return lifting_step(official, str(tmp_path))
    if official.DATASET.DATASET in BODY3D:
        return body3d_step(official, request.getfixturevalue("synthetic_h36m_root"), str(tmp_path))
    if official.MODEL.NAME == "cornernet":
        return detector_step(official, synthetic_root, str(tmp_path))
    depth = official.DATASET.DATASET in ("nyu", "synthetic_nyu")
    overrides = (tiny_depth_overrides(synthetic_nyu_root, str(tmp_path), official) if depth
                 else tiny_overrides(synthetic_root, str(tmp_path)))
    cfg = update_config(official, overrides)
    shrink = ({k: v for k, v in TINY_EXTRA.items() if k in official.MODEL.EXTRA}
              if official.MODEL.NAME in MULTI_STAGE else {})
    if shrink:
        cfg = update_config(cfg, ["MODEL.EXTRA", repr(dict(official.MODEL.EXTRA, **shrink))])
    if official.MODEL.NAME == "pose_resnet" and not depth:  # its head's output: input / 32 x 2 per deconv
        side = 64 // 32 * 2 ** int(official.MODEL.EXTRA.get("NUM_DECONV_LAYERS", 3))
        cfg = update_config(cfg, ["MODEL.HEATMAP_SIZE", f"[{side}, {side}]"])
    key = signature(cfg)
    if key in _DONE:  # the same step already ran for an equivalent YAML
        assert build_codec(cfg) is not None
        return
    torch.manual_seed(0)
    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True)
    criterion, optimizer = build_loss(cfg), build_optimizer(cfg, model)

    train_set = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    inputs, target, weight, _ = next(iter(DataLoader(train_set, batch_size=2, shuffle=False)))
    loss = stage_loss(criterion, model(inputs), target, weight)  # the training loop's own rule
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)

    val_set = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    loader = DataLoader(torch.utils.data.Subset(val_set, range(min(4, len(val_set)))), batch_size=4)
    if depth:
        out = predict(cfg, loader, model, codec, val_set.flip_pairs, torch.device("cpu"), criterion)
        assert out["preds"].shape == (4, 14, 3) and np.isfinite(out["preds"]).all() and np.isfinite(out["loss"])
    else:
        out = predict(cfg, loader, model, codec, val_set.flip_pairs, torch.device("cpu"))
        assert out["preds"].shape == (min(4, len(val_set)), 17, 3) and np.isfinite(out["preds"]).all()
    _DONE[key] = path


def detector_step(official, root, out):
    """A CornerNet YAML: one step with its codec's loss and a test pass with box AP
    on the synthetic persons, at tiny widths of the YAML's variant and layout."""
    from posezoo.core.detection import evaluate_detector
    from posezoo.datasets.coco_det import collate

    depth = 4 if official.MODEL.EXTRA.get("VARIANT") == "squeeze" else 5
    extra = dict(official.MODEL.EXTRA, NUM_CLASSES=1, DIMS=[8] * (depth + 1), MODULES=[1] * (depth + 1),
                 STEM_DIM=8, POOL_DIM=8, HEAD_DIM=8)
    cfg = update_config(official, ["DATASET.ROOT", root, "OUTPUT_DIR", out, "WORKERS", "0", "MODEL.IMAGE_SIZE",
                                   "[127, 127]", "MODEL.EXTRA", repr(extra), "CORNERNET.CATEGORIES", "[1]",
                                   "CORNERNET.BORDER", "32"])
    torch.manual_seed(0)
    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True)
    train_set = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    images, target, weight, _ = collate([train_set[0], train_set[1]])
    loss = codec.loss(cfg)(model(images), target, weight)
    optimizer = build_optimizer(cfg, model)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    val_set = build_dataset(cfg, cfg.DATASET.TEST_SET, False, codec)
    val_set.image_ids = val_set.image_ids[:2]
    stats, _ = evaluate_detector(model, codec, val_set, out, flip=cfg.CORNERNET.FLIP_TEST, batch_size=2)
    assert 0.0 <= stats["AP"] <= 1.0
