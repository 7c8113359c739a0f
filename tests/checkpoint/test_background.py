"""Checkpoint files written on the background writer thread while training goes on.

The training thread serializes each checkpoint and hands the bytes to one writer thread
(``gradsight-checkpoint``): the files must be the same bytes as a synchronous write, training
must not wait for the disk, at most one write may be in flight, a failed write must fail the
run with a one-line message, and the test-only ``step:N`` crash hook is read once and waits
for the writes in flight. The model is a small residual MLP, not the default CNN.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import gradsight.checkpoint.io as ckpt_io
import gradsight.checkpoint.observer as ckpt_observer
import gradsight.train.loop as loop
from gradsight.checkpoint import CheckpointObserver, CheckpointSettings, load_checkpoint
from gradsight.checkpoint.io import CRASH_ENV
from gradsight.cli import ExitCode, main
from gradsight.config import TrainConfig
from gradsight.data.base import LoadedDataset
from gradsight.errors import CheckpointError
from gradsight.train import Observer, Prepared, TrainState, build_optimizer, fit, seed_everything

MODEL = f"{Path(__file__).resolve()}:ResidualMLP"
ENOSPC = "[Errno 28] No space left on device"


class ResidualMLP(nn.Module):
    """Flatten, project, one pre-norm residual block, classify."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, image_size: int = 8) -> None:
        super().__init__()
        width = 24
        self.inp = nn.Linear(in_channels * image_size * image_size, width)
        self.block = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
        )
        self.out = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1))
        return self.out(h + self.block(h))


def _prepared(data: LoadedDataset, every: int = 2) -> Prepared:
    """96 images in batches of 16: 6 steps an epoch, 12 in all; Adam, so it has state."""
    config = TrainConfig(
        model=MODEL, batch_size=16, epochs=2, log_every=3, optimizer="adam", lr=1e-3,
        checkpoint_every=every,
    )  # fmt: skip
    seed_everything(config.seed)
    model = ResidualMLP(data.info.channels, data.info.num_classes, data.info.image_size[0])
    return Prepared(config, data, model, build_optimizer(config, model), torch.device("cpu"))


def _observer(folder: Path, background: bool = True, every: int = 2) -> CheckpointObserver:
    settings = CheckpointSettings(folder, every=every, keep=3, background=background)
    return CheckpointObserver(settings, folder.parent / "run")


def _patch_write(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[Path], None]
) -> Callable[..., None]:
    """Replace the atomic write with one that calls ``before(path)`` first; return the real one."""
    real = ckpt_io.atomic_write

    def write(path: Path, data: bytes, crash_point: str | None = None) -> None:
        before(path)
        real(path, data, crash_point)

    monkeypatch.setattr(ckpt_io, "atomic_write", write)
    return real


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """(entered, release): every atomic write sets ``entered``, then waits for ``release``."""
    entered, release = threading.Event(), threading.Event()

    def block(path: Path) -> None:
        entered.set()
        assert release.wait(5), "the write was never released"

    _patch_write(monkeypatch, block)
    yield entered, release
    release.set()  # never leave a writer thread blocked behind a failed test


def test_background_files_are_byte_identical_to_synchronous_ones(
    tiny_data: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: 0.0))  # epoch seconds
    writers: set[str] = set()
    _patch_write(monkeypatch, lambda path: writers.add(threading.current_thread().name))
    files: dict[bool, dict[str, bytes]] = {}
    for background in (True, False):
        writers.clear()
        folder = tmp_path / f"background-{background}"
        observer = _observer(folder, background)
        fit(_prepared(tiny_data), [observer])
        assert writers == {"gradsight-checkpoint" if background else "MainThread"}
        assert [p.name for p in observer.saved] == [
            f"step-{n:08d}.pt" for n in (2, 4, 6, 8, 10, 12)
        ]
        files[background] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    assert list(files[True]) == [
        "last.pt", "last.pt.sha256",
        "step-00000008.pt", "step-00000008.pt.sha256",
        "step-00000010.pt", "step-00000010.pt.sha256",
        "step-00000012.pt", "step-00000012.pt.sha256",
    ]  # fmt: skip
    assert files[True] == files[False]
    assert load_checkpoint(tmp_path / "background-True" / "last.pt")["step"] == 12


