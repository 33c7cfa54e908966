"""Mixed precision (TRAIN.AMP / TEST.AMP), channels_last and the CUDNN.*
switches: off, the training step is exactly the plain float32 step; bf16 and
fp16 run on the CPU with float32 losses and decoding."""
import copy

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from posezoo.codecs import build_codec
from posezoo.config import ConfigError, load_config, update_config
from posezoo.core.function import TrainContext, train_one_epoch
from posezoo.core.inference import amp_forward, predict
from posezoo.core.loss import build_loss
from posezoo.datasets import build_dataset
from posezoo.models import build_model
from posezoo.utils.utils import amp_dtype, build_optimizer, configure_backends

CPU = torch.device("cpu")


class Scalars:
    """A stand-in SummaryWriter that keeps the scalars."""

    def __init__(self):
        self.values = {}

    def add_scalar(self, name, value, step):
        self.values.setdefault(name, []).append(value)

    def add_image(self, *args, **kwargs):
        pass


@pytest.fixture
def small(synthetic_cfg):
    """32x32 crops, two fixed training batches of 4, a model and its loss."""
    cfg = update_config(synthetic_cfg, ["MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]",
                                        "TRAIN.LR", "0.01"])
    torch.manual_seed(0)
    codec = build_codec(cfg)
    batches = list(DataLoader(build_dataset(cfg, "train2017", True, codec), batch_size=4, shuffle=False))[:2]
    return cfg, batches, build_model(cfg, is_train=True), build_loss(cfg)


def run_epoch(cfg, batches, model, criterion, tmp_path, **kwargs) -> Scalars:
    writer = Scalars()
    ctx = TrainContext(cfg, model, build_codec(cfg), criterion, build_optimizer(cfg, model), device=CPU,
                       output_dir=str(tmp_path), writer=writer, **kwargs)
    train_one_epoch(ctx, batches, 0)
    return writer


def test_amp_off_step_is_the_plain_float32_step(small, tmp_path):
    """Bit for bit the textbook step (forward, loss, backward, optimizer step);
    the code before AMP existed gave the same weights (checked when it was added)."""
    cfg, batches, model, criterion = small
    reference = copy.deepcopy(model)
    run_epoch(update_config(cfg, ["TRAIN.AMP", "false"]), batches, model, criterion, tmp_path)

    optimizer = build_optimizer(cfg, reference)
    reference.train()
    for inputs, target, target_weight, _ in batches:
        loss = criterion(reference(inputs), target, target_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    got, want = model.state_dict(), reference.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_bf16_training_runs_on_cpu_with_a_float32_loss(small, tmp_path):
    cfg, batches, model, criterion = small
    before = copy.deepcopy(model.state_dict())
    seen = {}
    model.conv1.register_forward_hook(lambda m, i, o: seen.update(conv=o.dtype))
    criterion.register_forward_pre_hook(lambda m, args: seen.update(loss_input=args[0].dtype))
    writer = run_epoch(update_config(cfg, ["TRAIN.AMP", "bf16"]), batches, model, criterion, tmp_path)

    assert seen == {"conv": torch.bfloat16, "loss_input": torch.float32}
    losses = writer.values["train_loss"]
    assert len(losses) == 2 and np.isfinite(losses).all() and losses[0] > 0
    after = model.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # weights stay float32
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert "final_layer.weight" in changed and "conv1.weight" in changed


def test_fp16_steps_through_the_grad_scaler(small, tmp_path):
    """An overflowing scale makes the scaler skip the update and halve the scale;
    a sane one trains."""
    cfg, batches, model, criterion = small
    cfg = update_config(cfg, ["TRAIN.AMP", "fp16"])
    before = copy.deepcopy(model.state_dict())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 100)
    run_epoch(cfg, batches[:1], model, criterion, tmp_path, scaler=scaler)
    assert scaler.get_scale() == 2.0 ** 99
    assert all(torch.equal(before[k], v) for k, v in model.named_parameters())

    scaler = torch.amp.GradScaler("cpu")
    writer = run_epoch(cfg, batches, model, criterion, tmp_path, scaler=scaler)
    assert np.isfinite(writer.values["train_loss"]).all()
    assert scaler.get_scale() == 2.0 ** 16 and scaler.state_dict()["_growth_tracker"] == 2  # two clean steps
    assert not torch.equal(before["final_layer.weight"], model.final_layer.weight)


def test_test_amp_decodes_float32_outputs(small):
    cfg, _, model, _ = small
    model.eval()
    inputs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        plain, mixed = model(inputs), amp_forward(model, torch.bfloat16)(inputs)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, plain, atol=0.02 * plain.abs().max().item())
    assert amp_forward(model, None) is model  # off: the model itself, nothing in between

    codec = build_codec(cfg)
    dataset = build_dataset(cfg, "val2017", False, codec)
    decoded = []
    decode = codec.decode
    codec.decode = lambda output, *args: decoded.append(output.dtype) or decode(output, *args)
    loader = DataLoader(dataset, batch_size=16)
    out = predict(update_config(cfg, ["TEST.AMP", "bf16"]), loader, model, codec, dataset.flip_pairs, CPU)
    assert decoded == [torch.float32] and out["preds"].dtype == np.float64 and np.isfinite(out["preds"]).all()


def test_channels_last_feeds_nhwc_and_computes_the_same_loss(small, tmp_path):
    cfg, batches, model, criterion = small
    nhwc = copy.deepcopy(model).to(memory_format=torch.channels_last)
    seen = []
    nhwc.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(
        memory_format=torch.channels_last)))
    plain = run_epoch(cfg, batches[:1], model, criterion, tmp_path)
    fast = run_epoch(update_config(cfg, ["MODEL.CHANNELS_LAST", "True"]), batches[:1], nhwc, criterion, tmp_path)
    assert seen == [True]
    assert fast.values["train_loss"][0] == pytest.approx(plain.values["train_loss"][0], rel=1e-5)


def test_amp_values():
    assert amp_dtype(None) is None and amp_dtype(False) is None and amp_dtype("") is None
    assert amp_dtype("fp16") == torch.float16 and amp_dtype("BF16") == torch.bfloat16
    with pytest.raises(ValueError, match=r"^TEST.AMP = 'fp32': expected false, fp16 or bf16$"):
        amp_dtype("fp32", "TEST.AMP")
    cfg = load_config(None, ["TRAIN.AMP", "bf16", "TEST.AMP", "false"])
    assert (cfg.TRAIN.AMP, cfg.TEST.AMP) == ("bf16", False)
    with pytest.raises(ConfigError, match="unknown config key TRAIN.AMPP"):
        load_config(None, ["TRAIN.AMPP", "bf16"])


def test_cudnn_switches_reach_the_backends():
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        configure_backends(load_config(None, ["CUDNN.BENCHMARK", "True", "CUDNN.DETERMINISTIC", "False"]))
        assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic
        configure_backends(load_config(None, ["CUDNN.BENCHMARK", "False", "CUDNN.DETERMINISTIC", "True"]))
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
