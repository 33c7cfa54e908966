"""torchrun + DistributedDataParallel on the CPU (gloo, 2 processes): one
training epoch leaves identical weights on both ranks, and sharded testing
gives the single-process results with every box evaluated once.

Run as a script, this file is one torchrun process of the end-to-end test."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from conftest import ROOT, TESTS, synthetic_opts, write_cfg
from posezoo.codecs import build_codec
from posezoo.config import load_config, update_config
from posezoo.datasets import build_dataset
from posezoo.models import build_model
from posezoo.utils.distributed import (DistContext, ShardedSampler, epoch_seed, gather_shards, get_rank,
                                       init_distributed, merge_shards, shutdown_distributed, unused_parameters)
from posezoo.utils.utils import unwrap_model



def _worker(cfg_path: str, out_dir: str) -> None:
    """One torchrun process: train (DDP), save this rank's weights, then test
    with detected boxes, sharded; every rank records the table it returns."""
    import test as test_tool
    import train as train_tool

    model, _ = train_tool.train(load_config(cfg_path), cfg_path)
    rank = get_rank()
    torch.save(unwrap_model(model).state_dict(), os.path.join(out_dir, f"weights_rank{rank}.pth"))
    stats = test_tool.run_test(load_config(cfg_path, ["TEST.USE_GT_BBOX", "False"]), cfg_path)
    with open(os.path.join(out_dir, f"stats_rank{rank}.json"), "w") as f:
        json.dump(stats, f)
    shutdown_distributed()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def test_gloo_two_processes_train_same_weights_and_test_like_one_process(tmp_path, synthetic_root):
    out = tmp_path / "output"
    # 21 train boxes: 11 + 10 per rank (DistributedSampler pads rank 1 with a repeat), 4 per step;
    # 13 detected boxes for the test: shards of 7 and 6
    cfg_path = write_cfg(tmp_path / "ddp.yaml", synthetic_opts(synthetic_root, str(out)) + [
        "TRAIN.BATCH_SIZE_PER_GPU", "4", "PRINT_FREQ", "100", "MODEL.IMAGE_SIZE", "[32, 32]",
        "MODEL.HEATMAP_SIZE", "[8, 8]", "TRAIN.LR", "0.01"])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [TESTS, os.path.join(ROOT, "lib"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           __file__, cfg_path, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300,
                           check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "DistributedDataParallel: 2 processes on cpu, 4 images per process and step (effective batch 8)" \
        in proc.stderr

    run_dir = out / "synthetic" / "pose_resnet" / "ddp"
    weights = [torch.load(tmp_path / f"weights_rank{r}.pth", weights_only=True) for r in (0, 1)]
    final = torch.load(run_dir / "final_state.pth", weights_only=True)
    assert list(weights[0]) == list(weights[1]) == list(final)
    for key in final:  # parameters (all-reduced gradients) and buffers (synchronised from rank 0)
        assert torch.equal(weights[0][key], weights[1][key]), key
        assert torch.equal(weights[0][key], final[key]), key
    cfg = load_config(cfg_path)
    torch.manual_seed(cfg.SEED)
    initial = build_model(cfg, is_train=True).state_dict()
    assert not torch.equal(initial["final_layer.weight"], final["final_layer.weight"])  # it trained
    assert torch.load(run_dir / "checkpoint.pth", weights_only=True)["world_size"] == 2

    # sharded test == single-process test of the same weights, box for box
    stats = [read_json(tmp_path / f"stats_rank{r}.json") for r in (0, 1)]
    assert stats[0] == stats[1]
    import test as test_tool
    single_out = tmp_path / "single"
    single = test_tool.main(["--cfg", cfg_path, "OUTPUT_DIR", str(single_out), "TEST.USE_GT_BBOX", "False",
                             "TEST.MODEL_FILE", str(run_dir / "final_state.pth")])
    assert list(single) == list(stats[0]) and single == pytest.approx(stats[0], abs=1e-12)
    sharded_json = read_json(run_dir / "results" / "keypoints_val2017_det_results_0.json")
    single_json = read_json(single_out / "synthetic" / "pose_resnet" / "ddp" / "results"
                            / "keypoints_val2017_det_results_0.json")
    assert len(sharded_json) == len(single_json) > 0
    for a, b in zip(sharded_json, single_json):
        assert a["image_id"] == b["image_id"] and a["center"] == b["center"] and a["scale"] == b["scale"]
        assert np.allclose(a["keypoints"], b["keypoints"], atol=1e-3) and a["score"] == pytest.approx(b["score"])


@pytest.mark.parametrize("length", [0, 1, 10, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_sharded_sampler_covers_every_index_once(length, world):
    shards = [list(ShardedSampler(length, rank, world)) for rank in range(world)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(ShardedSampler(length, rank, world)) for rank in range(world)] == [len(s) for s in shards]
    with pytest.raises(ValueError, match="outside a world"):
        ShardedSampler(length, world, world)


def test_merging_padded_shards_evaluates_each_box_once(synthetic_cfg, tmp_path):
    """Noisy ground-truth keypoints as predictions (a non-trivial AP), cut into
    the padded shards of a 3-process DistributedSampler (10 boxes -> 12 rows):
    merged, they give exactly the unsharded rows, results file and AP."""
    dataset = build_dataset(synthetic_cfg, "val2017", False, build_codec(synthetic_cfg))
    rng = np.random.default_rng(0)
    n = len(dataset.db)
    joints = np.stack([rec["joints"][:, :2] for rec in dataset.db]).astype(np.float64)
    preds = np.concatenate([joints + rng.normal(0, 1, (n, 1, 1)) * rng.normal(0, 3, joints.shape),
                            rng.uniform(0.3, 1.0, (n, joints.shape[1], 1))], axis=2)
    boxes = np.stack([np.r_[rec["center"], rec["scale"], np.prod(rec["scale"] * 200), rec["score"]]
                      for rec in dataset.db])
    full = {"preds": preds, "boxes": boxes, "image_ids": np.array([rec["image_id"] for rec in dataset.db]),
            "valid": np.ones(n, bool), "loss": 0.5}
    reference, ap = dataset.evaluate(preds, boxes, full["image_ids"], str(tmp_path / "ref"))
    assert 0.2 < ap < 1.0

    parts = []
    for rank in range(3):
        index = np.array(list(DistributedSampler(dataset, num_replicas=3, rank=rank, shuffle=False)))
        parts.append({**{k: v[index] for k, v in full.items() if k != "loss"}, "index": index,
                      "loss": 0.5 + rank})
    assert sum(len(p["index"]) for p in parts) == 12  # two boxes repeated as padding
    merged = merge_shards(parts)
    assert merged["index"].tolist() == list(range(n))
    for key in ("preds", "boxes", "image_ids", "valid"):
        assert np.array_equal(merged[key], full[key]), key
    assert merged["loss"] == pytest.approx((4 * 0.5 + 4 * 1.5 + 4 * 2.5) / 12)
    stats, merged_ap = dataset.evaluate(merged["preds"], merged["boxes"], merged["image_ids"], str(tmp_path / "m"))
    assert merged_ap == ap and stats == reference
    files = [read_json(tmp_path / d / "results" / "keypoints_val2017_results_0.json") for d in ("ref", "m")]
    assert files[0] == files[1]

    with pytest.raises(KeyError, match="dataset index"):
        merge_shards([{"preds": preds}])


def test_single_process_helpers_are_no_ops(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed([])
    assert (ctx.rank, ctx.world_size, ctx.distributed, ctx.is_main, ctx.device.type) == (0, 1, False, True, "cpu")
    out = {"preds": np.zeros((2, 3, 3))}
    assert gather_shards(out) is out  # no "index" needed in one process


def test_epoch_seeds_differ_by_epoch_and_rank_and_repeat():
    seeds = {epoch_seed(0, e, r) for e in range(50) for r in range(8)}
    assert len(seeds) == 400 and all(0 <= s < 2 ** 63 for s in seeds)
    assert epoch_seed(7, 3, 1) == epoch_seed(7, 3, 1) != epoch_seed(8, 3, 1)


def test_unused_parameters_are_found_without_side_effects():
    """DDP needs find_unused_parameters for layers a checkpoint layout keeps but
    the forward skips (AWR's hourglass has 30 such tensors)."""

    class Skips(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.spare = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(2, 2)

        def forward(self, x):
            return {"heatmaps": self.bn(self.conv(x)), "count": torch.tensor(1)}

    model = Skips().train()
    running = {k: v.clone() for k, v in model.bn.state_dict().items()}

    assert unused_parameters(model, torch.randn(1, 3, 8, 8)) == ["spare.weight", "spare.bias"]
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, running[k]) for k, v in model.bn.state_dict().items())  # eval-mode probe
    del model.spare
    assert unused_parameters(model, torch.randn(1, 3, 8, 8)) == []