def test_save_returns_while_the_write_is_pending_and_wait_finishes_it(
    tmp_path: Path, gate: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = gate
    store = _observer(tmp_path / "ck").store
    payload = {"format": 1, "step": 7, "w": torch.arange(4.0)}
    path = store.save_in_background(payload)  # returns: the write is blocked
    payload["w"].add_(100)  # the training thread moves on; the snapshot was taken
    assert entered.wait(5) and not path.exists() and not release.is_set()
    release.set()
    store.wait()
    assert path.name == "step-00000007.pt"
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4.0))
    assert load_checkpoint(path.with_name("last.pt"))["step"] == 7


class _TrainsOnWhileBlocked(Observer):
    """After the first checkpoint is handed off, train two more steps, then release its write."""

    def __init__(
        self, checkpoints: CheckpointObserver, entered: threading.Event, release: threading.Event
    ) -> None:
        self.checkpoints, self.entered, self.release = checkpoints, entered, release
        self.pending_at: list[int] = []  # steps done while the first write was blocked

    def on_after_step(self, state: TrainState) -> None:
        if self.checkpoints.saved and not self.release.is_set():
            assert self.entered.wait(5)
            assert not self.checkpoints.saved[0].exists()
            self.pending_at.append(state.step)
            if len(self.pending_at) == 2:
                self.release.set()


def test_training_goes_on_while_a_checkpoint_is_written(
    tiny_data: LoadedDataset, tmp_path: Path, gate: tuple[threading.Event, threading.Event]
) -> None:
    checkpoints = _observer(tmp_path / "ck")
    watcher = _TrainsOnWhileBlocked(checkpoints, *gate)
    result = fit(_prepared(tiny_data), [checkpoints, watcher])
    assert watcher.pending_at == [3, 4]  # step 2's checkpoint was still being written
    assert result.status == "completed"
    for name, step in [("step-00000012.pt", 12), ("last.pt", 12), ("step-00000010.pt", 10)]:
        assert load_checkpoint(tmp_path / "ck" / name)["step"] == step  # train_end waited


def test_at_most_one_write_is_in_flight(
    tiny_data: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock, inside, most = threading.Lock(), [0], [0]
    real = ckpt_io.atomic_write

    def slow_write(path: Path, data: bytes, crash_point: str | None = None) -> None:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)  # longer than a training step of this model
        real(path, data, crash_point)
        with lock:
            inside[0] -= 1

    monkeypatch.setattr(ckpt_io, "atomic_write", slow_write)
    checkpoints = _observer(tmp_path / "ck", every=1)
    fit(_prepared(tiny_data, every=1), [checkpoints])
    assert len(checkpoints.saved) == 12 and most[0] == 1
    assert [p.name for p in checkpoints.store.numbered()] == [
        "step-00000010.pt",
        "step-00000011.pt",
        "step-00000012.pt",
    ]  # pruned in order, after each write


