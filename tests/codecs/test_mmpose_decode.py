"""``TEST.HEATMAP_DECODE mmpose``: the MSRA decode with mmpose 1.x's border rule for the
quarter-pixel step (``codecs/utils/refinement.py:31-44``) and non-positive maxima at -1
(``codecs/utils/post_processing.py:188-192``), on hand-made maps; ``msra`` keeps HRNet's."""
import pytest
import torch

from posezoo.codecs import build_codec
from posezoo.config import load_config

H = W = 8


def codec(decode):
    return build_codec(load_config(None, ["MODEL.TARGET_TYPE", "gaussian", "MODEL.IMAGE_SIZE", "[32, 32]",
                                          "MODEL.HEATMAP_SIZE", f"[{W}, {H}]", "TEST.POST_PROCESS", "True",
                                          "TEST.HEATMAP_DECODE", decode]))


def peak(x, y, right=0.5, below=0.5):
    """A map with its maximum 1 at (x, y), 0.5 to the right of and below it, 0 elsewhere
    (so the x step goes right and the y step down wherever a rule takes them)."""
    m = torch.zeros(H, W)
    m[y, x] = 1
    if x + 1 < W:
        m[y, x + 1] = right
    if y + 1 < H:
        m[y + 1, x] = below
    return m


def heatmap_coords(decode, maps):
    """Decoded positions in heatmap pixels: with centre 16 and scale 32 / 200 the 32-pixel box is
    the crop, so image = 4 x heatmap (centre - box / 2 = 0); divided back here."""
    n = maps.shape[0]
    meta = {"center": torch.full((n, 2), 16.0, dtype=torch.float64),
            "scale": torch.full((n, 2), 32 / 200, dtype=torch.float64)}
    preds, scores = codec(decode).decode(maps.unsqueeze(1), meta)
    return preds[:, 0] / 4, scores[:, 0, 0]


@pytest.mark.parametrize("x,y,hrnet,mmpose", [
    (4, 4, (4.25, 4.25), (4.25, 4.25)),  # inside: both rules step x and y
    (1, 4, (1.0, 4.0), (1.0, 4.25)),     # x = 1: no x step in either; mmpose still steps y
    (4, 1, (4.0, 1.0), (4.25, 1.0)),     # y = 1: mmpose still steps x
    (0, 4, (0.0, 4.0), (0.0, 4.0)),      # x = 0: mmpose's y step needs 0 < x
    (4, 7, (4.0, 7.0), (4.25, 7.0)),     # last row: mmpose steps x (0 < y < H)
])
def test_border_rules(x, y, hrnet, mmpose):
    maps = peak(x, y)[None]
    assert heatmap_coords("msra", maps)[0][0].tolist() == pytest.approx(list(hrnet))
    assert heatmap_coords("mmpose", maps)[0][0].tolist() == pytest.approx(list(mmpose))


def test_non_positive_maximum_sits_at_minus_one():
    maps = torch.full((1, H, W), -0.5)
    maps[0, 3, 5] = -0.1
    hr, hr_score = heatmap_coords("msra", maps)
    mm, mm_score = heatmap_coords("mmpose", maps)
    assert hr[0].tolist() == [0.0, 0.0] and mm[0].tolist() == [-1.0, -1.0]
    assert hr_score.item() == mm_score.item() == pytest.approx(-0.1)


def test_mmpose_decode_refuses_dark_and_soft_argmax():
    with pytest.raises(ValueError, match="HEATMAP_DECODE 'mmpose' is a decode of its own"):
        build_codec(load_config(None, ["TEST.HEATMAP_DECODE", "mmpose", "TEST.BLUR_KERNEL", "11"]))
