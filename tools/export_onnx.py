"""Export a 2D model to ONNX, with a dynamic batch axis.

    python tools/export_onnx.py --cfg X.yaml --weights m.pth --output m.onnx
    python tools/export_onnx.py --cfg X.yaml --with-decode            # + decoding in the same graph

Weights: --weights, else TEST.MODEL_FILE, else this experiment's final_state.pth
when it exists, else random initialisation (with a warning). They load strictly.

The graph is one forward pass without flip test, in eval mode:
  images (N, 3, H, W) float32 -> heatmaps (N, C, h, w) float32.
Multi-stage models (the stacked hourglass) export the last stage's output, the
one tools/test.py decodes.

With --with-decode the codec's decode is in the graph too:
  images (N, 3, H, W), center (N, 2), scale (N, 2) float32
  -> coords (N, K, 2) float64 image pixels, maxvals (N, K, 1) float32,
the same numbers as codec.decode(model(images), {"center": center, "scale": scale}). Exportable:
gaussian (argmax + quarter-pixel step + inverse crop) and soft_argmax (LPN).
DARK and UDP are not (see NOT_EXPORTABLE): their decodes loop in Python over
chunks of maps, and UDP's picks near-tied blurred peaks with a data-dependent
branch, which a traced graph freezes at the export batch. Export the model
alone and decode with posezoo.codecs.

The exporter is torch.onnx's TorchScript one (dynamo=False). On torch 2.13 both
exporters give the same numbers here, but the torch.export-based one needs the
extra onnxscript package, raises the opset to 18 and takes 5-10x longer.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import warnings

import _setup  # puts lib/ on the path
import numpy as np
import torch
from posezoo.codecs import build_codec, codec_name
from posezoo.codecs.gaussian import GaussianHeatmapCodec, get_max_preds, quarter_offset
from posezoo.codecs.soft_argmax import SoftArgmaxCodec, soft_argmax, value_at_rounded
from posezoo.config import load_config
from posezoo.models import build_model, load_checkpoint
from posezoo.utils.transforms import crop_to_image
from posezoo.utils.utils import output_dirs
from torch import nn

logger = logging.getLogger("posezoo.export")

DEFAULT_OPSET = 17
# why each codec that has no ONNX decode has none (the --with-decode error says it)
# (checked by tracing codec.decode: DARK's graph is wrong beyond 1024 maps, e.g. 100 crops of 17
# joints; UDP's is wrong at any batch)
NOT_EXPORTABLE = {
    "dark": "it blurs the maps in a Python loop over chunks of 1024 maps, which a traced graph freezes at the "
            "export batch",
    "udp": "it blurs the maps in a Python loop over chunks and resolves near-tied blurred peaks with a "
           "data-dependent branch",
}


class LastStage(nn.Module):
    """The model's output, or its last stage's for models that return one
    output per stage (the stacked hourglass): what testing decodes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(images)
        return out[-1] if isinstance(out, (list, tuple)) else out