def test_the_next_save_waits_for_the_write_in_flight(
    tmp_path: Path, gate: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = gate
    store = _observer(tmp_path / "ck").store
    first = store.save_in_background({"format": 1, "step": 1})
    assert entered.wait(5)
    second: list[Path] = []
    saver = threading.Thread(
        target=lambda: second.append(store.save_in_background({"format": 1, "step": 2}))
    )
    saver.start()
    saver.join(0.3)
    assert saver.is_alive() and not second  # blocked behind the first write
    release.set()
    saver.join(5)
    store.wait()
    assert second and [load_checkpoint(p)["step"] for p in (first, second[0])] == [1, 2]


def _fail_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def full_disk(path: Path) -> None:
        if path.name == name:
            raise OSError(28, "No space left on device", str(path.with_name(f".{name}.tmp")))

    _patch_write(monkeypatch, full_disk)


class _Ends(Observer):
    def __init__(self) -> None:
        self.status: str | None = None

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.status = status


@pytest.mark.parametrize("background", [True, False])
@pytest.mark.parametrize("failing", [4, 12])  # found by the next save / by the last epoch's
def test_a_failed_write_fails_the_run_naming_the_checkpoint(
    tiny_data: LoadedDataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    background: bool,
    failing: int,
) -> None:
    folder = tmp_path / "ck"
    _fail_at(monkeypatch, f"step-{failing:08d}.pt")
    ends = _Ends()
    with pytest.raises(CheckpointError) as caught:
        fit(_prepared(tiny_data), [ends, _observer(folder, background)])
    path = folder / f"step-{failing:08d}.pt"
    assert str(caught.value) == f"could not write checkpoint {path}: {ENOSPC}"
    assert isinstance(caught.value.__cause__, OSError)
    # before train_end in both modes: the summary a recorder writes then says "failed"
    assert ends.status == "failed"
    assert not (folder / f"step-{failing + 2:08d}.pt").exists()  # the next save never started


class _Stops(Observer):
    """Asks the loop to stop at step 5, while step 4's checkpoint write is failing."""

    def on_after_step(self, state: TrainState) -> None:
        if state.step == 5:
            time.sleep(0.05)  # let the writer thread fail first
            state.request_stop("enough")


def test_a_stopped_run_fails_on_a_write_in_flight_before_train_end(
    tiny_data: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "ck"
    _fail_at(monkeypatch, "step-00000004.pt")
    ends = _Ends()
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*step-00000004\.pt"):
        fit(_prepared(tiny_data), [ends, _observer(folder), _Stops()])
    # waited for at the stop's epoch end: train_end (and the summary) see "failed"
    assert ends.status == "failed"


class _Breaks(Observer):
    """The user's code fails at step 5, while step 4's checkpoint write is failing."""

    def on_after_step(self, state: TrainState) -> None:
        if state.step == 5:
            time.sleep(0.05)  # let the writer thread fail first
            raise RuntimeError("the user's own bug")


def test_a_failing_run_keeps_its_own_error_and_warns_of_the_write(
    tiny_data: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "ck"
    _fail_at(monkeypatch, "step-00000004.pt")
    warned = pytest.warns(RuntimeWarning, match="could not write checkpoint .*step-00000004.pt")
    with warned, pytest.raises(RuntimeError, match="the user's own bug"):
        fit(_prepared(tiny_data), [_observer(folder), _Breaks()])


def test_cli_exits_non_zero_with_one_line_when_the_last_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    _fail_at(monkeypatch, "step-00000016.pt")  # the epoch-end checkpoint, the last one
    argv = ["train", "--data", "synthetic", "--model", MODEL, "--epochs", "1", "--batch-size"]
    argv += ["32", "--device", "cpu", "--checkpoint-every", "5", "--quiet", "--out", str(run)]
    err = io.StringIO()
    code = main(argv, stdout=io.StringIO(), stderr=err)
    assert code == ExitCode.FAILED != ExitCode.OK
    message = f"could not write checkpoint {run}/checkpoints/step-00000016.pt: {ENOSPC}"
    lines = [line for line in err.getvalue().splitlines() if message in line]
    assert len(lines) == 1 and lines[0].startswith("gradsight: training failed: CheckpointError")
    assert "Traceback" not in err.getvalue()
    assert load_checkpoint(run / "checkpoints" / "step-00000015.pt")["step"] == 15


def test_step_crash_hook_is_read_once_and_waits_for_the_write_in_flight(
    tiny_data: LoadedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _patch_write(monkeypatch, lambda path: time.sleep(0.05))  # slower than the steps
    folder = tmp_path / "ck"
    calls: list[tuple[str, bool]] = []  # (point, step 2's checkpoint on disk at that moment)
    monkeypatch.setattr(
        ckpt_observer,
        "crash_if_requested",
        lambda point: calls.append((point, (folder / "last.pt.sha256").is_file())),
    )
    monkeypatch.setenv(CRASH_ENV, "step:3")
    checkpoints = _observer(folder)

    class ChangeTheHook(Observer):  # after train start the variable is no longer read
        def on_after_step(self, state: TrainState) -> None:
            monkeypatch.setenv(CRASH_ENV, f"step:{state.step + 1}")

    fit(_prepared(tiny_data), [checkpoints, ChangeTheHook()])
    assert calls == [("step:3", True)]  # once, after step 3, with step 2's files complete
    monkeypatch.delenv(CRASH_ENV)
    calls.clear()
    fit(_prepared(tiny_data), [_observer(tmp_path / "ck2")])
    assert calls == []  # no hook set: never called
