"""``MODEL.NAME: hourglass``, the name DarkPose's COCO hourglass YAMLs use, is the
stacked hourglass of ``pose_hourglass`` (its bearpaw layout)."""
from .pose_hourglass import get_pose_net

__all__ = ["get_pose_net"]