class GaussianDecode(nn.Module):
    """``GaussianHeatmapCodec.decode`` as a graph: integer argmax, the
    quarter-pixel step (``TEST.POST_PROCESS``), the inverse crop in float64."""

    def __init__(self, codec: GaussianHeatmapCodec, heatmap_size: tuple[int, int]):
        super().__init__()
        self.post_process = codec.post_process
        self.heatmap_size = heatmap_size

    def forward(self, heatmaps: torch.Tensor, center: torch.Tensor, scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        coords, maxvals = get_max_preds(heatmaps)
        if self.post_process:
            coords = quarter_offset(heatmaps, coords)
        return crop_to_image(coords.double(), center, scale, self.heatmap_size), maxvals


class SoftArgmaxDecode(nn.Module):
    """``SoftArgmaxCodec.decode`` as a graph: LPN's beta-soft-argmax (Zhang et
    al. 2019), the score at the rounded position, the optional quarter-pixel
    step, the inverse crop in float64 and ``TEST.BIAS``."""

    def __init__(self, codec: SoftArgmaxCodec, heatmap_size: tuple[int, int]):
        super().__init__()
        self.post_process = codec.post_process
        self.beta = codec.beta
        self.bias = codec.bias
        self.heatmap_size = heatmap_size

    def forward(self, heatmaps: torch.Tensor, center: torch.Tensor, scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        coords = soft_argmax(heatmaps, self.beta)
        maxvals = value_at_rounded(heatmaps, coords)
        if self.post_process:
            coords = quarter_offset(heatmaps, coords)
        return crop_to_image(coords.double(), center, scale, self.heatmap_size) - self.bias, maxvals


class WithDecode(nn.Module):
    """Model and decode in one graph: (images, center, scale) -> (coords, maxvals)."""

    def __init__(self, net: nn.Module, decode: nn.Module):
        super().__init__()
        self.net = net
        self.decode = decode

    def forward(self, images: torch.Tensor, center: torch.Tensor, scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decode(self.net(images), center, scale)


DECODE_GRAPHS = {GaussianHeatmapCodec: GaussianDecode, SoftArgmaxCodec: SoftArgmaxDecode}


def exportable_codec(cfg):
    """The configured codec when its decode has a graph version, else one clear
    error naming it."""
    codec = build_codec(cfg)
    if type(codec) in DECODE_GRAPHS:
        return codec
    name = codec_name(cfg)
    why = NOT_EXPORTABLE.get(name, "posezoo has no graph version of it")
    raise ValueError(f"--with-decode: the '{name}' codec's decode cannot be exported to ONNX ({why}); "
                     f"export without --with-decode and decode the heatmaps with posezoo.codecs "
                     f"(exportable decodes: gaussian, soft_argmax)")


def decode_module(codec, heatmap_size: tuple[int, int]) -> nn.Module:
    """The graph version of ``codec.decode`` for heatmaps of ``heatmap_size`` (w, h)."""
    return DECODE_GRAPHS[type(codec)](codec, heatmap_size)


def export_graph(graph: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str], path: str, opset: int = DEFAULT_OPSET) -> None:
    """``torch.onnx.export`` with axis 0 of every input and output named
    ``batch`` (dynamic)."""
    if importlib.util.find_spec("onnx") is None:
        raise ImportError("ONNX export needs the onnx package: pip install -e '.[onnx]' (onnx, and onnxruntime "
                          "to run the file)")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    names = input_names + output_names
    with torch.no_grad(), warnings.catch_warnings():
        # the TorchScript exporter's deprecation notices, and the tracer's note that the heatmap size
        # in crop_to_image becomes a constant (it is one); other tracer warnings stay visible
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message="The feature will be removed.*")
        warnings.filterwarnings("ignore", message="torch.as_tensor results are registered as constants.*")
        torch.onnx.export(graph, inputs, path, input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False, do_constant_folding=True,
                          dynamic_axes={name: {0: "batch"} for name in names})


def self_check(graph: nn.Module, path: str, inputs: tuple[torch.Tensor, ...], input_names: list[str],
               tolerance: float = 1e-3) -> float | None:
    """The exported file run by onnxruntime at batch 3 (not the traced batch 2,
    so the dynamic axis is exercised) against PyTorch on random inputs: the
    largest absolute difference over all outputs, or None without onnxruntime.
    Raises when it exceeds `tolerance`: a file that computes something else
    must not pass silently."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    g = torch.Generator().manual_seed(0)
    # the traced inputs' first row plus noise of at least 1 (10 % of a centre's pixels)
    feed = tuple(x[:1] + torch.rand((3,) + tuple(x.shape[1:]), generator=g) * max(1.0, 0.1 * float(x.abs().max()))
                 for x in inputs)
    with torch.no_grad():
        expected = graph(*feed)
    expected = expected if isinstance(expected, (list, tuple)) else (expected,)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {name: x.numpy() for name, x in zip(input_names, feed)})
    diff = max(float(np.abs(np.asarray(a, np.float64) - e.double().numpy()).max()) for a, e in zip(got, expected))
    if not diff <= tolerance:
        raise RuntimeError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (> {tolerance}) at batch 3; "
                           f"try another --opset")
    return diff


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "MODEL.NUM_JOINTS 16 TEST.POST_PROCESS False")
    parser.add_argument("--weights", default="",
                        help="model weights (default: TEST.MODEL_FILE, else the experiment's final_state.pth "
                             "if it exists, else random init)")
    parser.add_argument("--output", default="",
                        help="ONNX file to write (default: <experiment output dir>/<cfg stem>[_decode].onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--with-decode", action="store_true",
                        help="put the codec's decode in the graph: (images, center, scale) -> (coords, maxvals)")
    return parser.parse_args(argv)


def main(argv=None) -> str:
    """Export as the command line says; returns the ONNX file's path."""
    args = parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.cfg, args.opts)
    stem = os.path.splitext(os.path.basename(args.cfg))[0] if args.cfg else "default"
    codec = exportable_codec(cfg) if args.with_decode else None

    model = build_model(cfg, is_train=False)
    weights = args.weights or cfg.TEST.MODEL_FILE
    if not weights:
        final_state = os.path.join(output_dirs(cfg, args.cfg, "export")[0], "final_state.pth")
        weights = final_state if os.path.isfile(final_state) else ""
    if weights:
        load_checkpoint(model, weights, strict=True)
        logger.info("=> loaded %s", weights)
    else:
        logger.warning("no weights given (--weights, TEST.MODEL_FILE) and no final_state.pth for this experiment: "
                       "exporting a randomly initialised %s", cfg.MODEL.NAME)
    net = LastStage(model).eval()

    width, height = cfg.MODEL.IMAGE_SIZE
    images = torch.zeros(2, 3, height, width)
    with torch.no_grad():
        heatmap_h, heatmap_w = net(images).shape[2:]
    if args.with_decode:
        graph = WithDecode(net, decode_module(codec, (int(heatmap_w), int(heatmap_h)))).eval()
        inputs = (images, torch.full((2, 2), 100.0), torch.ones(2, 2))
        input_names, output_names = ["images", "center", "scale"], ["coords", "maxvals"]
    else:
        graph, inputs = net, (images,)
        input_names, output_names = ["images"], ["heatmaps"]

    path = args.output or os.path.join(output_dirs(cfg, args.cfg, "export")[0],
                                       f"{stem}{'_decode' if args.with_decode else ''}.onnx")
    export_graph(graph, inputs, input_names, output_names, path, args.opset)
    logger.info("=> exported %s%s to %s (opset %d, dynamic batch): %s -> %s", cfg.MODEL.NAME,
                " + " + codec_name(cfg) + " decode" if args.with_decode else "", path, args.opset,
                ", ".join(input_names), ", ".join(output_names))
    diff = self_check(graph, path, inputs, input_names)
    if diff is None:
        logger.info("=> onnxruntime is not installed: the file was not checked (pip install onnxruntime)")
    else:
        logger.info("=> onnxruntime vs PyTorch at batch 3: max |difference| %.3g", diff)
    return path


if __name__ == "__main__":
    _setup.run(main)
