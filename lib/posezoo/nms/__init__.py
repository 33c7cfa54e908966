"""Non-maximum suppression utilities (OKS NMS for top-down pose)."""

from .nms import COCO_PERSON_SIGMAS, oks_iou, oks_nms, rescore, soft_oks_nms

__all__ = ["COCO_PERSON_SIGMAS", "oks_iou", "oks_nms", "rescore", "soft_oks_nms"]
