"""Config: defaults + YAML + overrides, official YAMLs verbatim, clear errors."""
import json
import os

import pytest
import yaml

from conftest import ROOT, SPECS, needs_shared
from posezoo.config import ConfigError, load_config, update_config

HRNET_STYLE = """
GPUS: (0,1,2,3)
DATASET:
  DATASET: coco
  ROOT: 'data/coco/'
  TEST_SET: 'val2017'
  TRAIN_SET: 'train2017'
MODEL:
  NAME: pose_hrnet
  IMAGE_SIZE:
  - 192
  - 256
  HEATMAP_SIZE:
  - 48
  - 64
  SIGMA: 2
  EXTRA:
    PRETRAINED_LAYERS: ['conv1', 'bn1']
    FINAL_CONV_KERNEL: 1
TRAIN:
  BATCH_SIZE_PER_GPU: 32
  LR: 0.001
TEST:
  BATCH_SIZE_PER_GPU: 32
  COCO_BBOX_FILE: 'data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json'
"""

SIMPLEBASELINE_STYLE = """
GPUS: '0'
MODEL:
  NAME: 'pose_resnet'
  IMAGE_SIZE: [192, 256]
  STYLE: caffe
  EXTRA:
    TARGET_TYPE: gaussian
    HEATMAP_SIZE: [48, 64]
    SIGMA: 2
    NUM_LAYERS: 50
TRAIN:
  BATCH_SIZE: 24
TEST:
  BATCH_SIZE: 16
"""


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_hrnet_yaml_with_tuple_gpus(tmp_path):
    cfg = load_config(write(tmp_path, HRNET_STYLE))
    assert cfg.GPUS == [0, 1, 2, 3]
    assert cfg.MODEL.IMAGE_SIZE == [192, 256] and cfg.MODEL.SIGMA == 2.0
    assert cfg.MODEL.EXTRA.PRETRAINED_LAYERS == ["conv1", "bn1"]
    assert cfg.TEST.FLIP_TEST is False  # default kept


def test_simplebaseline_spellings_are_mapped(tmp_path):
    cfg = load_config(write(tmp_path, SIMPLEBASELINE_STYLE))
    assert cfg.GPUS == [0]
    assert cfg.MODEL.HEATMAP_SIZE == [48, 64] and cfg.MODEL.TARGET_TYPE == "gaussian" and cfg.MODEL.SIGMA == 2.0
    assert cfg.TRAIN.BATCH_SIZE_PER_GPU == 24 and cfg.TEST.BATCH_SIZE_PER_GPU == 16
    assert cfg.MODEL.STYLE == "caffe"


def test_command_line_overrides_are_typed(tmp_path):
    cfg = load_config(write(tmp_path, HRNET_STYLE),
                      ["TEST.MODEL_FILE", "m.pth", "TEST.USE_GT_BBOX", "False", "TRAIN.LR", "1e-3",
                       "MODEL.IMAGE_SIZE", "[288,384]", "MODEL.EXTRA.FINAL_CONV_KERNEL", "3"])
    assert cfg.TEST.MODEL_FILE == "m.pth" and cfg.TEST.USE_GT_BBOX is False
    assert cfg.TRAIN.LR == pytest.approx(0.001)
    assert cfg.MODEL.IMAGE_SIZE == [288, 384] and cfg.MODEL.EXTRA.FINAL_CONV_KERNEL == 3


def test_nested_extra_overrides_walk_into_the_yaml_stages():
    """``MODEL.EXTRA.STAGE2.NUM_CHANNELS [8, 16]`` changes that field of the YAML's
    stage, as HRNet's yacs ``merge_from_list`` does (it used to become a flat key
    ``STAGE2.NUM_CHANNELS`` that pose_hrnet rejected); a misspelt or misplaced
    nested key is one clear line."""
    yaml_path = os.path.join(ROOT, "experiments", "coco", "hrnet", "w32_256x192_adam_lr1e-3.yaml")
    cfg = load_config(yaml_path, ["MODEL.EXTRA.STAGE2.NUM_CHANNELS", "[8, 16]", "MODEL.EXTRA.STAGE4.NUM_MODULES", "1"])
    assert cfg.MODEL.EXTRA.STAGE2.NUM_CHANNELS == [8, 16] and cfg.MODEL.EXTRA.STAGE4.NUM_MODULES == 1
    assert cfg.MODEL.EXTRA.STAGE2.NUM_BLOCKS == [4, 4] and cfg.MODEL.EXTRA.STAGE3.NUM_CHANNELS == [32, 64, 128]
    with pytest.raises(ConfigError, match="unknown config key MODEL.EXTRA.STAGE2.NUM_CHANNEL;"):
        load_config(yaml_path, ["MODEL.EXTRA.STAGE2.NUM_CHANNEL", "[8, 16]"])
    with pytest.raises(ConfigError, match="MODEL.EXTRA.FINAL_CONV_KERNEL is not a mapping"):
        load_config(yaml_path, ["MODEL.EXTRA.FINAL_CONV_KERNEL.X", "1"])


