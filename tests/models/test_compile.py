"""TEST.COMPILE (utils/compile.py): prepare_eval_model wraps the test-time model in
a frozen torch.compile; on a tiny HRNet its float32 output equals the plain
model's to 1e-5, the weights are frozen into the compiled graph (a snapshot),
the freezing flag does not leak out of the call, and the caller's model is untouched."""
import torch
from torch._inductor import config as inductor_config

from conftest import deterministic_state
from models.test_pose_hrnet import TINY, hrnet_cfg, stage
from posezoo.config import load_config
from posezoo.models import build_model
from posezoo.utils.compile import FrozenCompiled
from posezoo.utils.fold_bn import prepare_eval_model

SMALL = ["MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.HEATMAP_SIZE", "[8, 8]"]
# the smallest full HRNet layout (one module of one block per stage): a compile of seconds
MICRO = {"PRETRAINED_LAYERS": ["*"], "FINAL_CONV_KERNEL": 1, "STAGE2": stage([4, 8], blocks=1),
         "STAGE3": stage([4, 8, 16], blocks=1), "STAGE4": stage([4, 8, 16, 32], blocks=1)}


def test_the_option_is_off_by_default_and_wraps_only_when_set():
    assert load_config(None).TEST.COMPILE is False
    plain = build_model(hrnet_cfg(TINY, 17, "gaussian", "", *SMALL))
    assert not isinstance(prepare_eval_model(hrnet_cfg(TINY, 17, "gaussian", "", *SMALL), plain, "cpu"),
                          FrozenCompiled)
    cfg = hrnet_cfg(TINY, 17, "gaussian", "", *SMALL, "TEST.COMPILE", "True", "MODEL.FOLD_BN", "True")
    wrapped = prepare_eval_model(cfg, plain, "cpu")  # compiles lazily: nothing is compiled here
    assert isinstance(wrapped, FrozenCompiled) and not wrapped.training and wrapped.module is not plain
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) > 10  # the caller's keeps its BNs


def test_compiled_tiny_hrnet_equals_the_plain_model_and_is_frozen():
    cfg = hrnet_cfg(MICRO, 17, "gaussian", "", *SMALL, "TEST.COMPILE", "True", "MODEL.CHANNELS_LAST", "True",
                    "MODEL.FOLD_BN", "True")
    model = build_model(cfg).eval()
    model.load_state_dict(deterministic_state(model, seed=0))
    net = prepare_eval_model(cfg, model, "cpu")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = model(x)
        got = net(x.contiguous(memory_format=torch.channels_last))
        assert not inductor_config.freezing  # set around the call only
        scale = max(1.0, expected.abs().max().item())
        assert got.shape == expected.shape and (got - expected).abs().max().item() <= 1e-5 * scale
        net.module.final_layer.weight.mul_(2)  # frozen: the compiled graph holds the weights it saw
        assert torch.equal(net(x.contiguous(memory_format=torch.channels_last)), got)
