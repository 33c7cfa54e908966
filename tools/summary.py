"""Print a model's parameters, MACs and the output shape of each stage.

    python tools/summary.py --cfg experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml [KEY VALUE ...]

One forward of a zero image of MODEL.IMAGE_SIZE, batch 1, in eval mode on the CPU.

Stages are the model's top-level children in the order they run (a child that
runs twice, like HRNet's stem ReLU, gets a row per call; its parameters are
counted on the first); children that are plain ModuleLists (HRNet's
transitions, the hourglass's per-stack heads) are listed element by element.
Shapes are C x H x W; a stage returning one tensor per branch or stack shows a list.
The parameter column adds up to the model's total.

MACs are counted by posezoo.utils.utils.count_flops: one multiply-add = 1 MAC,
over convolutions (output values x in/groups x kh x kw), transposed
convolutions (input values x out/groups x kh x kw, their true cost) and linear
layers; batch norm, activations, pooling, upsampling and additions are not
counted. Pose papers call MACs "FLOPs": HRNet's "GFLOPs" are MACs / 2^30
(HRNet-W32 at 256x192: 7.645e9 MACs = 7.1 "GFLOPs"); both are printed. HRNet's
get_model_summary counts a transposed convolution over its output grid, stride^2
times more, so its figures for the deconv heads (SimpleBaseline, LPN) are higher.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import _setup  # puts lib/ on the path
import torch
from posezoo.config import load_config
from posezoo.models import build_model
from posezoo.utils.utils import count_flops, count_parameters, input_shape
from torch import nn


@dataclass
class Stage:
    name: str
    shape: str
    params: int
    repeat: bool = False  # a second call of a module already listed; its parameters are not re-counted


def _shape(out) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(str(d) for d in out.shape[1:])
    if isinstance(out, (list, tuple)):
        return "[" + ", ".join(_shape(o) for o in out) + "]"
    return type(out).__name__


def stage_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Top-level children by name; the elements of ModuleList/ModuleDict
    children, which are never called themselves, stand in for them."""
    stages = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            stages.extend((f"{name}.{sub}", m) for sub, m in child.named_children())
        else:
            stages.append((name, child))
    return stages


def stage_table(model: nn.Module, input_size: tuple[int, int, int]) -> list[Stage]:
    """One row per stage call, in the order they run, from forward hooks during
    one forward of a zero (1, *input_size) input; then stages that never ran and
    the model's own direct parameters. The params column sums to the total."""
    rows: list[Stage] = []
    seen: set[int] = set()
    stages = stage_modules(model)

    def hook(name: str):
        def record(module: nn.Module, inputs, output) -> None:
            repeat = id(module) in seen
            seen.add(id(module))
            rows.append(Stage(name, _shape(output), 0 if repeat else count_parameters(module), repeat))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in stages]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=next(model.parameters()).device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    for name, m in stages:
        if id(m) not in seen:
            seen.add(id(m))
            rows.append(Stage(name, "(not called)", count_parameters(m)))
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        rows.append(Stage("(own parameters)", "", own))
    return rows


def format_table(rows: list[Stage]) -> str:
    width = max([len("stage")] + [len(r.name) for r in rows])
    shape_width = max([len("output (C x H x W)")] + [len(r.shape) for r in rows])
    lines = [f"{'stage':<{width}}  {'output (C x H x W)':<{shape_width}}  {'params':>12}"]
    for r in rows:
        params = "(again)" if r.repeat else f"{r.params:,}"
        lines.append(f"{r.name:<{width}}  {r.shape:<{shape_width}}  {params:>12}")
    lines.append(f"{'total':<{width}}  {'':<{shape_width}}  {sum(r.params for r in rows):>12,}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "MODEL.IMAGE_SIZE [288,384]")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Print the summary; returns params, MACs and the stage rows."""
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    model = build_model(cfg, is_train=False)
    width, height = cfg.MODEL.IMAGE_SIZE
    rows = stage_table(model, input_shape(model, cfg))
    params = count_parameters(model)
    macs = count_flops(model, input_shape(model, cfg))
    print(f"{cfg.MODEL.NAME} ({type(model).__name__}), input 3x{height}x{width} (C x H x W), batch 1")
    print(format_table(rows))
    print(f"parameters: {params:,} ({params / 1e6:.2f} M)")
    print(f"MACs: {macs:,} = {macs / 1e9:.3f} G = {macs / 2 ** 30:.3f} x 2^30 (the unit of HRNet's \"GFLOPs\")")
    return {"params": params, "macs": macs, "stages": rows}


if __name__ == "__main__":
    _setup.run(main)