def test_sync_bn_on_cpu_is_refused_with_one_line(synthetic_cfg):
    import train as train_tool

    cfg = update_config(synthetic_cfg, ["MODEL.SYNC_BN", "True"])
    model = build_model(cfg)
    with pytest.raises(RuntimeError, match="MODEL.SYNC_BN needs CUDA"):
        train_tool._wrap(model, cfg, DistContext(0, 2, 0, torch.device("cpu")))
    assert train_tool._wrap(model, cfg, DistContext(0, 1, 0, torch.device("cpu"))) is model


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    _worker(*sys.argv[1:])


def test_a_rank_with_an_empty_shard_adds_nothing(synthetic_cfg, monkeypatch):
    """More processes than boxes: the idle rank's predict returns an empty shard
    (instead of 'the test set is empty') and the merge equals the busy rank's."""
    import posezoo.core.inference as inference
    from posezoo.codecs import build_codec

    monkeypatch.setattr(inference, "is_distributed", lambda: True)
    empty = inference.predict(synthetic_cfg, [], nn.Identity(), build_codec(synthetic_cfg), [], torch.device("cpu"))
    assert empty["preds"].shape == (0, 17, 3) and empty["boxes"].shape == (0, 6)
    busy = {"preds": np.random.rand(3, 17, 3), "boxes": np.random.rand(3, 6), "image_ids": np.arange(3),
            "valid": np.ones(3, bool), "loss": 2.0, "index": np.array([0, 2, 1])}
    merged = merge_shards([busy, {**empty, "index": np.zeros(0, np.int64)}])
    np.testing.assert_array_equal(merged["preds"], busy["preds"][[0, 2, 1]])
    assert merged["loss"] == 2.0 and len(merged["image_ids"]) == 3


