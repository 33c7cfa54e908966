"""A2J's anchor codec (Xiong et al., ICCV 2019; code zhangboshen/A2J). Chosen
by ``MODEL.TARGET_TYPE: a2j``.

- Anchors: every 16-px cell of the crop holds a 4x4 lattice of anchor points
  at 2, 6, 10 and 14 px from the cell's top-left corner (the release's
  ``generate_anchors`` + ``shift``), enumerated in the release's order (cell
  column outermost, then cell row, then the in-cell anchors row by row), the
  order of the ``a2j`` model's outputs.
- ``encode``: A2J regresses the joints directly, so the target is the crop
  joints (u_c, v_c, dz) themselves; every joint has weight 1 (NYU annotates
  all joints, and the release trains on every one, in the crop or not).
- ``decode_crop``: anchor voting (paper Eqs. 1-3, the release's ``post_process``):
  per joint, a softmax over all anchors of the anchor logits weights the
  anchors' votes (anchor position + offset in-plane, predicted depth), in crop
  space; ``decode`` then maps the joints back to frame uvd with the crop's
  geometry (``utils.transforms.depth_crop_to_frame``).

The release works in (row, column) order; here positions are (x, y) = (u, v)
throughout, the ``a2j`` model already emitting its offsets that way.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .base import DepthCropCodec

CELL = 16                                   # anchor cell (= feature stride), px
IN_CELL = (2.0, 6.0, 10.0, 14.0)            # anchor lattice inside a cell, px
OUTPUT_KEYS = ("logits", "offsets", "depth")


def anchor_grid(width: int, height: int, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(A, 2) anchor positions (x, y) in crop pixels for a width x height crop,
    A = (width // 16) * (height // 16) * 16, in the release's order."""
    lattice = torch.tensor(IN_CELL, dtype=dtype, device=device)
    cols = torch.arange(width // CELL, dtype=dtype, device=device) * CELL
    rows = torch.arange(height // CELL, dtype=dtype, device=device) * CELL
    # axes: cell column, cell row, in-cell row, in-cell column
    x = (cols[:, None, None, None] + lattice[None, None, None, :]).expand(len(cols), len(rows), 4, 4)
    y = (rows[None, :, None, None] + lattice[None, None, :, None]).expand(len(cols), len(rows), 4, 4)
    return torch.stack([x, y], dim=-1).reshape(-1, 2)


def anchor_vote(logits: torch.Tensor, offsets: torch.Tensor, depth: torch.Tensor, anchors: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Anchor-weighted voting (paper Eqs. 1-3). logits, depth (N, A, K),
    offsets (N, A, K, 2), anchors (A, 2) -> joints (N, K, 3) = (x, y, depth),
    the softmax-weighted anchor position alone (N, K, 2) (the "informative
    anchor surrounding" centre, Eq. 5) and the weights (N, A, K)."""
    weights = torch.softmax(logits, dim=1)
    w2 = weights.unsqueeze(3)
    xy = (w2 * (anchors[None, :, None, :] + offsets)).sum(1)
    z = (weights * depth).sum(1)
    surround = (w2 * anchors[None, :, None, :]).sum(1)
    return torch.cat([xy, z.unsqueeze(2)], dim=2), surround, weights


def check_output(output: Mapping[str, torch.Tensor], num_anchors: int) -> None:
    """One clear error when the output is not the ``a2j`` model's dict for this crop size."""
    if not isinstance(output, Mapping) or any(k not in output for k in OUTPUT_KEYS):
        raise TypeError(f"A2J expects the a2j model's output dict with keys {', '.join(OUTPUT_KEYS)}; "
                        f"got {type(output).__name__}")
    if output["logits"].shape[1] != num_anchors:
        raise ValueError(f"A2J output has {output['logits'].shape[1]} anchors but the {num_anchors} of "
                         f"MODEL.IMAGE_SIZE; is the input crop another size than MODEL.IMAGE_SIZE?")


class A2JCodec(DepthCropCodec):
    """A2J targets and anchor-voting decode for a (width, height) crop."""

    def __init__(self, image_size: Sequence[int], num_joints: int):
        width, height = (int(v) for v in image_size)
        if width <= 0 or height <= 0 or width % CELL or height % CELL:
            raise ValueError(f"MODEL.IMAGE_SIZE = {list(image_size)}: the a2j codec needs a width and height that "
                             f"are positive multiples of {CELL}, e.g. [176, 176]")
        self.image_size = (width, height)
        self.num_joints = int(num_joints)
        self.anchors = anchor_grid(width, height)

    def encode(self, joints_crop: np.ndarray, depth_crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 3) crop joints (u_c, v_c, dz) -> target = those joints as float32,
        target weight ones (K, 1). ``depth_crop`` is not needed."""
        joints = np.asarray(joints_crop, dtype=np.float32)
        if joints.shape != (self.num_joints, 3):
            raise ValueError(f"a2j codec: joints_crop has shape {joints.shape}, expected ({self.num_joints}, 3) "
                             f"= (u_c, v_c, dz) per joint (MODEL.NUM_JOINTS = {self.num_joints})")
        return joints.copy(), np.ones((self.num_joints, 1), dtype=np.float32)

    def loss_name(self, cfg) -> str:
        return "A2JLoss"

    def decode_crop(self, output: Mapping[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """Model output dict + the (N, 1, H, W) input batch -> (N, K, 3) float32
        (u_c, v_c, dz) on the output's device, by anchor voting."""
        height, width = inputs.shape[-2:]
        if (width, height) != self.image_size:
            raise ValueError(f"a2j codec: input crops are {width}x{height} but MODEL.IMAGE_SIZE is "
                             f"{self.image_size[0]}x{self.image_size[1]}")
        check_output(output, len(self.anchors))
        logits = output["logits"].detach().float()
        anchors = self.anchors.to(logits.device)
        joints, _, _ = anchor_vote(logits, output["offsets"].detach().float(), output["depth"].detach().float(),
                                   anchors)
        return joints


def get_codec(cfg) -> A2JCodec:
    return A2JCodec(cfg.MODEL.IMAGE_SIZE, cfg.MODEL.NUM_JOINTS)
