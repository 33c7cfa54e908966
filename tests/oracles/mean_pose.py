"""A model that ignores the image: every crop gets the codec's target of the
mean labelled pose (in crop pixels) of the config's training boxes. Its AP
measures the test path's geometry (crop, flip test, decode, rescoring, NMS,
COCOeval) with no learning involved, so end-to-end checks can hold AP floors.
``MODEL.NAME: oracles.mean_pose`` builds it (with tests/ on the path)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from posezoo.codecs import build_codec
from posezoo.config import update_config
from posezoo.datasets import build_dataset


class MeanPose(nn.Module):
    def __init__(self, maps: torch.Tensor):
        super().__init__()
        self.register_buffer("maps", maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps.expand(x.shape[0], -1, -1, -1).clone()


def mean_pose_model(cfg, codec, image_set: str) -> MeanPose:
    """The mean labelled pose of the GT boxes of `image_set`, as the codec's heatmaps."""
    gt = build_dataset(update_config(cfg, ["TEST.USE_GT_BBOX", "True"]), image_set, False, codec)
    size = [int(v) for v in cfg.MODEL.IMAGE_SIZE]
    k = cfg.MODEL.NUM_JOINTS
    total, count = np.zeros((k, 2)), np.zeros((k, 1))
    for rec in gt.db:
        trans = codec.crop_matrix(rec["center"], rec["scale"], 0.0, size)
        labelled = rec["joints_vis"][:, :1] > 0
        total += (rec["joints"][:, :2] @ trans[:, :2].T + trans[:, 2]) * labelled
        count += labelled
    joints = np.concatenate([total / np.maximum(count, 1), np.zeros((k, 1))], axis=1).astype(np.float32)
    target, _ = codec.encode(joints, (count > 0).astype(np.float32).repeat(3, axis=1))
    return MeanPose(torch.from_numpy(target)[None])


def get_pose_net(cfg, is_train: bool) -> MeanPose:
    return mean_pose_model(cfg, build_codec(cfg), cfg.DATASET.TRAIN_SET)