def _strategy_sync_worker(rank: int, init_file: str, out_dir: str) -> None:
    """One gloo rank: a lazily built discriminator (initialised from this rank's
    own seed) is broadcast from rank 0, and its rank-specific gradients are
    averaged, as core/function.py does for a strategy's extra parameters."""
    import torch.distributed as dist

    from posezoo.core.adaptation import DomainDiscriminator
    from posezoo.utils.distributed import average_gradients, broadcast_parameters

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(rank)
    disc = DomainDiscriminator(0, 2, channels=4)
    features = torch.full((1, 3, 8, 8), float(rank + 1))
    with torch.no_grad():
        disc(features)  # materialise
    broadcast_parameters(disc)
    disc(features).sum().backward()
    average_gradients(list(disc.parameters()))
    torch.save({"params": [p.detach() for p in disc.parameters()], "grads": [p.grad for p in disc.parameters()]},
               os.path.join(out_dir, f"disc{rank}.pth"))
    dist.destroy_process_group()


def test_strategy_parameters_start_equal_and_step_on_the_mean_gradient(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_strategy_sync_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"disc{r}.pth", weights_only=True) for r in range(2)]
    for a, b in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(a, b)  # rank 1 holds rank 0's initial weights
    from posezoo.core.adaptation import DomainDiscriminator

    torch.manual_seed(0)
    reference = DomainDiscriminator(0, 2, channels=4)
    reference(torch.ones(1, 3, 8, 8))
    for p, q in zip(reference.parameters(), ranks[0]["params"]):
        assert torch.equal(p.detach(), q)
    # the gradients are the mean of the two ranks' own (inputs 1 and 2): equal on both, and equal to it
    grads = []
    for value in (1.0, 2.0):
        reference.zero_grad()
        reference(torch.full((1, 3, 8, 8), value)).sum().backward()
        grads.append([p.grad.clone() for p in reference.parameters()])
    for a, b, g1, g2 in zip(ranks[0]["grads"], ranks[1]["grads"], *grads):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, (g1 + g2) / 2)
