"""WS-CDA and CC-SSL (core/adaptation.py): the reversal's gradient sign, the
discriminator/feature tug of war, pseudo-label selection on a constructed case
whose right labels are known, CC-SSL's ranked threshold, the resume of a
round from its JSON file, and one training epoch of each strategy through
the loop (core.function.train_one_epoch) on the synthetic animal domains."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY_MODEL
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.core import adaptation
from posezoo.core.adaptation import (CCSSL, WSCDA, DomainDiscriminator, MixedBatches, domain_loss, fuse_views, keep_fraction,
                                     keep_threshold, reverse_gradient, select_pseudo_labels, view_matrices)
from posezoo.core.function import TrainContext, train_one_epoch
from posezoo.core.strategy import SupervisedStrategy, build_strategy
from posezoo.datasets import build_dataset
from posezoo.datasets.synthetic_animal import generate_synthetic_animals
from posezoo.models import build_model
from posezoo.utils.registry import UnknownComponentError
from posezoo.utils.utils import build_optimizer


def test_gradient_reversal_sign():
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    (reverse_gradient(x, 0.5) * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * w)
    assert torch.equal(reverse_gradient(x, 0.5), x)


def test_reversal_flips_the_discriminator_gradient_reaching_the_features():
    torch.manual_seed(0)
    disc = DomainDiscriminator(8, 2, channels=16)
    domains = torch.tensor([0, 1, 0, 1])
    feats = torch.randn(4, 8, 8, 8, requires_grad=True)
    (plain,) = torch.autograd.grad(nn.functional.cross_entropy(disc(feats), domains), feats)
    (reversed_,) = torch.autograd.grad(domain_loss(disc, feats, domains, grl_weight=0.3), feats)
    assert plain.abs().sum() > 0
    torch.testing.assert_close(reversed_, -0.3 * plain)
    # the discriminator's own gradient is not reversed
    disc.zero_grad()
    domain_loss(disc, feats, domains, 0.3).backward()
    reversed_grads = [p.grad.clone() for p in disc.parameters()]
    disc.zero_grad()
    nn.functional.cross_entropy(disc(feats), domains).backward()
    for a, p in zip(reversed_grads, disc.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_discriminator_descends_and_features_ascend_domain_loss():
    """One SGD step on the total: the discriminator's own step lowers the
    domain loss, the features' step (through the reversal) raises it."""
    torch.manual_seed(0)
    disc = DomainDiscriminator(8, 2, channels=16)
    feats = nn.Parameter(torch.randn(6, 8, 8, 8))
    domains = torch.tensor([0, 0, 0, 1, 1, 1])
    loss = domain_loss(disc, feats, domains, grl_weight=1.0)
    loss.backward()
    lr = 1e-2
    with torch.no_grad():
        base = nn.functional.cross_entropy(disc(feats), domains)
        stepped_feats = feats - lr * feats.grad
        after_features = nn.functional.cross_entropy(disc(stepped_feats), domains)
        for p in disc.parameters():
            p -= lr * p.grad
        after_disc = nn.functional.cross_entropy(disc(feats), domains)
    assert torch.allclose(base, loss)
    assert after_features > base  # features move to confuse the discriminator
    assert after_disc < base  # the discriminator moves to tell the domains apart


class _Equivariant(nn.Module):
    """Heatmap j = input channel j, average-pooled 4x: an oracle that follows
    any warp of the image (what spatial consistency rewards); channel 2 is a
    fixed blob at one heatmap place, whatever the input (what it rejects)."""

    def forward(self, x):
        maps = nn.functional.avg_pool2d(x[:, :2], 4)
        n, _, h, w = maps.shape
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        fixed = torch.exp(-((xx - 3.0) ** 2 + (yy - 3.0) ** 2) / 2.0).to(x)
        return torch.cat([maps / maps.amax(dim=(2, 3), keepdim=True).clamp_min(1e-6), fixed.expand(n, 1, h, w)], 1)


def _dots(n, size=64):
    """Crops with a 5x5 bright square per joint channel at known places."""
    rng = np.random.default_rng(0)
    x = torch.zeros(n, 3, size, size)
    where = rng.integers(20, 44, size=(n, 2, 2))
    for i in range(n):
        for j in range(2):
            cx, cy = where[i, j]
            x[i, j, cy - 2:cy + 3, cx - 2:cx + 3] = 1.0
    return x, where


