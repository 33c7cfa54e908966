"""Convert a tf-cpn TensorFlow checkpoint to a posezoo state dict (no TensorFlow needed).

    python tools/convert_tf_cpn.py --ckpt COCO.res50.256x192.CPN/snapshot_350.ckpt \
        --output models/tf/cpn_res50_256x192.pth

--ckpt is the checkpoint prefix (``X.ckpt`` for ``X.ckpt.index`` + ``X.ckpt.data-00000-of-00001``);
the reader is posezoo.utils.tf_checkpoint, the name map models/cpn.py ``tf_variable_map``
(HWIO -> OIHW, BN gamma/beta/moving_mean/moving_variance). The result loads with
``strict=True`` into ``MODEL.NAME: cpn`` with ``MODEL.EXTRA: {LAYOUT: tf, NUM_LAYERS: N}``
(experiments/coco/cpn/cpn_tf_*.yaml); the tool checks that before writing, atomically.
The ResNet depth is read from the variable names (``resnet_v1_50``/``resnet_v1_101``)
unless --layers says it. Optimizer slots (``.../Adam``, ``beta1_power``, ``global_step``) are skipped and counted.
"""
from __future__ import annotations

import argparse
import logging

import _setup  # noqa: F401  (puts lib/ on the path)
from posezoo.models import CheckpointError, load_checkpoint
from posezoo.models.cpn import CPN, DEPTHS, convert_tf_state
from posezoo.utils.tf_checkpoint import TFCheckpoint, TFCheckpointError
from posezoo.utils.utils import save_atomic

logger = logging.getLogger("convert_tf_cpn")


def convert(ckpt: str, output: str, layers: int | None = None) -> dict:
    """Read ``ckpt``, map it onto the TF-layout CPN, check a strict load, save ``output``."""
    reader = TFCheckpoint(ckpt)
    if layers is None:
        found = [d for d in DEPTHS if f"resnet_v1_{d}/conv1/weights" in reader.entries]
        if len(found) != 1:
            raise CheckpointError(f"{ckpt}: no single resnet_v1_{{50,101}}/conv1/weights; not a tf-cpn checkpoint? "
                                  f"(pass --layers to force a depth)")
        layers = found[0]
    state, unused = convert_tf_state(reader.get, reader.names(), layers)
    load_checkpoint(CPN(layers, state["refine_net.out.0.weight"].shape[0], (1, 1), layout="tf"), state, strict=True)
    save_atomic({"state_dict": state}, output)
    logger.info("%s: %d tensors -> %s (%d checkpoint tensors not used, e.g. optimizer slots)",
                ckpt, len(state), output, len(unused))
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="TF checkpoint prefix (the .index file without .index)")
    parser.add_argument("--layers", type=int, choices=sorted(DEPTHS), help="ResNet depth (default: from the names)")
    parser.add_argument("--output", required=True, help="posezoo .pth to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        convert(args.ckpt, args.output, args.layers)
    except (CheckpointError, TFCheckpointError, OSError) as e:
        parser.exit(2, f"convert_tf_cpn: error: {e}\n")


if __name__ == "__main__":
    main()
