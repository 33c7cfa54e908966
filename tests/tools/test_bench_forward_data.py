"""Pieces of the forward and data side-by-side runs (tools/bench/forward.py, data.py, official.py) that
need no official checkout."""
import numpy as np
import torch

from bench.data import Repeated
from bench.forward import FORWARD_VARIANTS, random_eval_state
from bench.official import ToTensorNormalize, official_yaml
from conftest import TINY_MODEL
from posezoo.config import load_config, update_config
from posezoo.utils.normalise import MEAN, STD, to_input_tensor
from posezoo.models import build_model


def test_official_transform_is_posezoos_input_bit_for_bit():
    crop = np.random.default_rng(0).integers(0, 256, (32, 24, 3), dtype=np.uint8)
    official = ToTensorNormalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])(crop)
    assert official.dtype == torch.float32 and official.shape == (3, 32, 24)
    assert torch.equal(official, to_input_tensor(crop, MEAN, STD))


def test_random_state_loads_strictly_and_moves_batchnorm():
    model = build_model(load_config(None, TINY_MODEL), is_train=False)
    state = random_eval_state(model, seed=3)
    model.load_state_dict(state, strict=True)
    assert not torch.equal(state["bn1.running_var"], torch.ones_like(state["bn1.running_var"]))
    assert abs(state["bn1.weight"].mean().item() - 1.0) < 0.1  # BatchNorm scales near 1, not near 0
    assert torch.equal(random_eval_state(model, seed=3)["conv1.weight"], state["conv1.weight"])


def test_variants_are_valid_overrides():
    cfg = load_config(None, TINY_MODEL)
    variants = {name: update_config(cfg, opts) for name, opts in FORWARD_VARIANTS}
    chunked = variants["+ CHANNELS_LAST + FOLD_BN + FORWARD_CHUNK 8"]
    assert chunked.MODEL.CHANNELS_LAST and chunked.MODEL.FOLD_BN and chunked.TEST.FORWARD_CHUNK == 8
    assert not chunked.TEST.COMPILE
    compiled = variants["+ CHANNELS_LAST + FOLD_BN + FORWARD_CHUNK 8 + TEST.COMPILE"]
    assert compiled.TEST.COMPILE and compiled.TEST.FORWARD_CHUNK == 8 and compiled.TEST.AMP is None
    # every float32 row leaves TEST.AMP off; the one AMP row says so in its name
    assert [name for name, v in variants.items() if v.TEST.AMP] == [n for n in variants if "not float32" in n]


def test_official_yaml_same_relative_path(tmp_path):
    official = tmp_path / "off" / "deep-high-resolution-net.pytorch" / "experiments" / "coco" / "hrnet"
    official.mkdir(parents=True)
    (official / "w32.yaml").write_text("GPUS: (0,)\n")
    ours = tmp_path / "posezoo" / "experiments" / "coco" / "hrnet" / "w32.yaml"
    assert official_yaml(str(tmp_path / "off"), "hrnet", str(ours)) == str(official / "w32.yaml")
    assert official_yaml(str(tmp_path / "off"), "hrnet", str(tmp_path / "elsewhere.yaml")) is None
    assert official_yaml(str(tmp_path / "off"), "lpn", str(ours)) is None


def test_repeated_cycles():
    data = Repeated(["a", "b", "c"], 7)
    assert len(data) == 7 and [data[i] for i in range(7)] == list("abcabca")
