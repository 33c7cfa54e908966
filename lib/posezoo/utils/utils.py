"""Run plumbing: output folders and logs, optimizer and schedule, atomic
checkpoints, device choice, model summary."""
from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .distributed import is_main_process

logger = logging.getLogger("posezoo")


def output_dirs(cfg, cfg_path: str | None, phase: str) -> tuple[str, str]:
    """``OUTPUT_DIR/<dataset>/<model>/<cfg stem>/`` (created) and the TensorBoard
    folder (``LOG_DIR/<dataset>/<model>/<stem>_<time>`` or ``<output>/tensorboard``)."""
    dataset = cfg.DATASET.DATASET + ("_" + cfg.DATASET.HYBRID_JOINTS_TYPE if cfg.DATASET.HYBRID_JOINTS_TYPE else "")
    dataset = dataset.replace(":", "_").replace("/", "_")
    model = cfg.MODEL.NAME.replace("/", "_")
    stem = os.path.splitext(os.path.basename(cfg_path))[0] if cfg_path else "default"
    final_dir = os.path.join(cfg.OUTPUT_DIR, dataset, model, stem)
    os.makedirs(final_dir, exist_ok=True)
    if cfg.LOG_DIR:
        tb_dir = os.path.join(cfg.LOG_DIR, dataset, model, f"{stem}_{time.strftime('%Y-%m-%d-%H-%M')}")
    else:
        tb_dir = os.path.join(final_dir, "tensorboard", phase)
    return final_dir, tb_dir


def setup_logging(final_dir: str, cfg_path: str | None, phase: str) -> str:
    """Log to the console and to ``<final_dir>/<stem>_<time>_<phase>.log``."""
    stem = os.path.splitext(os.path.basename(cfg_path))[0] if cfg_path else "default"
    log_file = os.path.join(final_dir, f"{stem}_{time.strftime('%Y-%m-%d-%H-%M')}_{phase}.log")
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)-15s %(message)s")
    for handler in (logging.FileHandler(log_file), logging.StreamHandler()):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return log_file


def select_device(cfg) -> torch.device:
    """The first of ``GPUS`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available() and len(cfg.GPUS) > 0:
        return torch.device("cuda", cfg.GPUS[0])
    return torch.device("cpu")


def configure_backends(cfg) -> None:
    """``CUDNN.*`` as in HRNet; ``DETERMINISTIC: true`` also turns on
    torch.use_deterministic_algorithms (warn-only, so an op without a
    deterministic kernel warns instead of stopping the run) and the cuBLAS
    workspace setting it needs, making reruns and resumes bitwise repeatable."""
    torch.backends.cudnn.benchmark = cfg.CUDNN.BENCHMARK
    torch.backends.cudnn.deterministic = cfg.CUDNN.DETERMINISTIC
    torch.backends.cudnn.enabled = cfg.CUDNN.ENABLED
    if cfg.CUDNN.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


AMP_DTYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def amp_dtype(value: Any, key: str = "TRAIN.AMP") -> torch.dtype | None:
    """The autocast dtype a ``TRAIN.AMP`` / ``TEST.AMP`` value asks for: None
    (off) for false/null/''/'off', float16 for 'fp16', bfloat16 for 'bf16'."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in ("", "off", "false", "none")):
        return None
    if isinstance(value, str) and value.lower() in AMP_DTYPES:
        return AMP_DTYPES[value.lower()]
    raise ValueError(f"{key} = {value!r}: expected false, fp16 or bf16")


def to_channels_last(tensor: torch.Tensor, enabled: bool) -> torch.Tensor:
    """NHWC memory layout for a 4-D batch when ``MODEL.CHANNELS_LAST`` is set
    (tensor cores and cuDNN prefer it, especially under AMP); a no-op otherwise.
    A list of batches (one per test scale) is converted batch by batch."""
    if isinstance(tensor, (list, tuple)):
        return [to_channels_last(t, enabled) for t in tensor]
    return tensor.contiguous(memory_format=torch.channels_last) if enabled and tensor.dim() == 4 else tensor