def test_data_dir_prefixes_paths_once(tmp_path):
    cfg = load_config(write(tmp_path, HRNET_STYLE), ["DATA_DIR", "/data"])
    assert cfg.DATASET.ROOT == "/data/data/coco/"
    again = update_config(cfg, ["TEST.FLIP_TEST", "True"])
    assert again.DATASET.ROOT == "/data/data/coco/" and again.TEST.FLIP_TEST is True


def test_unknown_key_names_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"TEST\.FLIPTEST.*cfg\.yaml.*did you mean TEST\.FLIP_TEST"):
        load_config(write(tmp_path, "TEST:\n  FLIPTEST: true\n"))
    with pytest.raises(ConfigError, match=r"TRAIN\.LR_STEPS.*did you mean TRAIN\.LR_STEP"):
        load_config(None, ["TRAIN.LR_STEPS", "[1,2]"])


@pytest.mark.parametrize("key,value,expected", [
    ("TRAIN.LR", "fast", "a number"), ("MODEL.IMAGE_SIZE", "[1.5, 2]", "a list of integers"),
    ("TEST.FLIP_TEST", "maybe", "true or false"), ("WORKERS", "2.5", "an integer"),
    ("MODEL.NAME", "3", "a string"), ("GPUS", "gpu0", "GPU ids")])
def test_wrong_type_names_key_value_and_type(key, value, expected):
    with pytest.raises(ConfigError) as err:
        load_config(None, [key, value])
    assert key in str(err.value) and expected in str(err.value) and value.split(",")[0].strip("[") in str(err.value)


def test_config_is_read_only():
    cfg = load_config(None)
    with pytest.raises(AttributeError):
        cfg.TEST.FLIP_TEST = True
    with pytest.raises(AttributeError):
        cfg["MODEL"]["NAME"] = "x"


def test_odd_overrides_and_missing_file():
    with pytest.raises(ConfigError, match="KEY VALUE"):
        load_config(None, ["TEST.FLIP_TEST"])
    with pytest.raises(ConfigError, match="not found: nowhere.yaml"):
        load_config("nowhere.yaml")


@needs_shared
def test_every_official_experiment_config_loads(tmp_path):
    """All official HRNet/SimpleBaseline/DarkPose/LPN/UDP YAMLs (merged with their
    defaults, as recorded in the shared spec) load, and keep their values."""
    with open(os.path.join(SPECS, "official2d_experiment_configs.json")) as f:
        families = json.load(f)
    count = 0
    for family in families.values():
        for name, merged in family.items():
            path = write(tmp_path, yaml.safe_dump(merged))
            cfg = load_config(path)
            assert cfg.MODEL.NAME == merged["MODEL"]["NAME"], name
            assert cfg.MODEL.IMAGE_SIZE == merged["MODEL"]["IMAGE_SIZE"], name
            assert cfg.TEST.FLIP_TEST == merged["TEST"]["FLIP_TEST"], name
            batch = merged["TRAIN"].get("BATCH_SIZE_PER_GPU", merged["TRAIN"].get("BATCH_SIZE"))
            assert cfg.TRAIN.BATCH_SIZE_PER_GPU == batch, name
            sigma = merged["MODEL"].get("SIGMA", merged["MODEL"]["EXTRA"].get("SIGMA"))
            assert cfg.MODEL.SIGMA == sigma, name
            count += 1
    assert count >= 80
