"""Run plumbing: output folders and logs, optimizer and schedule, atomic
checkpoints, device choice, model summary."""
from __future__ import annotations

import errno
import glob
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from .distributed import broadcast_object, is_main_process

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

logger = logging.getLogger("posezoo")


class OutputDirError(OSError):
    """OUTPUT_DIR cannot be written, or another run is writing the same folder."""


def output_dirs(cfg, cfg_path: str | None, phase: str) -> tuple[str, str]:
    """``OUTPUT_DIR/<dataset>/<model>/<cfg stem>/`` (created) and the TensorBoard
    folder (``LOG_DIR/<dataset>/<model>/<stem>_<time>`` or ``<output>/tensorboard``)."""
    dataset = cfg.DATASET.DATASET + ("_" + cfg.DATASET.HYBRID_JOINTS_TYPE if cfg.DATASET.HYBRID_JOINTS_TYPE else "")
    dataset = dataset.replace(":", "_").replace("/", "_")
    model = cfg.MODEL.NAME.replace("/", "_")
    stem = os.path.splitext(os.path.basename(cfg_path))[0] if cfg_path else "default"
    final_dir = os.path.join(cfg.OUTPUT_DIR, dataset, model, stem)
    try:
        os.makedirs(final_dir, exist_ok=True)
    except OSError as err:
        raise OutputDirError(f"OUTPUT_DIR {cfg.OUTPUT_DIR}: cannot create {final_dir} ({err.strerror or err}); "
                             f"set OUTPUT_DIR to a writable folder") from None
    if not os.access(final_dir, os.W_OK | os.X_OK):
        raise OutputDirError(f"OUTPUT_DIR {cfg.OUTPUT_DIR}: {final_dir} is not writable; "
                             f"set OUTPUT_DIR to a writable folder")
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
    optimised with the model's. ``TRAIN.WD_WEIGHTS_ONLY`` decays only convolution and
    linear weights (tensors of 2+ dimensions), not BatchNorm parameters or biases, as
    TensorFlow's per-layer ``weights_regularizer`` does (tf-cpn ``network.py``)."""
    name = cfg.TRAIN.OPTIMIZER.lower()
    params = list(model.parameters()) + list(extra_parameters)
    if cfg.TRAIN.WD_WEIGHTS_ONLY:
        params = [{"params": [p for p in params if p.dim() > 1]},
                  {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
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


TMP_INFIX = ".tmp."  # write_atomic's temporaries: <path>.tmp.<pid>

#: Free bytes under which a failed write is reported as a full disk: torch.save
#: on a full file system raises "[enforce fail at inline_container.cc:672] .
#: unexpected pos 576 vs 534", which does not say so.
FULL_DISK_BYTES = 1 << 20


def _write_error(path: str, err: BaseException) -> OSError | None:
    """A one-line OSError for a failed write of `path` (full disk, read-only or
    missing folder, ...), measured while the partial file still holds its
    space; None when the failure is not about the file system."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        stat = os.statvfs(folder)
        free = stat.f_bavail * stat.f_frsize
    except (OSError, AttributeError):
        free = None
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC or (free is not None and free < FULL_DISK_BYTES):
        return OSError(errno.ENOSPC, f"cannot write {path}: No space left on device (free some space in "
                                     f"{folder} and rerun; the file there before, if any, is unchanged)")
    if isinstance(err, OSError):
        return OSError(code, f"cannot write {path}: {err.strerror or err} (the file there before, if any, "
                             f"is unchanged)")
    return None


def write_atomic(path: str, write: Callable[[str], Any], before_replace: Callable[[], Any] | None = None) -> None:
    """The one atomic writer: ``write(tmp)`` writes the file at a temporary
    path beside `path`, then one rename puts it in place, so a reader (or a
    crash, even SIGKILL) never sees half a file in place of the previous good
    one; the temporary file is removed when writing fails, and a file-system
    failure (full disk, read-only folder) becomes one OSError line naming
    `path`. ``before_replace`` runs between the complete write and the rename
    (train.py rotates checkpoint.pth to checkpoint_prev.pth there)."""
    tmp = f"{path}{TMP_INFIX}{os.getpid()}"
    try:
        write(tmp)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException as err:
        reworded = _write_error(path, err) if isinstance(err, (OSError, RuntimeError)) else None
        if os.path.exists(tmp):
            os.remove(tmp)
        if reworded is not None:
            raise reworded from err
        raise


def remove_partial_files(folder: str) -> list[str]:
    """Delete the temporaries a killed writer left in `folder` (write_atomic
    cannot clean up after SIGKILL); call only while holding the folder's
    run_lock, so that no live writer owns them. Returns the removed paths."""
    removed = sorted(glob.glob(os.path.join(glob.escape(folder), f"*{TMP_INFIX}*")))
    for path in removed:
        os.remove(path)
    if removed:
        logger.warning("removed %d partial file(s) left by an interrupted run in %s: %s", len(removed), folder,
                       ", ".join(os.path.basename(p) for p in removed))
    return removed


LOCK_FILE = ".posezoo.lock"


@contextmanager
def run_lock(folder: str, phase: str) -> Iterator[str]:
    """Hold ``<folder>/.posezoo.lock`` (an flock: released by the kernel when the
    process ends, even by SIGKILL, so it never goes stale) for the duration; a
    second run on the same folder gets OutputDirError naming the holder instead
    of overwriting its checkpoints and results. Under torchrun only rank 0
    locks, and every rank learns whether it got the lock. No-op without fcntl."""
    if fcntl is None:
        yield ""
        return
    path, handle, problem = os.path.join(folder, LOCK_FILE), None, None
    if is_main_process():
        handle = open(path, "a+")  # noqa: SIM115 (closed below)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            handle = None
            problem = (f"OUTPUT_DIR: {folder} is in use by another run ({holder}); wait for it to finish or set "
                       f"another OUTPUT_DIR")
        else:
            handle.seek(0)
            handle.truncate()
            since = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"{phase} pid {os.getpid()} on {socket.gethostname()} since {since}")
            handle.flush()
    problem = broadcast_object(problem)
    if problem:
        raise OutputDirError(problem)
    try:
        yield path
    finally:
        if handle is not None:
            handle.close()


def write_bytes_atomic(path: str, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    write_atomic(path, write)


def write_text_atomic(path: str, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def save_atomic(obj: Any, path: str, before_replace: Callable[[], Any] | None = None) -> None:
    """torch.save, atomically (a checkpoint never half-written)."""
    write_atomic(path, lambda tmp: torch.save(obj, tmp), before_replace)


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


def input_shape(model: nn.Module, cfg) -> tuple[int, ...]:
    """(C, H, W) of one network input: MODEL.IMAGE_SIZE and the channels of the
    first convolution (3 for RGB models, 1 for depth models such as AWR); a
    model that declares ``input_shape`` (the lifting MLP's (51,)) gives its own."""
    if getattr(model, "input_shape", None):
        return tuple(model.input_shape)
    width, height = cfg.MODEL.IMAGE_SIZE
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return (first.in_channels if first is not None else 3, height, width)


def model_summary(model: nn.Module, cfg) -> str:
    width, height = cfg.MODEL.IMAGE_SIZE
    params = count_parameters(model)
    shape = input_shape(model, cfg)
    macs = count_flops(model, shape)
    if len(shape) != 3:  # a vector input (the lifting MLP): far below a GMAC
        return f"{cfg.MODEL.NAME}: {params / 1e6:.2f} M parameters, {macs / 1e6:.2f} MMACs per input of {shape[0]}"
    return f"{cfg.MODEL.NAME}: {params / 1e6:.2f} M parameters, {macs / 1e9:.2f} GMACs at {width}x{height}"


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A tqdm bar (with its ETA) on rank 0 in a terminal only: a log redirected
    to a file or CI keeps the logger's lines without the bar's refreshes."""
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not (is_main_process() and sys.stderr.isatty()), **kwargs)