def test_spatial_consistency_keeps_the_right_labels():
    inputs, where = _dots(6)
    mats = view_matrices(5, 0.25, 30.0, torch.Generator().manual_seed(0))
    assert torch.equal(mats[0], torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64))
    fused, spread = fuse_views(_Equivariant(), inputs, mats)
    peaks = adaptation.get_max_preds(fused)[0].numpy()  # heatmap pixels (16 x 16 for 64 x 64 crops)
    truth = (where + 0.5) / 4.0 - 0.5
    np.testing.assert_allclose(peaks[:, :2], truth, atol=1.01)  # argmax on the 16-pixel grid
    conf = fused.amax(dim=(2, 3)).numpy()
    assert (spread[:, :2] < spread[:, 2:]).all()
    kept, thresh = select_pseudo_labels(conf, spread.numpy(), keep=2 / 3)
    # the two equivariant joints of every crop are kept, the input-blind one nowhere
    assert kept[:, :2].all() and not kept[:, 2].any()
    assert thresh >= conf[:, 2].max()
    by_spread, _ = select_pseudo_labels(np.ones_like(conf), spread.numpy(), keep=1.0, max_spread=0.05)
    assert by_spread[:, :2].all() and not by_spread[:, 2].any()


def test_ccssl_ranked_threshold_and_schedule():
    conf = np.array([[0.9, 0.1], [0.5, 0.7], [0.3, 0.2], [0.8, 0.6]])
    # ranked with CC-SSL's extra 0: [0, .1, .2, .3, .5, .6, .7, .8, .9]; keep 0.2 -> index int(0.8 * 9) = 7 -> 0.8
    assert keep_threshold(conf, 0.2) == pytest.approx(0.8)
    kept, _ = select_pseudo_labels(conf, np.zeros_like(conf), 0.2)
    assert kept.sum() == 1 and kept[0, 0]
    # keep 0.6 -> index int(0.4 * 9) = 3 -> 0.3: strictly above it
    kept, thresh = select_pseudo_labels(conf, np.zeros_like(conf), 0.6)
    assert thresh == pytest.approx(0.3) and kept.sum() == 5
    kept, _ = select_pseudo_labels(conf, np.zeros_like(conf), 0.6, min_confidence=0.65)
    assert kept.sum() == 3
    cfg = load_config(None, [])
    assert [keep_fraction(cfg, r) for r in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])


@pytest.fixture(scope="module")
def quadrupeds(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("quadrupeds"))
    generate_synthetic_animals(root, seed=1, counts={"source_train": 6, "source_val": 2, "target_train": 4,
                                                    "target_test": 2})
    return root


def _adapt_cfg_opts(root, out, strategy, extra=()):
    return [
        "DATASET.DATASET", "synthetic_animal", "DATASET.ROOT", root, "DATASET.TRAIN_SET", "source_train",
        "DATASET.TEST_SET", "target_test", "MODEL.NUM_JOINTS", "18", "WORKERS", "0", "OUTPUT_DIR", out,
        "TRAIN.BATCH_SIZE_PER_GPU", "4", "TEST.BATCH_SIZE_PER_GPU", "4", "TEST.USE_GT_BBOX", "True",
        "TRAIN.STRATEGY", strategy, "ADAPT.DOMAINS", "[{SET: target_train, LABELLED: false}]",
        "ADAPT.NUM_TRANSFORMS", "2", "ADAPT.EPOCHS_PER_ROUND", "2"] + TINY_MODEL + list(extra)


def _adapt_cfg(root, out, strategy, extra=()):
    return load_config(None, _adapt_cfg_opts(root, out, strategy, extra))


def _ctx(cfg, out, strategy=None):
    torch.manual_seed(0)
    codec = build_codec(cfg)
    model = build_model(cfg, is_train=True)
    dataset = build_dataset(cfg, cfg.DATASET.TRAIN_SET, True, codec)
    return TrainContext(cfg, model, codec, codec.loss(cfg), output_dir=out, dataset=dataset, strategy=strategy)


