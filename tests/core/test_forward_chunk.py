"""TEST.FORWARD_CHUNK: the test-time forward in chunks of crops gives the one-call
result (flip test included), and says clearly when it cannot."""
import pytest
import torch
from torch import nn

from conftest import TINY_MODEL, deterministic_state
from posezoo.codecs import build_codec
from posezoo.config import load_config, update_config
from posezoo.core.inference import forward_test, inference_forward
from posezoo.datasets.coco import COCO_FLIP_PAIRS
from posezoo.models import build_model


def test_chunks_match_one_batch():
    cfg = load_config(None, TINY_MODEL)
    model = build_model(cfg, is_train=False)
    model.load_state_dict(deterministic_state(model, seed=2))
    model.eval()
    codec = build_codec(cfg)
    x = torch.randn(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    calls = []
    model.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    with torch.inference_mode():
        whole = forward_test(inference_forward(model, cfg), x, codec, COCO_FLIP_PAIRS, True)
        chunked = forward_test(inference_forward(model, update_config(cfg, ["TEST.FORWARD_CHUNK", 4])), x, codec,
                               COCO_FLIP_PAIRS, True)
    assert calls == [10, 4, 4, 2]  # image + mirror: one call of 10 crops, then chunks of 4
    assert chunked.shape == whole.shape == (5, 17, 16, 16)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_off_by_default_and_bad_values():
    cfg = load_config(None, TINY_MODEL)
    model = nn.Identity()
    assert inference_forward(model, cfg) is model
    with pytest.raises(ValueError, match="TEST.FORWARD_CHUNK = -1"):
        inference_forward(model, update_config(cfg, ["TEST.FORWARD_CHUNK", -1]))


def test_output_that_is_not_a_tensor_is_one_clear_error():
    cfg = update_config(load_config(None, TINY_MODEL), ["TEST.FORWARD_CHUNK", 2])
    forward = inference_forward(lambda x: {"heatmaps": x}, cfg)
    with pytest.raises(ValueError, match="output is a dict.*TEST.FORWARD_CHUNK 0"):
        forward(torch.zeros(3, 1))
