"""``torchrun --nproc_per_node=2 -m gradsight train`` on the CPU (gloo), on the bundled data.

Each test launches real processes through ``torch.distributed.run`` with a timeout, so a
hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gradsight.data import TensorSplit
from gradsight.errors import ConfigError
from gradsight.train.distributed import Ranks, ShardedSplit, ranks_from_env

TIMEOUT = 240


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(cwd: Path, *args: str, nproc: int = 2) -> list[str]:
    # torchrun stops the other ranks once one has exited non-zero; polling every 2 s lets
    # both ranks' own exit codes (3 on a NaN/Inf stop) reach its report
    return [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}", "--monitor-interval=2",
        "-m", "gradsight", "train", "--device", "cpu", "--quiet", *args,
    ]  # fmt: skip


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def _records(run: Path, kind: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    return [r for r in lines if r.get("kind") == kind]


def test_two_ranks_train_like_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    two = _run(_torchrun(tmp_path, "--epochs", "2", "--batch-size", "32", "--out", "two"), tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _run(
        [sys.executable, "-m", "gradsight", "train", "--device", "cpu", "--quiet",
         "--epochs", "2", "--batch-size", "64", "--out", "one"],
        tmp_path,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["distributed"] == {"world_size": 2, "weights_identical": True}
    epochs_two, epochs_one = (
        _records(tmp_path / "two", "epoch"),
        _records(tmp_path / "one", "epoch"),
    )
    assert [e["epoch"] for e in epochs_two] == [1, 2]  # one record per epoch, not one per rank
    for a, b in zip(epochs_two, epochs_one, strict=True):
        assert a["step"] == b["step"] == 200 * int(a["epoch"])  # 12,800 images / 64
        for key in ("train_loss", "test_loss"):  # stated tolerance: float reduction order
            assert abs(float(a[key]) - float(b[key])) < 1e-4, (key, a[key], b[key])
        for key in ("train_acc", "test_acc"):
            assert abs(float(a[key]) - float(b[key])) <= 2e-3, (key, a[key], b[key])
    w2 = torch.load(tmp_path / "two" / "model.pt")
    w1 = torch.load(tmp_path / "one" / "model.pt")
    assert max(float((w2[k] - w1[k]).abs().max()) for k in w1) < 1e-4
    assert set(os.listdir(tmp_path)) == {"one", "two"}  # nothing else written by rank 1
    graph = json.loads((tmp_path / "two" / "graph.json").read_text())  # the inner model's
    names = {n["name"] for n in graph["nodes"]}
    assert "conv1.weight" in names and not any("DDP" in n or "module." in n for n in names)


NAN_MODEL = '''
import os
import torch
from torch import nn


class RankPoisoned(nn.Module):
    """A small CNN whose forward makes NaN on rank 1 only, from its 5th training step."""

    def __init__(self, in_channels, num_classes, image_size):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(8 * image_size * image_size, num_classes)
        self.calls = 0

    def forward(self, x):
        h = self.features(x)
        if self.training and torch.is_grad_enabled():
            self.calls += 1
            if os.environ.get("RANK") == "1" and self.calls >= 5:
                h = h.log() - h.log()  # log(0) = -inf; -inf - -inf = NaN
        return self.head(h.flatten(1))
'''


def test_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    (tmp_path / "poisoned.py").write_text(textwrap.dedent(NAN_MODEL))
    done = _run(
        _torchrun(tmp_path, "--model", "poisoned.py:RankPoisoned", "--epochs", "1",
                  "--out", "run"),
        tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    codes = [line.split(":", 1)[1].split()[0] for line in done.stderr.splitlines()
             if line.strip().startswith("exitcode")]  # fmt: skip
    assert codes == ["3", "3"], done.stderr[-3000:]  # both ranks: the NaN/Inf exit code
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").open()]
    nonfinite = [e for e in events if e["kind"] == "nonfinite"]
    assert len(nonfinite) == 1  # written once, by rank 0
    event = nonfinite[0]
    assert event["step"] == 4 and event["ranks"] == [1]  # the 5th step, rank 1's batch
    assert event["message"].startswith("rank 1 of 2: ")
    assert event["module"] == "" and event["op"] == "log" and event["phase"] == "forward"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] == 5  # step 4, not applied
    assert summary["skipped_steps"] == 1
    assert summary["distributed"]["weights_identical"] is True


def test_a_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    args = ("--epochs", "3", "--batch-size", "64")
    whole = _run(_torchrun(tmp_path, *args, "--out", "whole"), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _torchrun(tmp_path, *args, "--out", "killed"), cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + TIMEOUT
    while not (checkpoints.is_dir() and any(checkpoints.glob("*.pt"))):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks, mid-run
    proc.wait(timeout=30)
    assert not (tmp_path / "killed" / "model.pt").exists()  # it really did not finish

    resumed = _run(_torchrun(tmp_path, "--resume", "killed"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "whole" / "model.pt")
    b = torch.load(tmp_path / "killed" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    assert [e["epoch"] for e in _records(tmp_path / "killed", "epoch")] == [1, 2, 3]


def test_resuming_with_another_world_size_is_refused(tmp_path: Path) -> None:
    two = _run(_torchrun(tmp_path, "--epochs", "1", "--out", "run"), tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    alone = _run(
        [sys.executable, "-m", "gradsight", "train", "--resume", "run", "--quiet"], tmp_path
    )
    assert alone.returncode == 2
    last = alone.stderr.strip().splitlines()[-1]
    assert "saved by a run on 2 process(es), this one has 1" in last


def test_sharding_covers_each_global_batch_once() -> None:
    split = TensorSplit(torch.arange(23.0).view(23, 1, 1, 1), torch.arange(23))
    shards = [ShardedSplit(split, Ranks(r, 3)) for r in range(3)]
    steps = [list(s.batches(2, shuffle=True, generator=torch.Generator().manual_seed(0)))
             for s in shards]  # fmt: skip
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    assert all(len(s) == shards[0].num_batches(2) == 4 for s in steps)  # 23 // 6 + (5 >= 3)
    for i in range(4):
        labels = torch.cat([steps[r][i][1] for r in range(3)])
        assert torch.equal(labels, order[i * 6 : i * 6 + 6])  # this global batch, once
    evals = [torch.cat([y for _, y in s.batches(4, shuffle=False)]) for s in shards]
    assert torch.equal(torch.cat(evals), torch.arange(23))


def test_a_last_global_batch_smaller_than_the_world_is_dropped() -> None:
    split = TensorSplit(torch.zeros(13, 1, 1, 1), torch.arange(13))
    shard = ShardedSplit(split, Ranks(1, 4))
    steps = list(shard.batches(3, shuffle=True, generator=torch.Generator().manual_seed(1)))
    assert len(steps) == shard.num_batches(3) == 1  # 12 + 1 left: fewer than 4 ranks


def test_ranks_from_env() -> None:
    assert ranks_from_env({"WORLD_SIZE": "1"}) is None
    assert ranks_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Ranks(3, 4, 1)
    with pytest.raises(ConfigError, match="torchrun"):
        ranks_from_env({"WORLD_SIZE": "two"})


RANKS_SCRIPT = """
import json
import torch
import torch.distributed as dist
import gradsight
from gradsight.train.distributed import weights_agree

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
out = {}
with gradsight.GradMonitor(model) as monitor:  # a plain model: gradients never synced
    for step in range(3):
        for p in model.parameters():
            bad = rank == 1 and step == 2
            p.grad = torch.full_like(p, float("nan") if bad else 0.1)
        out[f"skip{step}"] = monitor.check(step)