def _source(ctx):
    return torch.utils.data.DataLoader(ctx.dataset, batch_size=4)


def test_ccssl_round_is_written_and_resumed(quadrupeds, tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    cfg = _adapt_cfg(quadrupeds, out, "cc_ssl")
    ctx = _ctx(cfg, out)
    strategy = ctx.strategy
    assert isinstance(strategy, CCSSL)
    batches = strategy.before_epoch(ctx, 0, _source(ctx))
    path = CCSSL.label_file(out, 0)
    with open(path) as f:
        doc = json.load(f)
    assert doc["round"] == 0 and doc["keep_fraction"] == pytest.approx(0.2)
    with open(os.path.join(quadrupeds, "annotations", "quadruped_target_train.json")) as f:
        animals = json.load(f)
    assert len(doc["labels"]) == len(animals["annotations"])
    kept = np.array([lab["kept"] for lab in doc["labels"]])
    conf = np.array([lab["confidence"] for lab in doc["labels"]])
    # the configured share (20 %) of the most confident joints, by CC-SSL's ranked threshold
    assert kept.sum() == (conf > keep_threshold(conf, 0.2)).sum() > 0
    assert abs(kept.sum() - 0.2 * kept.size) <= 2
    assert conf[kept == 1].min() > conf[kept == 0].max()
    batch = next(iter(batches))
    assert set(batch) >= {"inputs", "target", "target_weight", "meta", "domains"} and len(batch["domains"]) == 1
    loss = strategy.step(ctx, batch)
    assert torch.isfinite(loss) and batch["outputs"].shape[0] == 4
    # the total is the source loss plus the weighted pseudo-label loss (kept joints exist, so it is larger)
    assert loss > SupervisedStrategy().step(ctx, dict(batch))

    # a resumed run inside round 0 (epoch 1) reads the file back instead of predicting again
    def no_prediction(*args, **kwargs):
        raise AssertionError("a resumed round must not predict again")

    monkeypatch.setattr(adaptation, "pseudo_label", no_prediction)
    resumed = build_strategy(cfg)
    resumed.before_epoch(_ctx(cfg, out), 1, _source(ctx))
    assert resumed.round == 0
    train_target = resumed.target_loader.dataset
    first = next(lab for lab in doc["labels"] if any(lab["kept"]))
    rec = next(r for r in train_target.db if r["image_id"] == first["image_id"])
    np.testing.assert_allclose(rec["joints"][:, :2], np.array(first["keypoints"]), rtol=1e-5)
    np.testing.assert_array_equal(rec["joints_vis"][:, 0], first["kept"])
    # the next round predicts (and would write round_01.json)
    with pytest.raises(AssertionError, match="must not predict"):
        resumed.before_epoch(_ctx(cfg, out), 2, _source(ctx))
    assert not os.path.exists(CCSSL.label_file(out, 1))


def test_ccssl_epoch_through_the_loop(quadrupeds, tmp_path):
    out = str(tmp_path / "run")
    ctx = _ctx(_adapt_cfg(quadrupeds, out, "cc_ssl"), out)
    ctx.optimizer = build_optimizer(ctx.cfg, ctx.model, ctx.strategy.extra_parameters())
    before = [p.detach().clone() for p in ctx.model.parameters()]
    assert train_one_epoch(ctx, _source(ctx), 0) == 2  # 6 source crops, batches of 4
    assert any(not torch.equal(a, p) for a, p in zip(before, ctx.model.parameters()))


def test_wscda_epoch_trains_discriminator_and_pose(quadrupeds, tmp_path):
    out = str(tmp_path / "run")
    cfg = _adapt_cfg(quadrupeds, out, "ws_cda", ["ADAPT.DOMAIN_WEIGHT", "1.0"])
    ctx = _ctx(cfg, out)
    strategy = ctx.strategy
    assert isinstance(strategy, WSCDA)
    ctx.optimizer = build_optimizer(cfg, ctx.model, strategy.extra_parameters())
    params = list(strategy.extra_parameters())
    assert len(params) == 6 and all(any(p is q for group in ctx.optimizer.param_groups for q in group["params"])
                                    for p in params)
    batch = next(iter(strategy.before_epoch(ctx, 0, _source(ctx))))
    loss = strategy.step(ctx, batch)
    assert torch.isfinite(loss) and batch["outputs"].shape[0] == 4
    assert strategy.tap.value.shape[:2] == (8, 32)  # 4 source + 4 target crops, the deconv features feeding the head
    assert 0.0 <= strategy.domain_accuracy <= 1.0
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in strategy.extra_parameters())
    ctx.model.zero_grad(set_to_none=True)
    disc = [p.detach().clone() for p in strategy.extra_parameters()]
    model = [p.detach().clone() for p in ctx.model.parameters()]
    train_one_epoch(ctx, _source(ctx), 0)
    # the optimizer stepped the (lazily materialised) discriminator and the model
    assert all(not torch.equal(a, p) for a, p in zip(disc, strategy.extra_parameters()))
    assert any(not torch.equal(a, p) for a, p in zip(model, ctx.model.parameters()))


