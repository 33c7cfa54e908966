"""The reconstruction component of Pavlakos et al., "Ordinal Depth Supervision
for 3D Human Pose Estimation", CVPR 2018 ("reconstruction component"): an MLP that lifts 2D joints
plus per-joint ordinal depths to a metric, root-relative 3D pose
(``MODEL.NAME: lifting_mlp``, with ``MODEL.TARGET_TYPE: lifting``).

The paper takes the architecture of Martinez et al., "A simple yet effective
baseline for 3d human pose estimation", ICCV 2017 (Sec. 3.1, Fig. 1): a linear
layer to ``LINEAR_SIZE`` (1024) units with batch norm, ReLU and dropout 0.5,
then ``NUM_BLOCKS`` (2) residual blocks of two such layers each, then a linear
layer to the output. The ordinal-pose3d release ships only the trained model
(``rec-h36m.t7``, used in ``full-eval/main.lua:17,86``), not its definition, so
the layout here is the paper's description; the parameter names follow the
widely used PyTorch port of Martinez et al. (weigq/3d_pose_baseline_pytorch
``src/model.py``: ``w1``, ``batch_norm1``, ``linear_stages.i.{w1, batch_norm1,
w2, batch_norm2}``, ``w2``), so its checkpoints load once the input and output
widths agree. Input: 3 K values (x of every joint, then y, then depth:
``main.lua:80-83``); output: 3 K values in the same coordinate-major order
(``main.lua:89`` reshapes it to 3 x 17). Martinez's max-norm weight constraint
is not applied (the PyTorch port omits it too).

``MODEL.EXTRA``: ``LINEAR_SIZE`` (1024), ``NUM_BLOCKS`` (2), ``DROPOUT`` (0.5).
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ConfigError


class ResidualLinear(nn.Module):
    """Two (linear, BN, ReLU, dropout) layers and the identity skip (Martinez et al. Fig. 1)."""

    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.w1, self.batch_norm1 = nn.Linear(size, size), nn.BatchNorm1d(size)
        self.w2, self.batch_norm2 = nn.Linear(size, size), nn.BatchNorm1d(size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(torch.relu(self.batch_norm1(self.w1(x))))
        return x + self.dropout(torch.relu(self.batch_norm2(self.w2(y))))


class LiftingMLP(nn.Module):
    """(N, 3 K) 2D + depth inputs -> (N, 3 K) root-relative 3D (module doc)."""

    def __init__(self, num_joints: int, linear_size: int = 1024, num_blocks: int = 2, dropout: float = 0.5):
        super().__init__()
        self.input_shape = (3 * num_joints,)
        self.w1, self.batch_norm1 = nn.Linear(3 * num_joints, linear_size), nn.BatchNorm1d(linear_size)
        self.linear_stages = nn.ModuleList(ResidualLinear(linear_size, dropout) for _ in range(num_blocks))
        self.w2 = nn.Linear(linear_size, 3 * num_joints)
        self.dropout = nn.Dropout(dropout)
        for m in self.modules():  # Kaiming init of the linear weights (the PyTorch port's weight_init)
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.input_shape[0]:
            raise ValueError(f"lifting_mlp: input of shape {tuple(x.shape)}, expected (N, {self.input_shape[0]}): "
                             f"x of every joint, then y, then the depth code")
        y = self.dropout(torch.relu(self.batch_norm1(self.w1(x))))
        for block in self.linear_stages:
            y = block(y)
        return self.w2(y)


def get_pose_net(cfg, is_train: bool) -> LiftingMLP:
    extra = cfg.MODEL.EXTRA
    size, blocks, dropout = int(extra.get("LINEAR_SIZE", 1024)), int(extra.get("NUM_BLOCKS", 2)), \
        float(extra.get("DROPOUT", 0.5))
    if size < 1 or blocks < 0 or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"lifting_mlp: MODEL.EXTRA LINEAR_SIZE {size} must be >= 1, NUM_BLOCKS {blocks} >= 0 and "
                          f"DROPOUT {dropout} in [0, 1) (paper: 1024, 2, 0.5)")
    return LiftingMLP(cfg.MODEL.NUM_JOINTS, size, blocks, dropout)
