"""Config loading: unknown keys, wrong types, unknown component names, bad files
and command lines, read-only configs."""
from __future__ import annotations


import pytest

from posezoo.codecs import build_codec
from posezoo.config import ConfigError, load_config, update_config
from posezoo.core.loss import build_loss
from posezoo.models import build_model
from posezoo.utils.registry import UnknownComponentError

from .conftest import _yaml, build, one_line


@pytest.mark.parametrize("text,key,hint", [
    ("TRAIN:\n  LR_FACTR: 0.1\n", "TRAIN.LR_FACTR", "TRAIN.LR_FACTOR"),
    ("TEST:\n  FLIPTEST: true\n", "TEST.FLIPTEST", "TEST.FLIP_TEST"),
    ("MODLE:\n  NAME: pose_resnet\n", "MODLE", "MODEL"),
])
def test_unknown_yaml_key_names_key_file_and_closest(tmp_path, text, key, hint):
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = one_line(err.value)
    assert f"key {key} " in msg and path in msg and f"did you mean {hint}?" in msg


@pytest.mark.parametrize("key,raw,shown,expected", [
    ("TRAIN.LR", "fast", "'fast'", "a number"),
    ("MODEL.IMAGE_SIZE", "[1.5, 2]", "[1.5, 2]", "a list of integers"),
    ("TEST.FLIP_TEST", "maybe", "'maybe'", "true or false"),
    ("TRAIN.END_EPOCH", "1.5", "1.5", "an integer"),
])
def test_wrong_type_names_key_value_and_expected_type(tmp_path, key, raw, shown, expected):
    node, leaf = key.split(".")
    path = _yaml(tmp_path, f"{node}:\n  {leaf}: {raw}\n")
    for where, load in ((path, lambda: load_config(path)), ("command line", lambda: load_config(None, [key, raw]))):
        with pytest.raises(ConfigError) as err:
            load()
        msg = one_line(err.value)
        assert f"{key} = {shown}" in msg and where in msg and f"expected {expected}" in msg


def test_unknown_extra_field_is_refused_by_the_model(synthetic_cfg, tmp_path):
    cfg = update_config(synthetic_cfg, ["MODEL.EXTRA.NUM_LAYER", "50"])  # free-form until the model reads it
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    msg = one_line(err.value)
    assert "MODEL.EXTRA.NUM_LAYER " in msg and "pose_resnet" in msg and "did you mean MODEL.EXTRA.NUM_LAYERS" in msg

    path = _yaml(tmp_path, "MODEL:\n  NAME: pose_resnet\n  EXTRA:\n    NUM_LAYERS: 18\n    DECONV_FILTERS: [8]\n")
    with pytest.raises(ConfigError, match=r"MODEL\.EXTRA\.DECONV_FILTERS .*MODEL\.EXTRA\.NUM_DECONV_FILTERS"):
        build_model(load_config(path))


@pytest.mark.parametrize("key,bad,make,available", [
    ("MODEL.NAME", "pose_resnt", build_model, "pose_resnet"),
    ("DATASET.DATASET", "cocoo", lambda cfg: build(cfg, "val2017", False), "coco"),
    ("MODEL.TARGET_TYPE", "gausian", build_codec, "gaussian"),
    ("LOSS.NAME", "JointsMSE", build_loss, "JointsMSELoss"),
])
def test_unknown_component_lists_available_names(synthetic_cfg, key, bad, make, available):
    with pytest.raises(UnknownComponentError) as err:
        make(update_config(synthetic_cfg, [key, bad]))
    msg = one_line(err.value)
    assert f"{key} = {bad}" in msg and "available" in msg and available in msg


@pytest.mark.parametrize("key,bad,make", [
    ("MODEL.NAME", "posezoo.models.no_such_net", build_model),
    ("LOSS.NAME", "posezoo.no_such_loss", build_loss),
    ("LOSS.NAME", "no_such_pkg_zz.loss", build_loss),
])
def test_unknown_dotted_component_is_an_unknown_component_error(synthetic_cfg, key, bad, make):
    with pytest.raises(UnknownComponentError) as err:
        make(update_config(synthetic_cfg, [key, bad]))
    assert f"{key} = {bad}" in one_line(err.value)


def test_command_line_and_file_problems(synthetic_cfg, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["TRAIN.LR", "0.1", "TRAIN.END_EPOCH"])
    assert "odd" in one_line(err.value) and "TRAIN.END_EPOCH" in str(err.value)
    with pytest.raises(ConfigError, match="odd"):
        update_config(synthetic_cfg, ["TRAIN.LR"])

    missing = str(tmp_path / "no_such.yaml")
    with pytest.raises(ConfigError) as err:
        load_config(missing, [])
    assert missing in one_line(err.value) and "not found" in str(err.value)

    for text, expected in (("TRAIN: [1,\n", "not valid YAML"), ("- a\n- b\n", "mapping")):
        path = _yaml(tmp_path, text)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert path in one_line(err.value) and expected in str(err.value)


def test_config_is_read_only(synthetic_cfg):
    cfg = synthetic_cfg
    attempts = [lambda: setattr(cfg.TRAIN, "LR", 1.0), lambda: cfg.TRAIN.__setitem__("LR", 1.0),
                lambda: setattr(cfg, "NEW_KEY", 1), lambda: delattr(cfg.TRAIN, "LR"),
                lambda: cfg.TRAIN.update(LR=1.0), lambda: cfg.TRAIN.pop("LR"),
                lambda: setattr(cfg.MODEL.EXTRA, "NUM_LAYERS", 50)]
    for attempt in attempts:
        with pytest.raises(AttributeError, match="read-only"):
            attempt()
    assert cfg.TRAIN.LR == cfg.TRAIN["LR"] == 0.001 and "NEW_KEY" not in cfg
    assert cfg.MODEL.EXTRA.NUM_LAYERS == 18

    new = update_config(cfg, ["TRAIN.LR", "0.01"])
    assert new.TRAIN.LR == 0.01 and cfg.TRAIN.LR == 0.001
    with pytest.raises(AttributeError):
        new.TRAIN.LR = 0.1


def test_config_lists_are_read_only_too(synthetic_cfg):
    with pytest.raises((AttributeError, TypeError)):
        synthetic_cfg.MODEL.IMAGE_SIZE[0] = 128
    assert synthetic_cfg.MODEL.IMAGE_SIZE == [64, 64]