def test_unknown_strategy_is_one_clear_error():
    cfg = load_config(None, ["TRAIN.STRATEGY", "pplo"])
    with pytest.raises(UnknownComponentError, match="available: cc_ssl, supervised, ws_cda"):
        build_strategy(cfg)


def test_adaptation_needs_an_extra_domain():
    with pytest.raises(ValueError, match="ws_cda needs at least one ADAPT.DOMAINS"):
        build_strategy(load_config(None, ["TRAIN.STRATEGY", "ws_cda"]))
    with pytest.raises(ValueError, match="cc_ssl needs an unlabelled ADAPT.DOMAINS"):
        build_strategy(load_config(None, ["TRAIN.STRATEGY", "cc_ssl", "ADAPT.DOMAINS", "[{SET: x, LABELLED: true}]"]))


def test_mixed_batches_draw_a_fresh_pass_of_a_shorter_domain():
    class Passes:  # a loader whose every pass is new: a counter of the passes made
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            yield from ([self.passes] * 2)

    other = Passes()
    steps = list(MixedBatches([range(5), other], prepare=lambda item: {"item": item}))
    assert [s["domains"][0]["item"] for s in steps] == [1, 1, 2, 2, 3]  # not the first pass replayed
    with pytest.raises(ValueError, match="ADAPT.DOMAINS set has no samples"):
        list(MixedBatches([range(2), []], prepare=lambda item: {"item": item}))


def test_wscda_resume_keeps_the_discriminator(quadrupeds, tmp_path):
    """checkpoint.pth carries the discriminator (TRAIN.STRATEGY's state), and a
    run resumed after epoch 1 ends with the weights of an uninterrupted 2-epoch
    run: model and discriminator alike."""
    import train as train_tool
    from conftest import write_cfg

    def run(out, epochs, *extra):
        opts = [str(v) for v in _adapt_cfg_opts(quadrupeds, out, "ws_cda")] + ["TRAIN.END_EPOCH", str(epochs),
                                                                                "ADAPT.DOMAIN_WEIGHT", "1.0"]
        cfg_path = write_cfg(tmp_path / f"{os.path.basename(out)}.yaml", opts)
        train_tool.main(["--cfg", cfg_path, *extra])
        folder = os.path.join(out, "synthetic_animal", "pose_resnet", os.path.basename(out))
        return torch.load(os.path.join(folder, "checkpoint.pth"), weights_only=True)

    whole = run(str(tmp_path / "whole"), 2)
    assert set(whole["strategy"]) == {"discriminator"}
    assert whole["strategy"]["discriminator"]["features.0.weight"].shape[1] == 32  # materialised: 32 feature channels
    run(str(tmp_path / "split"), 1)
    split = run(str(tmp_path / "split"), 2, "--resume")
    assert split["epoch"] == whole["epoch"] == 2
    for part in ("state_dict",):
        for key, value in whole[part].items():
            assert torch.equal(value, split[part][key]), key
    for key, value in whole["strategy"]["discriminator"].items():
        assert torch.equal(value, split["strategy"]["discriminator"][key]), key
    # a supervised run refuses to resume a ws_cda checkpoint instead of dropping its discriminator
    with pytest.raises(ValueError, match="keeps no state"):
        build_strategy(load_config(None, [])).load_state_dict(whole["strategy"])


