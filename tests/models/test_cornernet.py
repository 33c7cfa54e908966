"""CornerNet model: released layouts, corner pooling, outputs equal to the official code.

Goldens: the official CornerNet-Lite ``hg_net`` (core/models/py_utils/modules.py,
utils.py; its C++ corner pools compiled for CPU) built with the reduced widths
below, loaded with ``deterministic_state(seed=0)``, fed
``torch.randn((2, 3, H, W), generator=manual_seed(1))``, BN in eval mode. The
posezoo model matched it exactly (max |diff| 0.0 on every head of both stacks,
hourglass and squeeze; the 2018 ``kp.py`` layout also 0.0).
"""
import os

import pytest
import torch
from torch import nn

from conftest import TESTS, deterministic_state
from posezoo.models.cornernet import (HEADS, CornerNet, bottom_pool, left_pool, right_pool,
                                      top_pool)

SPECS = os.path.join(TESTS, "specs")
SMALL = dict(NUM_CLASSES=3, DIMS=[16, 16, 24], MODULES=[1, 1, 2], HEAD_DIM=16)

# per head of the last stack: sum, sum of |x|, flatten()[::53][:6]
GOLDEN = {
    "hourglass104": {"input_hw": (64, 48), "stack0_tl_heat_sum": 157.088623046875,
                     "tl_heat": [-24.157394409179688, 165.02365112304688, [0.08697451651096344, 0.03745495527982712, 0.049754880368709564, 0.03903776407241821, -0.2600986659526825, -0.2533501088619232]],
                     "br_heat": [-1.03200101852417, 179.15237426757812, [-0.24998536705970764, -0.22171899676322937, -0.18419227004051208, -0.20981743931770325, -0.025605857372283936, -0.029535846784710884]],
                     "tl_tag": [64.37543487548828, 64.37543487548828, [0.10917289555072784, 0.171097069978714, 0.19749288260936737, 0.1672922521829605, 0.16977718472480774, 0.14463277161121368]],
                     "br_tag": [60.89671325683594, 60.89671325683594, [0.1247277781367302, 0.1537097692489624, 0.1500854790210724, 0.15840411186218262, 0.18260738253593445, 0.15779605507850647]],
                     "tl_off": [-1.7470453977584839, 86.18070983886719, [0.11230752617120743, 0.11258228868246078, 0.10074377059936523, 0.11660503596067429, -0.13631851971149445, -0.10887669771909714]],
                     "br_off": [-52.242652893066406, 95.0013427734375, [-0.23497751355171204, -0.19598491489887238, -0.1783905178308487, -0.21018613874912262, 0.05946597456932068, 0.0688621774315834]]},
    "squeeze": {"input_hw": (128, 96), "stack0_tl_heat_sum": -76.27275085449219,
                "tl_heat": [117.62803649902344, 118.51868438720703, [0.06203392148017883, 0.07910467684268951, 0.08395565301179886, 0.08764878660440445, 0.21849647164344788, 0.2138562649488449]],
                "br_heat": [-6.707560062408447, 139.64747619628906, [0.17557410895824432, 0.17329028248786926, 0.17694225907325745, 0.17689993977546692, -0.10459329187870026, -0.10980522632598877]],
                "tl_tag": [75.33050537109375, 75.33050537109375, [0.19009317457675934, 0.20312756299972534, 0.19274550676345825, 0.20193304121494293, 0.19525876641273499, 0.20505781471729279]],
                "br_tag": [-69.18934631347656, 69.18934631347656, [-0.19868719577789307, -0.1768292784690857, -0.17766571044921875, -0.17713971436023712, -0.17341409623622894, -0.1888810694217682]],
                "tl_off": [16.044994354248047, 133.3404083251953, [-0.14585399627685547, -0.15397316217422485, -0.15066741406917572, -0.1522713601589203, 0.18835735321044922, 0.19562718272209167]],
                "br_off": [87.00275421142578, 87.00275421142578, [0.134712815284729, 0.1327115297317505, 0.12815526127815247, 0.12899939715862274, 0.09973131865262985, 0.09115760028362274]]},
}


