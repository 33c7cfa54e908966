"""HRNet's fusion with one in-place accumulator and the upsampling as a broadcast add
(models/pose_hrnet.py:HighResolutionModule._fuse) gives exactly the official
relu(sum of path outputs) with the materialised nearest upsampling, in eval and
in training (outputs and gradients), NCHW and channels_last, plain and UDP; the
official checkpoint layouts still load strictly."""
import json
import os

import pytest
import torch
from torch import nn

from conftest import SPECS, assert_loads_spec_strictly, deterministic_state, needs_shared
from models.test_pose_hrnet import TINY, hrnet_cfg
from posezoo.models import build_model
from posezoo.models.pose_hrnet import HighResolutionModule


def reference_fusion(module: HighResolutionModule, x: list) -> list:
    """The official fusion, written out: every path as its nn.Sequential (the
    nn.Upsample included), summed out of place in source order, then ReLU."""
    x = [branch(xi) for branch, xi in zip(module.branches, x)]
    fused = []
    for paths in module.fuse_layers:
        y = paths[0](x[0])
        for path, xj in zip(paths[1:], x[1:]):
            y = y + path(xj)
        fused.append(torch.relu(y))
    return fused


def close(got, expected, rel=1e-5):
    return (got - expected).abs().max().item() <= rel * max(1.0, expected.abs().max().item())


def fusion_modules(model):
    return [m for m in model.modules() if isinstance(m, HighResolutionModule) and m.fuse_layers is not None]


def module_inputs(module, batch, size, channels_last, seed):
    """One input per branch: the module's branch widths, each branch half the last's side."""
    g = torch.Generator().manual_seed(seed)
    widths = [branch[0].conv1.in_channels for branch in module.branches]
    xs = [torch.randn(batch, c, size[0] >> i, size[1] >> i, generator=g) for i, c in enumerate(widths)]
    return [x.contiguous(memory_format=torch.channels_last) if channels_last else x for x in xs]


@pytest.mark.parametrize("target_type", ["gaussian", "offset"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fusion_equals_the_official_sum_in_eval(target_type, channels_last):
    model = build_model(hrnet_cfg(TINY, 17, target_type)).eval()
    model.load_state_dict(deterministic_state(model, seed=2))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    modules = fusion_modules(model)
    assert len(modules) == 4  # stage2, stage3, two of stage4 (the last: one output, UDP-widened for offset)
    for index, module in enumerate(modules):
        xs = module_inputs(module, 2, (32, 24), channels_last, seed=index)
        with torch.no_grad():
            got, expected = module(list(xs)), reference_fusion(module, xs)
        assert len(got) == len(expected) == len(module.out_channels)
        for g, e in zip(got, expected):
            assert torch.equal(g, e)  # same terms, same order: the same float sums
        if channels_last:
            assert all(g.is_contiguous(memory_format=torch.channels_last) for g in got)


def test_fusion_inputs_are_not_written():
    """Branch outputs feed several targets: the accumulator must never be one of them."""
    model = build_model(hrnet_cfg(TINY)).eval()
    model.load_state_dict(deterministic_state(model, seed=4))
    module = fusion_modules(model)[1]  # stage3: 3 branches, 3 targets
    xs = module_inputs(module, 1, (16, 16), False, seed=5)
    module.branches = nn.ModuleList(nn.Sequential() for _ in module.branches)  # the fusion reads its inputs
    copies = [x.clone() for x in xs]
    with torch.no_grad():
        module(xs)
    assert all(torch.equal(x, c) for x, c in zip(xs, copies))


@pytest.mark.parametrize("target_type", ["gaussian", "offset"])
def test_training_outputs_and_gradients_equal_the_official_sum(target_type):
    model = build_model(hrnet_cfg(TINY, 17, target_type)).train()
    model.load_state_dict(deterministic_state(model, seed=3))
    module = fusion_modules(model)[-1]  # stage4's last: several targets in, UDP's widened identity
    xs = module_inputs(module, 2, (16, 16), False, seed=7)
    weights = [torch.randn(2, c, 16 >> i, 16 >> i, generator=torch.Generator().manual_seed(i))
               for i, c in enumerate(module.out_channels)]
    results = []
    for forward in (module, lambda inputs: reference_fusion(module, inputs)):
        inputs = [x.clone().requires_grad_(True) for x in xs]
        module.zero_grad()
        loss = sum((out * w).sum() for out, w in zip(forward(inputs), weights))
        loss.backward()
        results.append((loss.detach(), [x.grad for x in inputs],
                        {name: p.grad.clone() for name, p in module.named_parameters()}))
    (loss, input_grads, grads), (ref_loss, ref_input_grads, ref_grads) = results
    assert torch.equal(loss, ref_loss)
    # the broadcast's backward sums each s x s block in another order than upsample_nearest2d's
    assert all(close(g, r) for g, r in zip(input_grads, ref_input_grads))
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    assert all(close(grads[k], ref_grads[k]) for k in grads)


def test_whole_training_step_runs():
    model = build_model(hrnet_cfg(TINY), is_train=True).train()
    out = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    out.square().mean().backward()  # in-place sums and ReLUs: autograd keeps what backward reads
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@needs_shared
@pytest.mark.parametrize("name", ["coco_pose_hrnet_w32_256x192", "udp_master_pose_hrnet_w32_256x192_offset"])
def test_official_layouts_load_strictly_and_run(name):
    with open(os.path.join(SPECS, "checkpoints", f"{name}.json")) as f:
        spec = json.load(f)
    c = spec["config"]
    with torch.device("meta"):
        model = build_model(hrnet_cfg(c["EXTRA"], c["NUM_JOINTS"], c["TARGET_TYPE"]))
    model = model.to_empty(device="cpu")
    assert_loads_spec_strictly(model, spec)
    model.load_state_dict(deterministic_state(model, seed=0))
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 32, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, model.final_layer.out_channels, 16, 8) and torch.isfinite(out).all()