def test_temporal_constraint_carries_low_confidence_joints_along_the_flow():
    """CC-SSL's temporal rule on frames whose motion is known: frame 1 is frame 0
    shifted by (5, 3) px, so a carried joint lands 5, 3 px on; frame 2 moves as
    much again, but frame 1's box is small (15 crop pixels are 3 image pixels),
    so its flow is not trusted; frame 3 (another video) carries nothing."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur((rng.random((200, 200)) * 255).astype(np.uint8), (5, 5), 1.5)
    frames = {"f0": base, "f1": np.roll(base, (3, 5), axis=(0, 1)), "f2": np.roll(base, (6, 10), axis=(0, 1)),
              "f3": base}
    # 64-pixel-wide input crops of 64-pixel boxes: the 15 px limit is 15 image pixels (frame 1: 3 pixels)
    records = [{"image": name, "video": video, "scale": np.array([box / 200, box / 200])}
               for name, video, box in (("f0", 1, 64), ("f1", 1, 12.8), ("f2", 1, 64), ("f3", 2, 64))]
    joints = np.array([[80.0, 90.0], [110.0, 70.0], [95.0, 120.0]], np.float32)
    coords = np.stack([joints, joints + 40, joints + 40, joints + 40])
    confidence = np.array([[0.8, 0.6, 0.5], [0.1, 0.5, 0.9], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]], np.float32)
    new, conf, replaced = adaptation.temporal_consistency(records, coords, confidence, frames.__getitem__, 64)
    # frame 1: joint 0 (0.1 < 0.9 x 0.8) and joint 1 (0.5 < 0.9 x 0.6) follow the flow; joint 2 (0.9) keeps its own
    np.testing.assert_array_equal(replaced, [[0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(new[1, :2], joints[:2] + [5, 3], atol=0.1)
    np.testing.assert_allclose(conf[1], [0.9 * 0.8, 0.9 * 0.6, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(new[1, 2], coords[1, 2])
    np.testing.assert_array_equal(new[2:], coords[2:])
    np.testing.assert_array_equal(conf[2:], confidence[2:])


def test_temporal_constraint_needs_video_frames(quadrupeds, tmp_path):
    out = str(tmp_path / "run")
    cfg = _adapt_cfg(quadrupeds, out, "cc_ssl", ["ADAPT.TEMPORAL", "True"])
    ctx = _ctx(cfg, out)
    target = build_dataset(load_config(None, _adapt_cfg_opts(quadrupeds, out, "cc_ssl")), "target_train", False,
                           ctx.codec)
    with pytest.raises(ValueError, match="ADAPT.TEMPORAL needs video frames"):
        adaptation.pseudo_label(cfg, ctx.model, target, ctx.codec, torch.device("cpu"), 0)


def _pplo_case():
    """Pseudo-labels whose errors (pixels) are known: 3 right (< 2 px) per joint;
    confidence falls with the error inside each joint but joint 2 (a hard one,
    like a hoof) is scaled down to 0.3, so one pooled ranking favours joints 0-1."""
    err = np.array([[0.5, 7, 8], [1, 0.5, 6], [1.5, 1, 0.5], [6, 1.5, 9], [7, 9, 1], [8, 8, 1.5]])
    conf = np.array([1.0, 0.8, 0.3]) * (1 - err / 10)
    return conf, err < 2


def test_pplo_per_joint_selection_keeps_the_right_labels():
    conf, right = _pplo_case()
    pooled, thresh = select_pseudo_labels(conf, np.zeros_like(conf), keep=0.5)
    # pooled: the 10th of the 19 ranked values (with CC-SSL's extra 0) is 0.27: two wrong joint-0 labels
    # (0.4, 0.3) pass and two right joint-2 ones (0.27, 0.255) do not
    assert thresh == pytest.approx(0.27) and pooled.sum() == 9
    assert (pooled & ~right).sum() == 2 and (right & ~pooled).sum() == 2
    per_joint, per_thresh = select_pseudo_labels(conf, np.zeros_like(conf), keep=0.5, per_joint=True)
    np.testing.assert_array_equal(per_joint, right)
    assert per_thresh == pytest.approx([0.4, 0.24, 0.12])  # each joint's 4th of 7 ranked values


def test_pplo_thresholds_per_round_and_min_kept_joints():
    conf, right = _pplo_case()
    cfg = load_config(None, ["ADAPT.THRESHOLDS", "[0.8, 0.5, 0.25]", "ADAPT.SELECTION", "per_joint"])
    assert [adaptation.round_threshold(cfg, r) for r in (0, 1, 2, 5)] == [0.8, 0.5, 0.25, 0.25]
    assert adaptation.round_threshold(load_config(None, []), 0) is None
    counts = []
    for r in range(3):
        kept, thresh = select_pseudo_labels(conf, np.zeros_like(conf), keep=1.0,
                                            threshold=adaptation.round_threshold(cfg, r))
        assert thresh == adaptation.round_threshold(cfg, r)
        counts.append((int(kept.sum()), int((kept & right).sum())))
    assert counts == [(3, 3), (6, 6), (11, 9)]  # joint 0, then joint 1, then joint 2 and two wrong joint-0 ones

    kept = (conf > 0.5).astype(int)  # crops keep 1, 2, 2, 1, 0, 0 joints
    target = type("Target", (), {})()
    target.db = [{"image_id": i, "joints": np.zeros((3, 3), np.float32)} for i in range(6)]
    document = {"labels": [{"image_id": i, "keypoints": np.zeros((3, 2)).tolist(), "kept": kept[i].tolist()}
                           for i in range(6)]}
    assert [r["image_id"] for r in adaptation.labelled_copy(target, document).db] == [0, 1, 2, 3]
    assert [r["image_id"] for r in adaptation.labelled_copy(target, document, min_kept=2).db] == [1, 2]
    with pytest.raises(ValueError, match="ADAPT.SELECTION"):
        adaptation.check_selection(load_config(None, ["ADAPT.SELECTION", "ranked"]))


def test_domain_opts_give_a_domain_its_own_augmentation(quadrupeds, tmp_path):
    """ADAPT.DOMAINS[].OPTS overrides that domain's DATASET.* keys only (CC-SSL augments the
    synthetic source with the strong pipeline and the real target with bearpaw's scale/rotation/flip)."""
    domains = ("[{SET: target_train, LABELLED: false, OPTS: [DATASET.STRONG_AUG, none, DATASET.FLIP, true, "
               "DATASET.ROT_FACTOR, 30.0]}]")
    cfg = _adapt_cfg(quadrupeds, str(tmp_path), "cc_ssl", ["DATASET.STRONG_AUG", "ccssl", "DATASET.FLIP", "false",
                                                             "DATASET.ROT_FACTOR", "0.0", "ADAPT.DOMAINS", domains])
    specs = adaptation.domain_specs(cfg)
    codec = build_codec(cfg)
    source, target = (adaptation.build_domain_dataset(cfg, s, True, codec) for s in specs)
    assert source.strong_aug is not None and not source.flip and source.rotation_factor == 0
    assert target.strong_aug is None and target.flip and target.rotation_factor == 30
    assert target.image_set == "target_train" and cfg.DATASET.STRONG_AUG == "ccssl"
    for bad in ("[DATASET.FLIP]", "[DATASET.ROOT, /x]", "[TRAIN.LR, 0.1]"):
        wrong = load_config(None, ["ADAPT.DOMAINS", f"[{{SET: t, OPTS: {bad}}}]"])
        with pytest.raises(ValueError, match=r"ADAPT.DOMAINS\[0\].OPTS"):
            adaptation.domain_specs(wrong)
    with pytest.raises(ValueError, match="DATASET.STRONG_AUG 'heavy'"):
        build_dataset(load_config(None, _adapt_cfg_opts(quadrupeds, str(tmp_path), "cc_ssl",
                                                        ["DATASET.STRONG_AUG", "heavy"])), "source_train", True, codec)


