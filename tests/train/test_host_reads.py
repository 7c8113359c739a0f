"""No host read per step on an accelerator: ``gradsight train``'s steps read tensor values into
Python (a device sync on a GPU) only at log and NaN/Inf-check intervals, sentinel steps and
epoch ends.

No GPU here: the accelerator path is run on the CPU by replacing the one predicate that
chooses it (``gradsight.autograd.tensors.read_is_free``), and every read a GPU would sync on
is counted: ``item()``/``float()``/``int()``/``bool()`` (``aten._local_scalar_dense``),
``tolist()``, ``cpu()`` and ``numpy()``. Not counted: reads made inside ``torch.optim``
(Adam reads its step counter, a CPU tensor even when the parameters are on a GPU), and
under Lightning the framework's own (only reads whose reader, the innermost frame outside
torch, is gradsight's code). Also for ``watch()`` in a user's loop and the Lightning
callback, on models written here (attention with a dict output, a GRU tagger).
"""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import gradsight
import gradsight.autograd.tensors as tensors
from gradsight import watch
from gradsight.cli import main
from gradsight.health.config import MonitorConfig, ends_interval
from gradsight.train.events import Observer, TrainState
from gradsight.train.runfiles import read_metrics

GRADSIGHT = str(Path(gradsight.__file__).parent).replace("\\", "/") + "/"


class HostReads(TorchDispatchMode):
    """Counts reads of tensor values into Python, per training step (``bucket``)."""

    def __init__(self) -> None:
        super().__init__()
        self.bucket: int | str = "setup"
        self.reads: Counter[int | str] = Counter()
        self.gradsight_only = False  # count only reads gradsight's own code makes

    def count(self) -> None:
        frame, caller = sys._getframe(1), None  # caller: the code that read, outside torch
        while frame is not None and caller is None:
            where = frame.f_code.co_filename.replace("\\", "/")
            if "torch/optim/" in where:
                return  # the optimizer's own bookkeeping (see the module's docstring)
            if "/torch/" not in where and where != __file__:
                caller = where
            frame = frame.f_back  # type: ignore[assignment]
        if self.gradsight_only and (caller is None or not caller.startswith(GRADSIGHT)):
            return  # a framework's own read (Lightning's logging), or the user's
        self.reads[self.bucket] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count()
        return func(*args, **(kwargs or {}))


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostReads]:
    counter = HostReads()
    for name in ("tolist", "cpu", "numpy"):  # on a CPU tensor these never dispatch a copy
        method = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _method: Any = method, **kw: Any) -> Any:
            counter.count()
            return _method(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    with counter:
        yield counter


class Buckets(Observer):
    """Puts each read in the bucket of the step running (from its forward to the next one's)."""

    def __init__(self, counter: HostReads) -> None:
        self.counter = counter

    def on_before_forward(self, state: TrainState) -> None:
        self.counter.bucket = state.step

    def on_epoch_end(self, state: TrainState, record: Any) -> None:
        self.counter.bucket = f"epoch {state.epoch} end"

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.counter.bucket = "end"


def _train(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counter: HostReads,
    *extra: str,
    quiet: bool = True,
) -> Path:
    import gradsight.cli.train as cli_train

    real_fit = cli_train.fit

    def fit(prepared: Any, observers: Any = (), *args: Any, **kw: Any) -> Any:
        return real_fit(prepared, [Buckets(counter), *observers], *args, **kw)

    monkeypatch.setattr(cli_train, "fit", fit)
    argv = ["train", "--data", "synthetic", "--epochs", "2", "--batch-size", "32"]
    argv += ["--quiet"] if quiet else []  # else the live progress display is on
    err = io.StringIO()
    run = tmp_path / "run"
    code = main([*argv, "--out", str(run), *extra], stdout=io.StringIO(), stderr=err)
    assert code == 0, err.getvalue()
    return run


def _step_reads(counter: HostReads) -> dict[int, int]:
    return {k: v for k, v in counter.reads.items() if isinstance(k, int)}


@pytest.mark.parametrize(
    ("extra", "quiet"),
    [
        ((), True),
        ((), False),  # with the live progress display
        (("--lr-schedule", "onecycle", "--optimizer", "adam"), True),
        (("--amp", "bf16", "--channels-last", "--clip-grad-norm", "1.0"), True),
    ],
)
def test_accelerator_path_reads_only_at_log_and_check_steps(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    host_reads: HostReads,
    extra: tuple[str, ...],
    quiet: bool,
) -> None:
    monkeypatch.setattr(tensors, "read_is_free", lambda device: False)
    log_every, check_every = 8, 4  # synthetic: 512 images, 16 steps an epoch
    _train(tmp_path, monkeypatch, host_reads, "--log-every", str(log_every),
           "--nonfinite-check-every", str(check_every), *extra, quiet=quiet)  # fmt: skip
    reads = _step_reads(host_reads)
    steps = range(32)
    allowed = {
        s for s in steps
        if s == 0  # the first step: its graph, trace and NaN sentinel
        or ends_interval(s, check_every) or ends_interval(s, log_every)
    }  # fmt: skip
    assert {s for s in steps if reads.get(s, 0)} <= allowed, reads
    assert all(reads.get(s, 0) > 0 for s in steps if ends_interval(s, check_every)), reads
    quiet = [s for s in steps if s not in allowed]
    assert len(quiet) == 23 and all(s not in reads for s in quiet)


def test_on_the_cpu_values_are_read_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_reads: HostReads
) -> None:
    # the counter itself: on the CPU (reads cost no sync) the loss, hits and NaN/Inf flag
    # are read every step, and the test above would see them
    _train(tmp_path, monkeypatch, host_reads, "--log-every", "8", "--nonfinite-check-every", "4")
    reads = _step_reads(host_reads)
    assert all(reads.get(s, 0) >= 3 for s in range(32)), reads


