"""DATASET.UINT8_INPUTS: samples carry the uint8 crop, and the loops' InputNormaliser turns a batch of
them into the very float32 inputs the dataset makes by default."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from posezoo.codecs import build_codec
from posezoo.config import update_config
from posezoo.core.function import TrainContext, _prepare
from posezoo.core.inference import predict
from posezoo.datasets import build_dataset
from posezoo.models import build_model
from posezoo.utils.collate import packed_collate
from posezoo.utils.normalise import MEAN, STD, InputNormaliser, input_normaliser, to_input_tensor, uint8_input_tensor


@pytest.mark.parametrize("mean,std", [(MEAN, STD), (np.array([0.5, 0.1, 0.9], np.float32),
                                                    np.array([0.3, 0.7, 0.05], np.float32))])
def test_every_level_normalises_as_the_dataset_does(mean, std):
    levels = np.broadcast_to(np.arange(256, dtype=np.uint8).reshape(16, 16, 1), (16, 16, 3)).copy()
    expected = to_input_tensor(levels, mean, std)[None]
    batch = torch.from_numpy(levels.transpose(2, 0, 1).copy())[None].repeat(2, 1, 1, 1)
    normalise = InputNormaliser(mean, std)
    for got in (normalise(batch), normalise.arithmetic(batch)):  # the CPU lookup and the accelerator formula
        assert got.dtype == torch.float32 and got.shape == (2, 3, 16, 16)
        assert torch.equal(got, expected.expand(2, -1, -1, -1))
    floats = expected.clone()
    assert normalise(floats) is floats


def _pair(cfg, image_set, is_train):
    codec = build_codec(cfg)
    return (build_dataset(cfg, image_set, is_train, codec),
            build_dataset(update_config(cfg, ["DATASET.UINT8_INPUTS", True]), image_set, is_train, codec))


@pytest.mark.parametrize("is_train", [False, True])
def test_normalised_batches_equal_the_float_loader(synthetic_cfg, is_train):
    cfg = update_config(synthetic_cfg, ["DATASET.COLOR_JITTER", "0.3"])  # training: appearance jitter too
    image_set = cfg.DATASET.TRAIN_SET if is_train else cfg.DATASET.TEST_SET
    floats, uint8 = _pair(cfg, image_set, is_train)
    normalise = input_normaliser(update_config(cfg, ["DATASET.UINT8_INPUTS", True]))
    batches = []
    for dataset in (floats, uint8):
        torch.manual_seed(5)  # the same augmentation draws on both sides
        batches.append(next(iter(DataLoader(dataset, batch_size=6, num_workers=2, collate_fn=packed_collate,
                                            shuffle=is_train))))
    (a, ta, wa, ma), (b, tb, wb, mb) = batches
    assert b.dtype == torch.uint8 and b.shape == a.shape
    assert torch.equal(normalise(b), a)
    assert torch.equal(ta, tb) and torch.equal(wa, wb) and torch.equal(ma["joints"], mb["joints"])


def test_train_step_and_predict_see_the_float_inputs(synthetic_cfg):
    on = update_config(synthetic_cfg, ["DATASET.UINT8_INPUTS", True])
    floats, uint8 = _pair(synthetic_cfg, synthetic_cfg.DATASET.TEST_SET, False)
    model = build_model(synthetic_cfg, is_train=False).eval()
    codec = build_codec(synthetic_cfg)
    item = [next(iter(DataLoader(d, batch_size=4))) for d in (floats, uint8)]
    prepared = [_prepare(TrainContext(cfg, model, codec, None, device=torch.device("cpu")), x)
                for cfg, x in ((synthetic_cfg, item[0]), (on, item[1]))]
    assert torch.equal(prepared[0]["inputs"], prepared[1]["inputs"])
    outs = [predict(cfg, DataLoader(d, batch_size=4), model, codec, d.flip_pairs, torch.device("cpu"))
            for cfg, d in ((synthetic_cfg, floats), (on, uint8))]
    np.testing.assert_array_equal(outs[0]["preds"], outs[1]["preds"])


def test_pipelines_without_uint8_crops_refuse_it(synthetic_cfg, synthetic_nyu_root):
    on = update_config(synthetic_cfg, ["DATASET.UINT8_INPUTS", True, "TEST.HEATMAP_DECODE", "princeton"])
    with pytest.raises(ValueError, match="UINT8_INPUTS True: the codec .* cuts its own float crop"):
        build_dataset(on, on.DATASET.TEST_SET, False, build_codec(on))
    from posezoo.config import load_config
    nyu = load_config(None, ["DATASET.DATASET", "nyu", "DATASET.ROOT", synthetic_nyu_root, "MODEL.NUM_JOINTS", "14",
                             "DATASET.TEST_SET", "test", "DATASET.UINT8_INPUTS", "True"])
    with pytest.raises(ValueError, match="dataset nyu makes its inputs itself"):
        build_dataset(nyu, "test", False, build_codec(nyu))


def test_uint8_crop_is_the_planes_of_any_view():
    crop = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    for view in (crop, crop[:, ::-1], crop[1:, 2:]):
        got = uint8_input_tensor(view)
        assert got.dtype == torch.uint8 and got.is_contiguous()
        np.testing.assert_array_equal(got.numpy(), view.transpose(2, 0, 1))
    with pytest.raises(ValueError, match="needs uint8 crops"):
        uint8_input_tensor(crop.astype(np.float32))