def test_pseudo_label_precision_on_known_errors():
    """Two crops (box sides 100 and 200), two joints; errors in box sides known."""
    truth = np.zeros((2, 2, 2))
    truth_visible = np.array([[True, True], [True, False]])
    sizes = np.array([100.0, 200.0])
    # errors: crop 0: 4 px (0.04), 8 px (0.08); crop 1: 30 px (0.15), joint 1 unlabelled (never counts)
    coords = np.array([[[4.0, 0.0], [0.0, 8.0]], [[18.0, 24.0], [500.0, 500.0]]])
    kept = np.array([[True, True], [True, True]])
    out = adaptation.pseudo_label_precision(coords, kept, truth, truth_visible, sizes)
    assert out["joints_with_truth"] == 3 and out["kept_with_truth"] == 3
    assert out["precision@0.05"] == pytest.approx(100 / 3, abs=1e-3)
    assert out["precision@0.1"] == pytest.approx(200 / 3, abs=1e-3)
    # keeping only the close joint: every kept label right, the all-joint figures unchanged
    only_close = adaptation.pseudo_label_precision(coords, np.array([[True, False], [False, False]]), truth,
                                                   truth_visible, sizes)
    assert only_close["kept_with_truth"] == 1 and only_close["precision@0.05"] == pytest.approx(100.0)
    assert only_close["all@0.05"] == out["all@0.05"] == pytest.approx(100 / 3, abs=1e-3)
    nothing = adaptation.pseudo_label_precision(coords, np.zeros((2, 2), bool), truth, truth_visible, sizes)
    assert nothing["kept_with_truth"] == 0 and nothing["precision@0.05"] is None
    json.dumps(nothing)  # writable as it is