@pytest.mark.parametrize("accelerator", [False, True])
def test_clipped_steps_are_counted_alike_when_read_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_reads: HostReads, accelerator: bool
) -> None:
    if accelerator:  # the clipped flags stay on the "device" until each log step
        monkeypatch.setattr(tensors, "read_is_free", lambda device: False)
    run = _train(tmp_path, monkeypatch, host_reads, "--log-every", "8",
                 "--nonfinite-check-every", "4", "--clip-grad-norm", "0.05")  # fmt: skip
    logged = [
        r["clipped_steps"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "step"
    ]
    summary = json.loads((run / "summary.json").read_text())
    assert logged == [8, 16, 24, 32] and summary["clipped_steps"] == 32  # every step clipped


def test_a_long_run_reads_only_at_its_intervals_update_ratios_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_reads: HostReads
) -> None:
    monkeypatch.setattr(tensors, "read_is_free", lambda device: False)
    log_every, check_every = 9, 3  # 128 steps; neither ends at step 99 (the update ratios)
    _train(tmp_path, monkeypatch, host_reads, "--log-every", str(log_every),
           "--nonfinite-check-every", str(check_every), "--batch-size", "4",
           "--epochs", "1")  # fmt: skip
    reads = _step_reads(host_reads)
    update_every = MonitorConfig().update_every
    allowed = {
        s for s in range(128)
        if s == 0 or ends_interval(s, check_every) or ends_interval(s, log_every)
        or ends_interval(s, update_every) or s == 127  # the epoch's last: metrics, evaluation
    }  # fmt: skip
    assert {s for s in range(128) if reads.get(s, 0)} <= allowed, reads
    assert reads.get(update_every - 1, 0) > 0  # the update ratios' own read
    assert sum(1 for s in range(128) if s not in reads) > 75


class TinyAttention(nn.Module):
    """Token embedding, one self-attention layer, a head; the output is a dict."""

    def __init__(self, vocab: int = 11, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.attn = nn.MultiheadAttention(dim, num_heads=2, batch_first=True)
        self.head = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.embed(tokens)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return {"logits": self.head(x), "hidden": x}


def _lm_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model(batch["tokens"])["logits"]
    return nn.functional.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())


def test_watch_in_your_own_loop_reads_only_at_check_and_log_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_reads: HostReads
) -> None:
    monkeypatch.setattr(tensors, "read_is_free", lambda device: False)
    torch.manual_seed(0)
    model = TinyAttention()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    tokens = torch.randint(0, 11, (4, 6))
    batch = {"tokens": tokens, "targets": tokens.roll(1, dims=1)}
    with watch(model, _lm_loss, tmp_path / "run", check_every=4, log_every=8) as run:
        for step in range(24):  # the user's loop reads nothing itself
            host_reads.bucket = step
            optimizer.zero_grad()
            _lm_loss(model, batch).backward()
            if not run.check(step, batch):
                optimizer.step()
        host_reads.bucket = "close"
    reads = _step_reads(host_reads)
    allowed = {s for s in range(24) if s == 0 or ends_interval(s, 4) or ends_interval(s, 8)}
    assert {s for s in range(24) if reads.get(s, 0)} <= allowed, reads
    assert all(reads.get(s, 0) > 0 for s in (3, 7, 11)), reads  # the flag, read every 4
    assert len([s for s in range(24) if s not in reads]) == 17


@pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning")
def test_the_lightning_callback_reads_only_at_check_and_log_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host_reads: HostReads
) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from gradsight.integrations.lightning import GradsightCallback

    class Tagger(pl.LightningModule):  # a GRU over token sequences, one tag per token
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(7, 8)
            self.gru = nn.GRU(8, 8, batch_first=True)
            self.head = nn.Linear(8, 3)

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            tokens, tags = batch
            logits = self.head(self.gru(self.embed(tokens))[0])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), tags.flatten())
            self.log("train_loss", loss)  # Lightning's own reads: not counted
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Buckets(pl.Callback):
        def on_train_batch_start(self, trainer: Any, *args: Any) -> None:
            host_reads.bucket = trainer.global_step

    monkeypatch.setattr(tensors, "read_is_free", lambda device: False)
    host_reads.gradsight_only = True
    torch.manual_seed(0)
    tokens = torch.randint(0, 7, (96, 5))
    data = torch.utils.data.TensorDataset(tokens, tokens % 3)
    callback = GradsightCallback(tmp_path / "run", check_every=4, log_every=8)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=2, callbacks=[Buckets(), callback],
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Tagger(), torch.utils.data.DataLoader(data, batch_size=8))  # 24 steps
    reads = _step_reads(host_reads)
    allowed = {s for s in range(24) if s == 0 or ends_interval(s, 4) or ends_interval(s, 8)}
    assert {s for s in range(24) if reads.get(s, 0)} <= allowed, reads
    assert all(reads.get(s, 0) > 0 for s in (3, 7, 11)), reads  # the flag, read every 4
    assert len([s for s in range(24) if s not in reads]) == 17
