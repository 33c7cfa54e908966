"""The coarse-to-fine volumetric model (``models/c2f_vol.py``), its codec
(``codecs/volumetric.py``) and loss (``core.loss.VolumetricLoss`` with the
ordinal ranking term), on tiny sizes."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from oracles.volumetric_loss import direct_ordinal, direct_volume_loss, soft_depth
from posezoo.codecs import build_codec
from posezoo.codecs.volumetric import (
    ORDINAL_UNKNOWN,
    depth_window,
    ordinal_from_depth,
    torch_gaussian,
    volume_soft_argmax,
)
from posezoo.config import ConfigError, load_config
from posezoo.core.loss import VolumetricLoss, ordinal_loss
from posezoo.models import build_model
from posezoo.utils.transforms import crop_to_image

K = 3
LO, HI = -1005.1859029814127, 980.8598618317474  # the official range (voxel_limits.mat)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread for these tiny tensors: on a loaded 2-core machine OpenMP's
    spinning threads make each small op ~1000x slower; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(res_z=(1, 16), heatmap=16, extra=None, opts=()):
    return load_config(None, ["MODEL.NAME", "c2f_vol", "MODEL.TARGET_TYPE", "volumetric", "MODEL.NUM_JOINTS", str(K),
                              "MODEL.IMAGE_SIZE", f"[{4 * heatmap}, {4 * heatmap}]",
                              "MODEL.HEATMAP_SIZE", f"[{heatmap}, {heatmap}]", "MODEL.SIGMA", "2",
                              "VOLUMETRIC.RES_Z", json.dumps(list(res_z)),
                              "MODEL.EXTRA", json.dumps(extra or {"NUM_FEATURES": 16, "DEPTH": 2})] + list(opts))


def _stack(targets):
    """Per-sample lists of per-stack dicts -> per-stack dicts of batched tensors."""
    return [{k: torch.from_numpy(np.stack([t[s][k] for t in targets])) for k in targets[0][s]}
            for s in range(len(targets[0]))]


@pytest.mark.parametrize("layout", ["stacked", "generic"])
def test_model_outputs_one_volume_per_stack(layout):
    cfg = _cfg(res_z=(1, 2, 4, 8), heatmap=8, extra={"LAYOUT": layout, "NUM_FEATURES": 16, "DEPTH": 2})
    model = build_model(cfg, is_train=False)
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outputs] == [(1, K * d, 8, 8) for d in (1, 2, 4, 8)]
    if layout == "generic":  # stack s's output conv gives K * D_s channels, and the remap reads them back
        assert [m.conv.out_channels for m in model.outs] == [K, 2 * K, 4 * K, 8 * K]
        assert [m.conv.conv.in_channels for m in model.merge_preds] == [K, 2 * K, 4 * K]
        return
    # hg-stacked-4.lua at F = 16 (official 256): hourglass inputs F, F + F/2, 2F, 2F; 2F out; the
    # last stack's lin keeps 2F; remaps back to F + carried features
    assert [hg.up[0].conv1.in_channels for hg in model.hgs] == [16, 24, 32, 32]
    assert [hg.low_out.conv3.out_channels for hg in model.hgs] == [32] * 4
    assert [o.in_channels for o in model.outs] == [16, 16, 16, 32]
    assert [o.out_channels for o in model.outs] == [K, 2 * K, 4 * K, 8 * K]
    assert [(r.in_channels, r.out_channels) for r in model.out_remaps] == [(K, 24), (2 * K, 32), (4 * K, 32)]
    # three residuals per hourglass branch; a 1x1 projection only where the width changes (Residual.lua)
    assert len(model.hgs[0].up) == len(model.hgs[0].low) == 3
    assert model.hgs[1].up[1].downsample is None and model.hgs[1].up[0].downsample is not None


def test_bad_settings_are_one_clear_error():
    with pytest.raises(ConfigError, match="RES_Z"):
        build_codec(_cfg(res_z=(0, 4)))
    with pytest.raises(ConfigError, match="DEPTH_RANGE"):
        build_codec(_cfg(opts=["VOLUMETRIC.DEPTH_RANGE", "[100.0, -100.0]"]))
    with pytest.raises(ConfigError, match="NUM_FEATURES"):
        build_model(_cfg(extra={"NUM_FEATURES": 18}), is_train=False)
    with pytest.raises(ConfigError, match="LAYOUT"):
        build_model(_cfg(extra={"LAYOUT": "hg8"}), is_train=False)
    codec = build_codec(_cfg())
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        codec.encode(np.zeros((K, 2)), np.ones((K, 3)))
    with pytest.raises(ValueError, match="codes"):
        codec.encode(np.zeros((K, 3)), np.ones((K, 3)), ordinal=np.full((K, K), 5))


def test_torch_gaussian_is_torch7s_image_gaussian():
    # image.c Main_gaussian: exp(-0.5 ((u + 1 - (0.5 size + 0.5)) / (0.25 size))^2), u = 0..size-1
    g = torch_gaussian(13)
    assert g[6] == 1.0 and np.allclose(g, g[::-1])
    assert g[7] == pytest.approx(math.exp(-0.5 / 3.25 ** 2), abs=1e-15)
    assert g[0] == pytest.approx(math.exp(-0.5 * (6 / 3.25) ** 2), abs=1e-15)
    # the Lua size_z (pose-c2f.lua:22) for sigma 2 on a 64 grid: 1, 1, 1, 13 bins
    assert [depth_window(2, d, 64) for d in (1, 2, 4, 64)] == [1, 1, 1, 13]


def test_depth_bins_equal_the_lua_coarse_index():
    codec = build_codec(_cfg())
    z = np.random.default_rng(0).uniform(LO, HI, 500)
    zind = np.floor((z - LO) / ((HI - LO) / 64)) + 1  # the 1-based 64-bin index of the annotation
    for d in (1, 2, 4, 16, 64):
        lua = np.ceil(zind * d / 64) - 1  # pose-c2f.lua:26, back to 0-based
        assert np.array_equal(codec.depth_bins(z, d), lua)


def test_encode_places_the_lua_gaussian_volume():
    cfg = _cfg(res_z=(1, 64), heatmap=64)
    codec = build_codec(cfg)
    joints = np.array([[40.0, 100.0, 0.0], [128.0, 64.0, 300.0], [0.0, 0.0, 0.0]])
    vis = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0]], np.float32)
    targets, weight = codec.encode(joints, vis)
    assert weight[:, 0].tolist() == [1, 1, 0]
    coarse, fine = targets
    assert coarse["volume"].shape == (K, 64, 64) and fine["volume"].shape == (K * 64, 64, 64)
    assert np.array_equal(coarse["volume"], coarse["heatmap"])
    vol = fine["volume"].reshape(K, 64, 64, 64)
    zbin = int((300.0 - LO) // ((HI - LO) / 64))  # joint 1: x 32, y 16 on the grid
    s = 3.25  # image.gaussian(13)'s std: 0.25 * 13
    assert vol[1, zbin, 16, 32] == 1.0 == vol[1].max()
    assert vol[1, zbin + 1, 17, 32] == pytest.approx(math.exp(-1 / s ** 2), rel=1e-6)
    assert vol[1, zbin - 6, 16, 38] == pytest.approx(math.exp(-0.5 * 72 / s ** 2), rel=1e-6)
    assert vol[1, zbin - 7].max() == 0 and vol[1, zbin, 16, 39] == 0  # the 13-wide windows
    assert vol[2].max() == 0 and fine["depth_weight"].tolist() == [1, 1, 0]


def _camera_case(codec, n=2):
    """Joints on the bin grid with known camera coordinates: crop joints, meta, ground truth mm."""
    rng = np.random.default_rng(1)
    hw = int(codec.heatmap_size[0])
    stride = codec.image_size[0] / hw
    bins = codec.res_z[-1]
    cells = rng.integers(3, hw - 3, (n, K, 2)).astype(np.float64)
    zbin = rng.integers(0, bins, (n, K))
    z_rel = LO + (zbin + 0.5) * (HI - LO) / bins
    meta = {"center": torch.tensor([[500.0, 400.0], [300.0, 350.0]]), "scale": torch.tensor([[1.2, 1.2], [0.9, 0.9]]),
            "root_cam": torch.tensor([[-100.0, 50.0, 4500.0], [200.0, -30.0, 5200.0]], dtype=torch.float64),
            "focal": torch.tensor([[1145.0, 1144.0], [1150.0, 1149.0]], dtype=torch.float64),
            "princpt": torch.tensor([[512.5, 515.4], [508.8, 508.1]], dtype=torch.float64)}
    uv = crop_to_image(torch.from_numpy(cells), meta["center"].double(), meta["scale"].double(), (hw, hw))
    depth = meta["root_cam"][:, None, 2] + torch.from_numpy(z_rel)
    xy = (uv - meta["princpt"][:, None]) * depth[..., None] / meta["focal"][:, None]
    gt = torch.cat([xy, depth[..., None]], 2)
    joints = np.concatenate([cells * stride, z_rel[..., None]], 2)
    return joints, meta, gt


def test_encode_decode_round_trip_argmax():
    codec = build_codec(_cfg(res_z=(1, 16)))
    joints, meta, gt = _camera_case(codec)
    targets = [codec.encode(j, np.ones((K, 3)))[0] for j in joints]
    output = [t["volume"] for t in _stack(targets)]
    coords, scores = codec.decode(output, meta)
    assert coords.shape == (2, K, 3) and scores.shape == (2, K, 1)
    assert (coords - gt).abs().max() < 1e-3  # mm
    assert torch.equal(scores, torch.ones(2, K, 1))
    # training metrics on the target itself: everything within reach, in 2D and 3D
    target = _stack(targets)
    metrics = codec.train_metrics(output, target)
    assert metrics["acc"][0] == 1.0 and metrics["acc3d"] == (1.0, 2 * K)
    shifted = [o.roll(3, dims=1) for o in output]  # every joint three bins deeper (wrapping)
    metrics = codec.train_metrics(shifted, target)
    assert metrics["acc"][0] == 1.0 and metrics["acc3d"][1] == 2 * K and metrics["acc3d"][0] < 1.0


def test_soft_argmax_decodes_a_sharp_gaussian_off_the_grid():
    cfg = _cfg(res_z=(1, 16), opts=["VOLUMETRIC.SOFT_ARGMAX", "true"])
    codec = build_codec(cfg)
    joints, meta, _ = _camera_case(codec)
    rng = np.random.default_rng(2)
    centre = torch.from_numpy(rng.uniform(5, 10, (2, K, 3)))  # x, y in heatmap px, depth in bins
    d, h, w = 16, 16, 16
    grid = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(h), torch.arange(d), indexing="ij"), -1)
    grid = grid.permute(2, 1, 0, 3).double()  # (D, H, W, [x, y, d])
    r2 = (grid[None, None] - centre[:, :, None, None, None]).pow(2).sum(-1)
    vol = -r2 / (2 * 1.0 ** 2) / codec.beta  # softmax(beta * vol) is a Gaussian of std 1 px / 1 bin
    coords, _ = codec.decode([torch.zeros(2, K, h, w), vol.reshape(2, K * d, h, w)], meta)
    uv = crop_to_image(centre[..., :2], meta["center"].double(), meta["scale"].double(), (w, h))
    depth = meta["root_cam"][:, None, 2] + LO + (centre[..., 2] + 0.5) * (HI - LO) / d
    xy = (uv - meta["princpt"][:, None]) * depth[..., None] / meta["focal"][:, None]
    assert (coords[..., 2] - depth).abs().max() < 1e-3  # mm
    # back in image pixels the expected point is within 1e-3 px
    back = coords[..., :2] / coords[..., 2:] * meta["focal"][:, None] + meta["princpt"][:, None]
    assert (back - uv).abs().max() < 1e-3 and (coords[..., :2] - xy).abs().max() < 1e-2
    # the soft-argmax is differentiable
    v = vol.clone().requires_grad_(True)
    volume_soft_argmax(v, codec.beta).sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()


def test_flip_back_equals_the_hand_built_flipped_volume():
    codec = build_codec(_cfg(res_z=(1, 4)))
    d, h, w = 4, 16, 16
    vol = torch.zeros(1, K, d, h, w)
    vol[0, 0, 1, 5, 3] = 1.0  # a left joint (0) at x 3, bin 1
    vol[0, 1, 3, 9, 12] = 0.5  # its right partner (1) at x 12, bin 3
    vol[0, 2, 0, 2, 7] = 0.7  # an unpaired joint
    mirrored = torch.zeros_like(vol)  # what the network sees on the mirrored crop: x -> W - 1 - x, 0 <-> 1
    mirrored[0, 1, 1, 5, w - 1 - 3] = 1.0
    mirrored[0, 0, 3, 9, w - 1 - 12] = 0.5
    mirrored[0, 2, 0, 2, w - 1 - 7] = 0.7
    back = codec.flip_back(mirrored.reshape(1, K * d, h, w), [(0, 1)])
    assert torch.equal(back, vol.reshape(1, K * d, h, w))


def test_ordinal_loss_hand_case():
    z = torch.tensor([[0.0, 1.0, 3.0]])
    codes = torch.tensor([[[0, 1, -1], [-1, 0, 0], [1, 0, 0]]])
    # (0, 1): 0 closer, z0 - z1 = -1; (0, 2): 2 closer, z2 - z0 = 3; (1, 2): same depth, 2^2
    expected = (math.log1p(math.exp(-1)) + math.log1p(math.exp(3)) + 4) / 3
    assert ordinal_loss(z, codes, torch.ones(1, 3)).item() == pytest.approx(expected, rel=1e-6)
    unknown = codes.clone()
    unknown[0, 1, 2] = unknown[0, 2, 1] = ORDINAL_UNKNOWN
    two = (math.log1p(math.exp(-1)) + math.log1p(math.exp(3))) / 2
    assert ordinal_loss(z, unknown, torch.ones(1, 3)).item() == pytest.approx(two, rel=1e-6)
    # an unlabelled joint drops its pairs; no known pair: 0
    assert ordinal_loss(z, codes, torch.tensor([[1.0, 1.0, 0.0]])).item() == pytest.approx(math.log1p(math.exp(-1)))
    assert ordinal_loss(z, torch.full_like(codes, ORDINAL_UNKNOWN), torch.ones(1, 3)).item() == 0
    # codes made from depths: the row joint closer is +1
    assert ordinal_from_depth(np.array([0.0, 1.0, 3.0])).tolist() == [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]]
    assert ordinal_from_depth(np.array([0.0, np.nan]))[0, 1] == ORDINAL_UNKNOWN
    batched = ordinal_from_depth(np.array([[0.0, 50.0, 300.0], [10.0, 0.0, 0.0]]), same_depth=100.0)
    assert batched.tolist() == [[[0, 0, 1], [0, 0, 1], [-1, -1, 0]], [[0, 0, 0], [0, 0, 0], [0, 0, 0]]]


def test_volume_loss_equals_the_direct_formula():
    cfg = _cfg(res_z=(1, 4))
    codec = build_codec(cfg)
    joints, _, _ = _camera_case(codec)
    encoded = [codec.encode(j, np.array([[1, 1, 1], [1, 1, 1], [0, 0, 0]], np.float32)) for j in joints]
    target = _stack([t for t, _ in encoded])
    weight = torch.from_numpy(np.stack([w for _, w in encoded]))
    rng = np.random.default_rng(3)
    outputs = [torch.from_numpy(rng.uniform(0, 1, tuple(t["volume"].shape)).astype(np.float32)) for t in target]
    criterion = codec.loss(cfg)
    assert isinstance(criterion, VolumetricLoss)
    for o, t in zip(outputs, target):  # every joint has 3D here, so no ordinal pair is known
        assert criterion(o, t, weight).item() == pytest.approx(direct_volume_loss(o, t, weight), rel=1e-5)
    # given every stack (lists), the sum over the stacks (pose-c2f.lua's ParallelCriterion)
    summed = sum(direct_volume_loss(o, t, weight) for o, t in zip(outputs, target))
    assert criterion(outputs, target, weight).item() == pytest.approx(summed, rel=1e-5)
    # all joints labelled in 3D, weight 1: the official nn.MSECriterion over every element
    full = torch.ones_like(weight)
    t = dict(target[1], depth_weight=torch.ones(2, K))
    assert criterion(outputs[1], t, full).item() == pytest.approx(((outputs[1] - t["volume"]) ** 2).mean().item(),
                                                                  rel=1e-6)


def test_mixed_batch_is_the_sum_of_the_3d_and_ordinal_parts():
    cfg = _cfg(res_z=(1, 8), opts=["VOLUMETRIC.ORDINAL_WEIGHT", "0.5"])
    codec = build_codec(cfg)
    joints, _, _ = _camera_case(codec)
    codes = np.array([[0, 1, -1], [-1, 0, ORDINAL_UNKNOWN], [1, ORDINAL_UNKNOWN, 0]], np.int8)
    full3d = codec.encode(joints[0], np.ones((K, 3)))
    ordinal = codec.encode(joints[1], np.ones((K, 3)), ordinal=codes)  # 2D + ordinal, no depth
    assert full3d[0][1]["depth_weight"].tolist() == [1, 1, 1] and ordinal[0][1]["depth_weight"].tolist() == [0, 0, 0]
    assert ordinal[0][1]["volume"].max() == 0 and ordinal[0][1]["heatmap"].max() == 1
    target = _stack([full3d[0], ordinal[0]])
    weight = torch.from_numpy(np.stack([full3d[1], ordinal[1]]))
    rng = np.random.default_rng(4)
    out = torch.from_numpy(rng.uniform(0, 1, (2, K * 8, 16, 16)).astype(np.float32))
    criterion = codec.loss(cfg)
    total = criterion(out, target[1], weight).item()

    vol = out.double().reshape(2, K, 8, 16, 16)
    part_3d = np.mean((vol[0].numpy() - target[1]["volume"][0].double().reshape(K, 8, 16, 16).numpy()) ** 2)
    part_2d = np.mean((vol[1].numpy().max(axis=1) - target[1]["heatmap"][1].double().numpy()) ** 2)
    z = soft_depth(vol[1], codec.beta)
    expected = (part_3d + part_2d) / 2 + 0.5 * (0 + direct_ordinal(z, codes.tolist())) / 2
    assert total == pytest.approx(expected, rel=1e-5)
    vol_term, ord_term = criterion.components(out, target[1], weight)
    assert ord_term.item() == pytest.approx(direct_ordinal(z, codes.tolist()) / 2, rel=1e-5)
    # one-bin stacks carry no depth: no ordinal term there
    assert criterion.components(out[:, :K], target[0], weight)[1].item() == 0


def test_one_optimiser_step_reduces_the_loss():
    torch.manual_seed(0)
    cfg = _cfg(res_z=(1, 4), heatmap=8, extra={"NUM_FEATURES": 8, "DEPTH": 1},
               opts=["VOLUMETRIC.ORDINAL_WEIGHT", "0.1"])
    model, codec = build_model(cfg, is_train=True), build_codec(cfg)
    criterion = codec.loss(cfg)
    joints, _, _ = _camera_case(codec)
    codes = ordinal_from_depth(joints[1][:, 2])
    encoded = [codec.encode(joints[0], np.ones((K, 3))), codec.encode(joints[1], np.ones((K, 3)), ordinal=codes)]
    target, weight = _stack([t for t, _ in encoded]), torch.from_numpy(np.stack([w for _, w in encoded]))
    images = torch.randn(2, 3, 32, 32)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)  # the paper's optimiser and rate

    def loss():
        return sum(criterion(o, t, weight) for o, t in zip(model(images), target))

    model.eval()  # the same BN statistics before and after the step
    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item()


def test_the_training_loop_and_the_flip_test_take_volumetric_batches(tmp_path):
    """Collated codec targets (lists of per-stack dicts) go through train_one_epoch
    (loss, metrics, logs); the flip-tested forward decodes to finite camera mm."""
    from torch.utils.data import default_collate

    from posezoo.core.function import TrainContext, train_one_epoch
    from posezoo.core.inference import decode_batch, forward_test

    torch.manual_seed(0)
    cfg = _cfg(res_z=(1, 4), heatmap=8, extra={"NUM_FEATURES": 8, "DEPTH": 1},
               opts=["TRAIN.OPTIMIZER", "rmsprop", "TRAIN.LR", "0.00025", "PRINT_FREQ", "1"])
    model, codec = build_model(cfg, is_train=True), build_codec(cfg)
    joints, meta, _ = _camera_case(codec)
    samples = []
    for i, j in enumerate(joints):
        extra = {"ordinal": ordinal_from_depth(j[:, 2])} if i else {}
        target, weight = codec.encode(j, np.ones((K, 3)), **extra)
        samples.append((torch.randn(3, 32, 32), target, torch.from_numpy(weight),
                        {"valid": 1, **{k: v[i] for k, v in meta.items()}}))
    batch = default_collate(samples)
    assert [tuple(t["volume"].shape) for t in batch[1]] == [(2, K, 8, 8), (2, 4 * K, 8, 8)]
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    ctx = TrainContext(cfg, model, codec, codec.loss(cfg), optimizer, output_dir=str(tmp_path))
    assert train_one_epoch(ctx, [batch], 0) == 1
    model.eval()
    with torch.no_grad():
        output = forward_test(model, batch[0], codec, [(0, 1)], flip=True)
    assert output.shape == (2, 4 * K, 8, 8)
    preds = decode_batch(codec, output, batch[3], batch[0])
    assert preds.shape[:2] == (2, K) and torch.isfinite(preds).all()


def _lua_volume(pt, z, res_z, sigma=2, out_res=64):
    """A line-by-line transcription of c2f-vol-train's drawGaussian3D (img.lua:166-204)
    for one joint: pt the 1-based integer heatmap point, z the 1-based bin (the
    ceil(zind * resZ / 64) of pose-c2f.lua:26); returns (resZ, H, W) float64."""
    temp = np.zeros((out_res, out_res))
    ul = [math.floor(pt[0] - 3 * sigma), math.floor(pt[1] - 3 * sigma)]
    br = [math.floor(pt[0] + 3 * sigma), math.floor(pt[1] + 3 * sigma)]
    size = 6 * sigma + 1
    g = np.outer(torch_gaussian(size), torch_gaussian(size))  # image.gaussian(size), separable
    g_x = [max(1, -ul[0]), min(br[0], out_res) - max(1, ul[0]) + max(1, -ul[0])]
    g_y = [max(1, -ul[1]), min(br[1], out_res) - max(1, ul[1]) + max(1, -ul[1])]
    img_x = [max(1, ul[0]), min(br[0], out_res)]
    img_y = [max(1, ul[1]), min(br[1], out_res)]
    temp[img_y[0] - 1:img_y[1], img_x[0] - 1:img_x[1]] += g[g_y[0] - 1:g_y[1], g_x[0] - 1:g_x[1]]
    temp = np.minimum(temp, 1)
    size_z = 2 * math.floor((6 * sigma * res_z / out_res + 1) / 2) + 1
    zun = torch_gaussian(size_z)
    vol = np.zeros((res_z, out_res, out_res))
    for count, i in enumerate(range(z - size_z // 2, z + size_z // 2 + 1)):
        if 0 < i < res_z + 1:
            vol[i - 1] = zun[count] * temp
    return vol


def test_encode_equals_the_lua_draw_gaussian_3d_away_from_the_border():
    """Away from the left/top border (where the Lua window index is off by one) the
    volumes are the official ones, for every stack of the paper's 1, 2, 4, 64."""
    codec = build_codec(_cfg(res_z=(1, 2, 4, 64), heatmap=64))
    rng = np.random.default_rng(5)
    cells = rng.integers(7, 64, (K, 2))  # 0-based cells; the windows may pass the right/bottom edge
    z = rng.uniform(LO, HI, K)
    zind = (np.floor((z - LO) / ((HI - LO) / 64)) + 1).astype(int)
    targets, _ = codec.encode(np.concatenate([cells * 4.0, z[:, None]], 1), np.ones((K, 3)))
    for target, d in zip(targets, (1, 2, 4, 64)):
        ours = target["volume"].reshape(K, d, 64, 64)
        for k in range(K):
            lua = _lua_volume(cells[k] + 1, int(math.ceil(zind[k] * d / 64)), d)
            assert np.abs(ours[k] - lua).max() < 1e-6