def test_ccssl_round_reports_precision_against_the_truth_split(quadrupeds, tmp_path):
    out = str(tmp_path / "run")
    cfg = _adapt_cfg(quadrupeds, out, "cc_ssl",
                     ["ADAPT.DOMAINS", "[{SET: target_train, LABELLED: false, TRUTH: target_train_gt}]"])
    ctx = _ctx(cfg, out)
    ctx.strategy.before_epoch(ctx, 0, _source(ctx))
    with open(CCSSL.label_file(out, 0)) as f:
        doc = json.load(f)
    # independent: the generator's true keypoints and boxes from the diagnostic JSON
    with open(os.path.join(quadrupeds, "annotations", "quadruped_target_train_gt.json")) as f:
        anns = json.load(f)["annotations"]
    assert [lab["image_id"] for lab in doc["labels"]] == [a["image_id"] for a in anns]
    true = np.array([a["keypoints"] for a in anns], np.float64).reshape(len(anns), -1, 3)
    side = np.array([max(a["bbox"][2:]) for a in anns])
    pred = np.array([lab["keypoints"] for lab in doc["labels"]])
    kept = np.array([lab["kept"] for lab in doc["labels"]], bool) & (true[..., 2] > 0)
    error = np.linalg.norm(pred - true[..., :2], axis=2) / side[:, None]
    precision = doc["precision"]
    assert precision["kept_with_truth"] == kept.sum() > 0
    assert precision["joints_with_truth"] == (true[..., 2] > 0).sum()
    for alpha in (0.05, 0.1):
        assert precision[f"precision@{alpha:g}"] == pytest.approx(100 * (error[kept] <= alpha).mean(), abs=1e-3)
        assert precision[f"all@{alpha:g}"] == pytest.approx(100 * (error[true[..., 2] > 0] <= alpha).mean(), abs=1e-3)
    # without a truth split (the default) the unlabelled target has no figure
    plain = str(tmp_path / "plain")
    ctx = _ctx(_adapt_cfg(quadrupeds, plain, "cc_ssl"), plain)
    ctx.strategy.before_epoch(ctx, 0, _source(ctx))
    with open(CCSSL.label_file(plain, 0)) as f:
        assert "precision" not in json.load(f)


def test_truth_split_of_other_crops_is_refused(quadrupeds, tmp_path):
    out = str(tmp_path / "run")
    cfg = _adapt_cfg(quadrupeds, out, "cc_ssl",
                     ["ADAPT.DOMAINS", "[{SET: target_train, LABELLED: false, TRUTH: source_val}]"])
    ctx = _ctx(cfg, out)
    with pytest.raises(ValueError, match="TRUTH 'source_val' does not hold the crops of 'target_train'"):
        ctx.strategy.before_epoch(ctx, 0, _source(ctx))