def naive_pool(x, axis, reverse):
    """Corner pooling by an explicit loop: the running max along `axis`, from the
    far end when `reverse` (top/left pooling, paper Sec. 3.4 eq. 1)."""
    out = x.clone()
    n = x.shape[axis]
    order = range(n - 2, -1, -1) if reverse else range(1, n)
    for i in order:
        prev = i + 1 if reverse else i - 1
        cur, ref = out.select(axis, i), out.select(axis, prev)
        cur.copy_(torch.maximum(cur, ref))
    return out


def test_corner_pools_equal_naive_loop():
    g = torch.Generator().manual_seed(0)
    for x in (torch.randn(2, 3, 7, 9, generator=g), torch.randint(0, 4, (1, 2, 5, 6), generator=g).float()):
        assert torch.equal(top_pool(x), naive_pool(x, 2, True))
        assert torch.equal(bottom_pool(x), naive_pool(x, 2, False))
        assert torch.equal(left_pool(x), naive_pool(x, 3, True))
        assert torch.equal(right_pool(x), naive_pool(x, 3, False))
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # one peak: top-left pooling spreads it up and left only
    assert top_pool(x)[0, 0, :, 1].tolist() == [1.0, 1.0, 0.0]
    assert left_pool(x)[0, 0, 1].tolist() == [1.0, 1.0, 0.0]


def _bn_eval(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()


@pytest.mark.parametrize("variant", ["hourglass104", "squeeze"])
def test_outputs_equal_official(variant):
    extra = dict(SMALL, VARIANT=variant)
    model = CornerNet(extra)
    model.load_state_dict(deterministic_state(model, seed=0), strict=True)
    gold = GOLDEN[variant]
    x = torch.randn((2, 3) + tuple(gold["input_hw"]), generator=torch.Generator().manual_seed(1))
    model.train()
    _bn_eval(model)
    with torch.no_grad():
        stacks = model(x)
        model.eval()
        last = model(x)
    assert len(stacks) == 2 and len(last) == 1
    h, w = gold["input_hw"][0] // model.stride, gold["input_hw"][1] // model.stride
    assert stacks[0]["tl_heat"].shape == (2, 3, h, w) and stacks[0]["br_off"].shape == (2, 2, h, w)
    assert stacks[0]["tl_heat"].sum().item() == pytest.approx(gold["stack0_tl_heat_sum"], rel=1e-5)
    for head in HEADS:
        out = last[0][head]
        assert torch.equal(out, stacks[1][head])
        total, absolute, values = gold[head]
        assert out.sum().item() == pytest.approx(total, rel=1e-5, abs=1e-4)
        assert out.abs().sum().item() == pytest.approx(absolute, rel=1e-5)
        torch.testing.assert_close(out.flatten()[::53][:6], torch.tensor(values), rtol=1e-5, atol=1e-6)


def test_original_layout_is_the_same_network():
    """The 2018 kp.py names map one to one onto CornerNet-Lite's, same outputs."""
    lite, orig = CornerNet(SMALL), CornerNet(dict(SMALL, LAYOUT="original"))
    state = deterministic_state(lite, seed=3)
    ren = {"hg.pre.": "pre.", "hg.hgs.": "kps.", "hg.cnvs.": "cnvs.", "hg.inters.": "inters.",
           "hg.inters_.": "inters_.", "hg.cnvs_.": "cnvs_.", "tl_modules.": "tl_cnvs.", "br_modules.": "br_cnvs.",
           "tl_offs.": "tl_regrs.", "br_offs.": "br_regrs."}

    def rename(k):
        for a, b in ren.items():
            if k.startswith(a):
                return b + k[len(a):]
        return k
    lite.load_state_dict(state)
    orig.load_state_dict({rename(k): v for k, v in state.items()}, strict=True)
    x = torch.randn(1, 3, 32, 32)
    lite.eval(), orig.eval()
    with torch.no_grad():
        a, b = lite(x)[0], orig(x)[0]
    assert all(torch.equal(a[h], b[h]) for h in HEADS)


def test_heat_prior_and_bad_extra():
    model = CornerNet(SMALL)
    assert torch.all(model.tl_heats[0][-1].bias == -2.19)
    with pytest.raises(ValueError, match="VARIANT"):
        CornerNet({"VARIANT": "lite"})
    with pytest.raises(ValueError, match="unknown MODEL.EXTRA"):
        CornerNet({"NUM_CLASS": 1})
    with pytest.raises(ValueError, match="LAYOUT"):
        CornerNet({"VARIANT": "squeeze", "LAYOUT": "original"})