def build_optimizer(cfg, model: nn.Module, extra_parameters: Sequence[nn.Parameter] = ()
                    ) -> torch.optim.Optimizer:
    """Adam or SGD as in the official code (Adam ignores TRAIN.WD there, and so in
    every published number; ``TRAIN.ADAM_WEIGHT_DECAY: true`` applies it), or
    RMSprop with TRAIN.MOMENTUM and TRAIN.WD, the stacked hourglass's optimizer
    (Newell et al. 2016; bearpaw's default, with momentum and weight decay 0).
    `extra_parameters` (a training strategy's own, e.g. a discriminator's) are
    optimised with the model's."""
    name = cfg.TRAIN.OPTIMIZER.lower()
    params = list(model.parameters()) + list(extra_parameters)
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.TRAIN.LR, momentum=cfg.TRAIN.MOMENTUM,
                               weight_decay=cfg.TRAIN.WD, nesterov=cfg.TRAIN.NESTEROV)
    if name == "adam":
        if cfg.TRAIN.WD and not cfg.TRAIN.ADAM_WEIGHT_DECAY:
            logger.info("TRAIN.WD = %g is not applied under Adam, as in the official code "
                        "(set TRAIN.ADAM_WEIGHT_DECAY True to apply it)", cfg.TRAIN.WD)
        wd = cfg.TRAIN.WD if cfg.TRAIN.ADAM_WEIGHT_DECAY else 0.0
        return torch.optim.Adam(params, lr=cfg.TRAIN.LR, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.TRAIN.LR, momentum=cfg.TRAIN.MOMENTUM,
                                   weight_decay=cfg.TRAIN.WD)
    raise ValueError(f"TRAIN.OPTIMIZER = {cfg.TRAIN.OPTIMIZER}: expected 'adam', 'sgd' or 'rmsprop'")


def write_atomic(path: str, write: Callable[[str], Any]) -> None:
    """The one atomic writer: ``write(tmp)`` writes the file at a temporary
    path beside `path`, then one rename puts it in place, so a reader (or a
    crash) never sees half a file in place of the previous good one; the
    temporary file is removed when writing fails."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes_atomic(path: str, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    write_atomic(path, write)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def save_atomic(obj: Any, path: str) -> None:
    """torch.save, atomically (a checkpoint never half-written)."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


class AverageMeter:
    """Running mean of a per-batch value, weighted by each batch's count."""

    def __init__(self) -> None:
        self.val = self.sum = self.avg = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1) -> None:
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / max(self.count, 1)


def to_device(x: Any, device: torch.device) -> Any:
    """A tensor, a dict of tensors (codecs with several targets, e.g. AWR) or a
    list of either (one target per stage), on `device`."""
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_device(v, device) for v in x]
    return x.to(device, non_blocking=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates (MACs, what pose papers call FLOPs) of one forward
    of convolutions, deconvolutions and linear layers, via forward hooks.

    A transposed convolution is counted per input pixel (its true MACs). HRNet's
    ``get_model_summary`` counts it like a convolution over the output grid,
    stride^2 times more, and prints totals divided by 2^30: that is why its table
    lists 8.9 G for pose_resnet_50 at 256x192 where this gives 5.43e9. Networks
    without deconvolutions differ only by the unit: HRNet-W32 gives 7.645e9 MACs
    here, the 7.1 "GFLOPs" (7.645e9 / 2^30) of the paper."""
    macs = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):  # per output value: in/groups x kh x kw
            macs += output[0].numel() * (module.weight.numel() // module.out_channels)
        elif isinstance(module, nn.ConvTranspose2d):  # per input value: out/groups x kh x kw
            macs += inputs[0][0].numel() * (module.weight.numel() // module.in_channels)
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_size, device=device))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return macs


def input_shape(model: nn.Module, cfg) -> tuple[int, int, int]:
    """(C, H, W) of one network input: MODEL.IMAGE_SIZE and the channels of the
    first convolution (3 for RGB models, 1 for depth models such as AWR)."""
    width, height = cfg.MODEL.IMAGE_SIZE
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return (first.in_channels if first is not None else 3, height, width)


def model_summary(model: nn.Module, cfg) -> str:
    width, height = cfg.MODEL.IMAGE_SIZE
    params = count_parameters(model)
    macs = count_flops(model, input_shape(model, cfg))
    return f"{cfg.MODEL.NAME}: {params / 1e6:.2f} M parameters, {macs / 1e9:.2f} GMACs at {width}x{height}"


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (with its ETA) on rank 0 in a terminal only: a log redirected
    to a file or CI keeps the logger's lines without the bar's refreshes."""
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not (is_main_process() and sys.stderr.isatty()), **kwargs)
