"""DDP launch (torchrun, gloo on the CPU, 2 processes): a rank that dies
mid-epoch makes the survivor stop with one line naming the dead rank, and
torchrun exit non-zero, instead of hanging in a collective.

Run as a script, this file is one torchrun process of that job (it kills
itself on rank 1 at the second optimizer step)."""
import os
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS, LIB, TOOLS = HERE + "/..", os.path.join(HERE, "..", "..", "lib"), os.path.join(HERE, "..", "..", "tools")


def _worker(cfg_path: str) -> None:
    """tools/train.py as torchrun runs it, except that rank 1 SIGKILLs itself
    inside the training loop, before its second optimizer step."""
    sys.path.insert(0, TOOLS)
    import _setup
    import train

    import posezoo.core.function as function

    step, calls = function._optimizer_step, []

    def dying_step(ctx, loss):
        calls.append(1)
        if os.environ["RANK"] == "1" and len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        step(ctx, loss)

    function._optimizer_step = dying_step
    _setup.run(lambda: train.main(["--cfg", cfg_path]))


def test_a_rank_killed_mid_epoch_stops_the_survivor_with_one_line(tmp_path, synthetic_root):
    from conftest import synthetic_opts, write_cfg  # here: run as a script, "conftest" is faults/conftest.py

    cfg_path = write_cfg(tmp_path / "ddp.yaml", synthetic_opts(synthetic_root, str(tmp_path / "output")) + [
        "TRAIN.BATCH_SIZE_PER_GPU", "4", "PRINT_FREQ", "100", "MODEL.IMAGE_SIZE", "[32, 32]",
        "MODEL.HEATMAP_SIZE", "[8, 8]"])
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([TESTS, LIB, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           __file__, cfg_path], env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "error: rank 0: rank 1 of 2 died" in line]
    assert len(lines) == 1, proc.stderr[-4000:]
    assert "stopping this process too" in lines[0] and "--resume" in lines[0]
    assert "exitcode  : -9" in proc.stderr  # torchrun's summary: rank 1 was the one SIGKILLed
    assert not os.path.exists(tmp_path / "output" / "synthetic" / "pose_resnet" / "ddp" / "final_state.pth")


def test_dead_ranks_sees_killed_and_zombie_processes(monkeypatch):
    import socket

    from posezoo.utils import distributed

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        monkeypatch.setattr(distributed, "_PEERS", [(host, os.getpid()), (host, child.pid), ("elsewhere", 1)])
        assert distributed.dead_ranks() == []
        child.kill()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead but not reaped: a zombie
        assert distributed.dead_ranks() == [1]
        msg = str(distributed.peer_lost("[gloo/pair.cc:537] Connection closed by peer. Check the logs"))
        assert "\n" not in msg and "rank 1 of 3 died (Connection closed by peer)" in msg
    finally:
        child.kill()
        child.wait()
    assert distributed.dead_ranks() == [1]  # reaped: gone
    monkeypatch.setattr(distributed, "_PEERS", [(host, os.getpid()), ("elsewhere", 1)])
    assert "no rank on this host died" in str(distributed.peer_lost("timeout"))


def test_peer_watch_is_a_no_op_outside_torchrun(monkeypatch):
    from posezoo.utils.distributed import peer_watch

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="^plain$"):
        with peer_watch():
            assert signal.getsignal(signal.SIGTERM) is handler
            raise RuntimeError("plain")


if __name__ == "__main__":
    _worker(*sys.argv[1:])
