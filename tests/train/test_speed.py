"""The speed options (--amp, --compile, --channels-last, --lr-schedule) train to the default's
accuracy band; bad combinations are refused in one line; a schedule resumes bit-identically.

The CLI runs in-process on the bundled data (one short epoch) and on a residual CNN written
here; the fp16 path's GradScaler is driven on the CPU directly through the loop.
"""

from __future__ import annotations

import io
import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from gradsight.cli import ExitCode, main
from gradsight.config import TrainConfig
from gradsight.data import TensorSplit
from gradsight.health.monitor import GradMonitor, MonitorConfig
from gradsight.train import EventBus, Observer, TrainState, fit, prepare, train_one_epoch
from gradsight.train.speed import build_scheduler

ONE_EPOCH = ["--epochs", "1", "--device", "cpu", "--quiet", "--log-every", "50"]

RESIDUAL = '''
import os
import torch
from torch import nn


class ResidualCNN(nn.Module):
    """conv stem -> one residual block with batch norm -> pooled head; with dropout."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1))
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(8, num_classes)
        self.calls = 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            if self.calls == int(os.environ.get("GS_AT", "-1")):
                raise KeyboardInterrupt
            self.calls += 1
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.block(h))
        return self.head(self.drop(h.mean((2, 3))))
'''


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _final(run: Path) -> dict[str, float]:
    return json.loads((run / "summary.json").read_text())["final"]


@pytest.fixture(scope="module")
def default_acc(tmp_path_factory: pytest.TempPathFactory) -> float:
    run = tmp_path_factory.mktemp("default") / "run"
    code, _, err = run_cli("train", *ONE_EPOCH, "--out", str(run))
    assert code == ExitCode.OK, err
    return float(_final(run)["test_acc"])


@pytest.mark.parametrize(
    "options",
    [["--amp", "bf16"], ["--channels-last"], ["--compile"], ["--amp", "bf16", "--channels-last"]],
    ids=["amp-bf16", "channels-last", "compile", "bf16+channels-last"],
)
def test_speed_options_reach_the_default_accuracy_band(
    tmp_path: Path, default_acc: float, options: list[str]
) -> None:
    if "--compile" in options and not shutil.which("g++"):
        pytest.skip("torch.compile needs a C++ compiler on the CPU")
    run = tmp_path / "run"
    code, _, err = run_cli("train", *ONE_EPOCH, *options, "--out", str(run))
    assert code == ExitCode.OK, err
    acc = float(_final(run)["test_acc"])
    assert default_acc > 0.6 and abs(acc - default_acc) <= 0.03, (acc, default_acc)
    config = json.loads((run / "config.json").read_text())
    assert config["amp"] == ("bf16" if "bf16" in options else "off")
    assert config["channels_last"] == ("--channels-last" in options)
    assert config["compile"] == ("--compile" in options)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_train_a_residual_cnn(tmp_path: Path, schedule: str) -> None:
    (tmp_path / "nets.py").write_text(textwrap.dedent(RESIDUAL))
    run = tmp_path / "run"
    code, _, err = run_cli(
        "train", *ONE_EPOCH, "--model", f"{tmp_path / 'nets.py'}:ResidualCNN",
        "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.1", "--lr-schedule", schedule,
        "--warmup-epochs", "0.25", "--channels-last", "--amp", "bf16", "--out", str(run),
    )  # fmt: skip
    assert code == ExitCode.OK, err
    assert float(_final(run)["test_acc"]) > 0.5  # 10 classes: it learnt
    steps = [json.loads(x) for x in (run / "metrics.jsonl").open() if '"kind": "step"' in x]
    lrs = [s["lr"] for s in steps]
    # logged every 50 steps: the first line ends the 50-step warm-up, at the peak
    assert lrs[0] == pytest.approx(0.1, rel=1e-2) and lrs == sorted(lrs, reverse=True)
    assert lrs[-1] < 0.01  # annealed by the last step


def test_a_scheduled_run_resumes_bit_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nets.py").write_text(textwrap.dedent(RESIDUAL))
    args = ["--data", "synthetic", "--epochs", "2", "--batch-size", "32", "--device", "cpu",
            "--quiet", "--model", f"{tmp_path / 'nets.py'}:ResidualCNN",
            "--lr-schedule", "cosine", "--warmup-epochs", "0.5", "--lr", "0.05"]  # fmt: skip
    assert run_cli("train", *args, "--out", str(tmp_path / "reference"))[0] == ExitCode.OK
    monkeypatch.setenv("GS_AT", "20")  # inside epoch 2, after the epoch-1 checkpoint
    code, _, _ = run_cli("train", *args, "--out", str(tmp_path / "run"))
    assert code == ExitCode.INTERRUPTED
    monkeypatch.delenv("GS_AT")
    code, _, err = run_cli("train", "--resume", str(tmp_path / "run"), "--quiet")
    assert code == ExitCode.OK, err
    a = torch.load(tmp_path / "reference" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the schedule went on where it was


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--amp", "fp16"], "--amp fp16 needs a CUDA GPU"),
        (["--amp", "fp8"], "invalid choice: 'fp8'"),
        (["--warmup-epochs", "0.5"], "--warmup-epochs needs --lr-schedule cosine or onecycle"),
        (["--lr-schedule", "cosine", "--warmup-epochs", "5"], "--warmup-epochs must be >= 0"),
    ],
)
def test_bad_speed_options_are_refused_in_one_line(
    tmp_path: Path, options: list[str], message: str
) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli("train", *ONE_EPOCH, *options, "--out", str(run))
    assert code == ExitCode.USAGE
    assert message in err and len(err.strip().splitlines()) == 1
    assert not run.exists()  # nothing written


