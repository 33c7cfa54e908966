"""The reconstruction component's MLP (Pavlakos et al. CVPR 2018, Martinez
et al. ICCV 2017): its parameter layout and shapes, and its residual blocks."""
import pytest
import torch

from conftest import lifting_cfg
from posezoo.config import ConfigError
from posezoo.models import build_model

K = 17


def test_model_layout_is_the_martinez_port_and_shapes():
    model = build_model(lifting_cfg(["MODEL.EXTRA", "{LINEAR_SIZE: 48, NUM_BLOCKS: 2}"]))
    size, n_in = 48, 3 * K
    expected = {"w1.weight": (size, n_in), "w1.bias": (size,), "w2.weight": (n_in, size), "w2.bias": (n_in,)}
    bn = {"weight": (size,), "bias": (size,), "running_mean": (size,), "running_var": (size,),
          "num_batches_tracked": ()}
    expected.update({f"batch_norm1.{k}": v for k, v in bn.items()})
    for i in range(2):
        for j in (1, 2):
            expected.update({f"linear_stages.{i}.w{j}.weight": (size, size), f"linear_stages.{i}.w{j}.bias": (size,)})
            expected.update({f"linear_stages.{i}.batch_norm{j}.{k}": v for k, v in bn.items()})
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    model.load_state_dict({k: torch.zeros(v) for k, v in expected.items()}, strict=True)
    assert sum(p.numel() for p in model.parameters()) == (n_in * size + size) + (size * n_in + n_in) \
        + 4 * (size * size + size) + 5 * 2 * size  # 2 outer + 4 block linears, 5 BNs
    assert model(torch.zeros(3, n_in)).shape == (3, n_in)
    with pytest.raises(ValueError, match=r"expected \(N, 51\)"):
        model(torch.zeros(3, 34))
    with pytest.raises(ConfigError, match="DROPOUT"):
        build_model(lifting_cfg(["MODEL.EXTRA", "{DROPOUT: 1.5}"]))


def test_residual_block_is_identity_plus_its_two_layers():
    model = build_model(lifting_cfg(["MODEL.EXTRA", "{LINEAR_SIZE: 8, NUM_BLOCKS: 1, DROPOUT: 0.0}"])).eval()
    block, x = model.linear_stages[0], torch.randn(5, 8)
    y = torch.relu(block.batch_norm1(block.w1(x)))
    y = torch.relu(block.batch_norm2(block.w2(y)))
    torch.testing.assert_close(block(x), x + y)


def test_summary_counts_the_linear_macs_of_a_vector_input():
    from posezoo.utils.utils import count_flops, input_shape, model_summary

    cfg = lifting_cfg(["MODEL.EXTRA", "{LINEAR_SIZE: 64, NUM_BLOCKS: 2}"])
    model = build_model(cfg)
    assert input_shape(model, cfg) == (3 * K,)
    assert count_flops(model, (3 * K,)) == 2 * 3 * K * 64 + 4 * 64 * 64
    assert model_summary(model, cfg).endswith("MMACs per input of 51")
