"""Coarse-to-fine volumetric stacked hourglass: Pavlakos, Zhou, Derpanis and
Daniilidis, "Coarse-to-Fine Volumetric Prediction for Single-Image 3D Human
Pose", CVPR 2017 (training code geopavlakos/c2f-vol-train, Lua Torch).

Stack s predicts, for each of the K joints, a volume of D_s depth bins over the
64 x 64 heatmap grid of a 256 x 256 crop (``opts.lua``: ``-inputRes 256``,
``-outputRes 64``). The depth resolutions grow from stack to stack,
``VOLUMETRIC.RES_Z`` (``opts.lua`` ``-resZ``, the paper's 4-stack model
``1,2,4,64``): the first stack gives 2D heatmaps, the last the fine volume. Every
stack is supervised (``pose-c2f.lua:4-5``, one MSE per stack) and the codec
``volumetric`` decodes the last one.

Output: a list with one (N, K * D_s, H/4, W/4) tensor per stack, joint-major
(channel ``k * D_s + d``). That is the official layout (``pose-c2f.lua:23-26``)
and a plain conv output, so flip, intermediate supervision and the 2D tooling
treat it as heatmaps; ``codecs.volumetric.volumes`` views it as (N, K, D_s, H, W)
without a copy.

Architecture: the generic hourglass of c2f-vol-train ``src/models/hg.lua`` with
one residual per branch (``-nModules 1``): the stem conv 7x7/2 64 + BN-ReLU,
residual to 128, max-pool, residual 128, residual to F (``hg.lua:38-43``); per
stack an hourglass of depth 4 (``hg.lua:3-25``), a residual and a 1x1 conv-BN-ReLU
(``hg.lua:52-55``), the 1x1 output conv to K * D_s (``hg.lua:58-63``), and the
remapping ``inter + conv(features) + conv(output)`` into the next stack
(``hg.lua:67-71``). These are posezoo's princeton hourglass modules
(``pose_hourglass.PrincetonHourglassNet`` with one output width per stack), the
same computation with biased convs and pre-activation residuals. Not built: the
paper's hand-wired ``hg-stacked-{2,3,4}.lua`` (three residuals per branch, 512
wide outputs, concatenated skips between stacks) and ``-nModules`` > 1.

``MODEL.EXTRA`` (defaults: ``opts.lua``): ``NUM_FEATURES`` (256, ``-nFeats``),
``DEPTH`` (4, the hourglass levels). The number of stacks is ``len(RES_Z)``.

No checkpoint: the official models are Torch7 ``.t7`` files (not loadable
here), so the weights start from PyTorch's default init, and
``MODEL.PRETRAINED`` may name a whole checkpoint of this model (loaded strictly).
"""
from __future__ import annotations

from ..codecs.volumetric import volumetric_settings
from ..config import ConfigError, read_extra
from .pose_hourglass import PrincetonHourglassNet

EXTRA_DEFAULTS = {"NUM_FEATURES": 256, "DEPTH": 4}


class C2FVolumetricNet(PrincetonHourglassNet):
    """The hourglass stacks with stack s predicting ``num_joints * res_z[s]`` channels."""

    def __init__(self, num_joints: int, res_z: list[int], num_features: int = 256, depth: int = 4):
        super().__init__(num_joints, len(res_z), num_features, depth,
                         stack_channels=[num_joints * d for d in res_z])
        self.num_joints = num_joints
        self.res_z = list(res_z)


def get_pose_net(cfg, is_train: bool) -> C2FVolumetricNet:
    """The model from ``MODEL.NUM_JOINTS``, ``VOLUMETRIC.RES_Z`` and ``MODEL.EXTRA``."""
    extra = read_extra(cfg, EXTRA_DEFAULTS, "c2f_vol")
    if extra.NUM_FEATURES < 2 or extra.NUM_FEATURES % 2:
        raise ConfigError(f"MODEL.EXTRA.NUM_FEATURES = {extra.NUM_FEATURES} for model c2f_vol: expected a positive "
                          f"even width (the residuals halve it inside)")
    if extra.DEPTH < 1:
        raise ConfigError(f"MODEL.EXTRA.DEPTH = {extra.DEPTH} for model c2f_vol: expected >= 1")
    res_z = volumetric_settings(cfg)["res_z"]
    model = C2FVolumetricNet(cfg.MODEL.NUM_JOINTS, res_z, extra.NUM_FEATURES, extra.DEPTH)
    if is_train and cfg.MODEL.INIT_WEIGHTS:
        model.init_weights(cfg.MODEL.PRETRAINED)
    return model
