"""``TEST.COMPILE``: the test-time model through ``torch.compile`` (inductor) with
weight freezing.

With ``torch._inductor.config.freezing`` the parameters become constants of the
compiled graph, so inductor folds what is left of the BatchNorms, prepacks every
convolution weight into oneDNN's blocked layout once (eager mode reorders it on
every call) and fuses the residual add and the ReLU after a convolution into
that convolution (``mkldnn._convolution_pointwise``). Dynamo reads the freezing
flag while it traces and inductor while it compiles, and either can happen on
any call that meets a new input shape, so the flag is set around every call
rather than for the whole process. Frozen weights are a snapshot: this is for a
model whose weights no longer change (tools/test.py, ``PoseEstimator``, the
benchmark), never for the validation inside training. Freezing applies under
``torch.no_grad``/``torch.inference_mode`` (posezoo's test path); one compile per
input shape (``dynamic=False``: TEST.FORWARD_CHUNK keeps the shapes few), which
takes tens of seconds on a CPU (docs/speed.md)."""
from __future__ import annotations

import torch
from torch import nn


class FrozenCompiled(nn.Module):
    """`model` (registered as ``module``, so the train/eval switch and ``.to`` reach it) whose
    forward runs compiled by inductor with freezing."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.module = model
        self._compiled = torch.compile(model.forward, dynamic=False)

    def forward(self, *args, **kwargs):
        from torch._inductor import config  # imported with torch.compile's first use anyway

        with config.patch(freezing=True):
            return self._compiled(*args, **kwargs)
