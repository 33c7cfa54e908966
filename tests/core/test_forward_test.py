"""The test-time forward: the image and its mirror in one batch give the two separate
forwards' flip-test average (float32, eval-mode BN), channels_last gives the same maps, and
predict runs under torch.inference_mode (no autograd record)."""
import copy

import numpy as np
import torch
from torch.utils.data import DataLoader

from conftest import deterministic_state
from posezoo.codecs import build_codec
from posezoo.config import update_config
from posezoo.core.inference import forward_test, predict
from posezoo.datasets import build_dataset
from posezoo.models import build_model

PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]


def _model(cfg):
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, seed=2))
    return model.eval()


def test_flip_in_one_batch_equals_two_forwards(synthetic_cfg):
    model, codec = _model(synthetic_cfg), build_codec(synthetic_cfg)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        one_batch = forward_test(model, x, codec, PAIRS, flip=True)
        plain, mirrored = model(x), model(x.flip(3))
    expected = (plain + codec.flip_back(mirrored, PAIRS)) * 0.5
    assert one_batch.shape == (3, 17, 16, 16) and not one_batch.requires_grad
    # the mirror differs from the plain forward, so the average is not a copy of either half
    assert (mirrored - plain).abs().max() > 1e-3  # 100x the tolerance below
    torch.testing.assert_close(one_batch, expected, rtol=0, atol=1e-5)
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        fast = forward_test(nhwc, x.contiguous(memory_format=torch.channels_last), codec, PAIRS, flip=True)
    torch.testing.assert_close(fast, expected, rtol=0, atol=1e-5)


def test_predict_records_no_autograd_and_keeps_float32(synthetic_cfg, monkeypatch):
    cfg = update_config(synthetic_cfg, ["TEST.FLIP_TEST", "True"])
    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    seen = []
    model = _model(cfg)
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda x: seen.append((torch.is_inference_mode_enabled(), x.shape[0],
                                                                 x.dtype)) or original(x))
    out = predict(cfg, DataLoader(dataset, batch_size=4), model, codec, dataset.flip_pairs, torch.device("cpu"))
    assert seen and all(mode and dtype == torch.float32 for mode, _, dtype in seen)
    # one forward per batch holding the crops and their mirrors
    assert [n for _, n, _ in seen] == [2 * min(4, len(dataset) - 4 * i) for i in range(len(seen))]
    assert out["preds"].shape == (len(dataset), 17, 3) and np.isfinite(out["preds"]).all()