out["findings"] = [f.kind for f in monitor.findings]
out["same_before"] = weights_agree(model)
with torch.no_grad():
    model[0].weight.add_(rank)
out["same_after"] = weights_agree(model)
with open(f"result-{rank}.json", "w") as f:  # a file each: ranks' stdout can interleave
    json.dump(out, f)
dist.destroy_process_group()
"""


def test_ranks_agree_when_only_one_rank_sees_nan(tmp_path: Path) -> None:
    """Gradients not synced by DDP: rank 1 alone holds NaN, yet both ranks stop (the flags
    are all-reduced); and differing weights are noticed."""
    (tmp_path / "ranks.py").write_text(textwrap.dedent(RANKS_SCRIPT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}", "ranks.py"]  # fmt: skip
    done = _run(cmd, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads((tmp_path / f"result-{r}.json").read_text()) for r in (0, 1)]
    for r in results:
        assert (r["skip0"], r["skip1"], r["skip2"]) == (False, False, True)
        assert r["findings"] == ["nonfinite"]
        assert r["same_before"] is True and r["same_after"] is False


class _Items(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    def __len__(self) -> int:
        return 23

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 1, 1), float(i)), i


def test_a_streamed_split_is_sharded_like_an_in_memory_one() -> None:
    from gradsight.data import StreamSplit

    memory = TensorSplit(torch.arange(23.0).view(23, 1, 1, 1), torch.arange(23))
    for rank in range(3):
        a = ShardedSplit(memory, Ranks(rank, 3))
        b = ShardedSplit(StreamSplit(_Items()), Ranks(rank, 3))
        for shuffle in (True, False):
            gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
            ya = [y for _, y in a.batches(2, shuffle=shuffle, generator=gen_a)]
            yb = [y for _, y in b.batches(2, shuffle=shuffle, generator=gen_b)]
            assert len(ya) == len(yb) > 0
            assert all(torch.equal(p, q) for p, q in zip(ya, yb, strict=True))