def test_compile_without_a_compiler_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    code, _, err = run_cli("train", *ONE_EPOCH, "--compile", "--out", str(tmp_path / "run"))
    assert code == ExitCode.USAGE and "apt-get install g++" in err


def test_the_fp16_path_lets_the_scaler_skip_overflowing_steps() -> None:
    """The loop's GradScaler path (fp16 on CUDA) driven on the CPU: the first steps overflow
    at a huge scale, the scaler skips them itself, the monitor counts them without a fault."""
    prepared = prepare(TrainConfig(device="cpu", log_every=10))
    model = nn.Sequential(prepared.model, Scale())  # large logits: gradients up to ~1e4
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = TrainState(
        prepared.config, prepared.data.info, model, prepared.optimizer, prepared.device,
        scaler=torch.amp.GradScaler("cpu", init_scale=2.0**127),
    )  # fmt: skip
    monitor = GradMonitor(model, MonitorConfig(scaler_patience=40))
    monitor.on_train_start(state)
    train_one_epoch(state, _first_batches(prepared, 40), EventBus([monitor]), torch.Generator())
    assert 1 <= monitor.scaler_skipped < 40  # the first steps overflowed, then it trained
    assert not [f for f in monitor.findings if f.kind in ("nonfinite", "scaler")]
    assert state.scaler is not None and state.scaler.get_scale() < 2.0**127
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class Scale(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1e4


class _First:
    """The first ``n`` batches of a split, as a split."""

    def __init__(self, split, n: int) -> None:  # type: ignore[no-untyped-def]
        self.split, self.n = split, n

    def __len__(self) -> int:
        return self.n * 64

    def num_batches(self, batch_size: int) -> int:
        return self.n

    def batches(self, batch_size: int, **kwargs):  # type: ignore[no-untyped-def]
        for i, batch in enumerate(self.split.batches(batch_size, **kwargs)):
            if i == self.n:
                return
            yield batch


def _first_batches(prepared, n: int) -> _First:  # type: ignore[no-untyped-def]
    return _First(prepared.data.train, n)


def test_onecycle_peaks_at_lr_and_cosine_ends_at_zero() -> None:
    model = nn.Linear(2, 2)
    for schedule in ("onecycle", "cosine"):
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        config = TrainConfig(lr=0.2, lr_schedule=schedule, epochs=2)
        sched = build_scheduler(config, opt, steps_per_epoch=10)
        assert sched is not None
        lrs = []
        for _ in range(20):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert max(lrs) == pytest.approx(0.2, rel=1e-6)
        assert lrs[-1] < 0.02
    assert build_scheduler(TrainConfig(), opt, 10) is None


class _Look(Observer):
    """Records what the first step ran with, then stops the run."""

    def on_after_forward(self, state: TrainState) -> None:
        assert state.inputs is not None and state.outputs is not None
        self.dtype = state.outputs.dtype
        state.request_stop("looked")


@pytest.mark.parametrize(
    ("options", "dtype", "channels_last"),
    [({}, torch.float32, False), ({"amp": "bf16"}, torch.bfloat16, False),
     ({"channels_last": True}, torch.float32, True)],
)  # fmt: skip
def test_the_step_runs_in_the_asked_precision_and_memory_format(
    options: dict[str, object], dtype: torch.dtype, channels_last: bool
) -> None:
    prepared = prepare(TrainConfig(device="cpu", **options))  # type: ignore[arg-type]
    look, formats = _Look(), []
    conv = prepared.model.conv1  # type: ignore[union-attr]
    conv.register_forward_hook(  # its 16-channel output: channels-last only if asked
        lambda m, i, out: formats.append(out.is_contiguous(memory_format=torch.channels_last))
    )
    fit(prepared, [look])
    assert look.dtype == dtype and formats[0] == channels_last


def test_compile_wraps_the_model() -> None:
    from gradsight.autograd.attribution import is_compiled

    assert is_compiled(prepare(TrainConfig(device="cpu", compile=True)).model)
    assert not is_compiled(prepare(TrainConfig(device="cpu")).model)


def test_fp16_clipping_sees_the_unscaled_gradients() -> None:
    """Clipping runs on true gradients: unscaled before it, as torch's AMP recipe says."""
    prepared = prepare(TrainConfig(device="cpu", clip_grad_norm=50.0))
    state = TrainState(
        prepared.config, prepared.data.info, prepared.model, prepared.optimizer,
        prepared.device, scaler=torch.amp.GradScaler("cpu", init_scale=2.0**16),
    )  # fmt: skip
    train_one_epoch(state, _first_batches(prepared, 5), EventBus([]), torch.Generator())
    assert state.clipped_steps == 0  # true norms are ~1; scaled ones would be ~65,000


def test_three_channel_batches_go_channels_last() -> None:
    images = torch.randn(16, 3, 8, 8)
    split = TensorSplit(images, torch.randint(0, 2, (16,)))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    config = TrainConfig(device="cpu", channels_last=True, batch_size=8)
    seen = []

    class Inputs(Observer):
        def on_after_forward(self, state: TrainState) -> None:
            assert state.inputs is not None
            seen.append(state.inputs.is_contiguous(memory_format=torch.channels_last))

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    info = prepare(TrainConfig(device="cpu", dataset="synthetic")).data.info
    state = TrainState(config, info, model, opt, torch.device("cpu"))
    train_one_epoch(state, split, EventBus([Inputs()]), torch.Generator())
    assert seen == [True, True]
    assert not images.is_contiguous(memory_format=torch.channels_last)  # the data itself is not
