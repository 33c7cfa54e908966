"""Training-time accuracy on heatmaps (the official ``accuracy``): PCK of the
argmax locations at 0.5 of a tenth of the heatmap size, vectorised."""
from __future__ import annotations

import torch

from ..codecs.gaussian import get_max_preds


def heatmap_accuracy(output: torch.Tensor, target: torch.Tensor, thr: float = 0.5
                     ) -> tuple[torch.Tensor, float, int]:
    """Per-joint accuracy (-1 where no joint is labelled), their mean over the
    joints that have one, and how many such joints there are.

    As in the official code, a joint counts when both target argmax coordinates
    are > 1, and distances are normalised by (H/10, W/10) applied to (x, y)."""
    _, _, h, w = output.shape
    pred, _ = get_max_preds(output.detach().float())
    gt, _ = get_max_preds(target.detach().float())
    norm = torch.tensor([h, w], dtype=pred.dtype, device=pred.device) / 10
    labelled = (gt[..., 0] > 1) & (gt[..., 1] > 1)
    dist = torch.linalg.norm(pred / norm - gt / norm, dim=2)
    hits = ((dist < thr) & labelled).sum(0).to(pred.dtype)
    counts = labelled.sum(0)
    per_joint = torch.where(counts > 0, hits / counts.clamp(min=1), torch.full_like(hits, -1.0))
    valid = per_joint >= 0
    cnt = int(valid.sum())
    avg = float(per_joint[valid].mean()) if cnt else 0.0
    return per_joint, avg, cnt
