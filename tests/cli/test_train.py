"""``gradsight train`` run in-process, with the output captured and a run folder in tmp."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gradsight.checkpoint import load_checkpoint
from gradsight.cli import ExitCode, main
from gradsight.train.runfiles import RUN_FILES, read_metrics

FAST = ["--data", "synthetic", "--epochs", "2", "--batch-size", "32", "--device", "cpu"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_train_writes_complete_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, err = run_cli("train", *FAST, "--out", str(run), "--log-every", "4")
    assert code == ExitCode.OK, err
    graph_files = ["graph.json", "trace.json", "graph.svg", "graph-modules.svg"]
    if shutil.which("dot") is None:
        graph_files = ["graph.json", "trace.json", "graph.dot", "graph-modules.dot"]
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [*RUN_FILES, *graph_files, "checkpoints", "curves.png", "gradflow.png", "report.html"]
    )
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    saved = ["last.pt", "step-00000016.pt", "step-00000032.pt"]  # epoch ends
    assert checkpoints == sorted([*saved, *(f"{name}.sha256" for name in saved)])
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # plain torch.load
    assert ckpt["step"] == 32 and "conv1.weight" in ckpt["model"]
    graph = json.loads((run / "graph.json").read_text())
    weight = next(n for n in graph["nodes"] if n["name"] == "conv1.weight")
    assert weight["shape"] == [16, 1, 3, 3] and weight["grad_norm"] > 0
    trace = json.loads((run / "trace.json").read_text())
    assert trace["events"][0]["name"] == "NllLossBackward0"
    stored = [e["param"] for e in trace["events"] if e["name"] == "AccumulateGrad"]
    assert sorted(stored) == ["conv1.bias", "conv1.weight", "fc.bias", "fc.weight"]
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"] == "synthetic" and config["epochs"] == 2 and config["lr"] == 0.01
    env = json.loads((run / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["seed"] == 42
    assert env["command_line"][:2] == ["gradsight", "train"]
    for key in (
        "python",
        "torchvision",
        "cuda",
        "cudnn",
        "device_name",
        "git_commit",
        "started_at",
    ):
        assert key in env
    metrics = read_metrics(run / "metrics.jsonl")
    epochs = [m for m in metrics if m["kind"] == "epoch"]
    steps = [m for m in metrics if m["kind"] == "step"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert set(epochs[0]) == {
        "kind", "epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
        "complete",
    }  # fmt: skip
    assert all(e["complete"] is True for e in epochs)
    assert [s["step"] for s in steps] == list(range(4, 33, 4))  # 16 batches/epoch, 2 epochs
    state = torch.load(run / "model.pt", weights_only=True)
    assert list(state["conv1.weight"].shape) == [16, 1, 3, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 32
    assert summary["final"]["test_acc"] == epochs[-1]["test_acc"]
    assert "epoch 2/2" in out and f"Run folder: {run}" in out and "per-epoch summary" in out


def _values(run: Path) -> list[dict[str, object]]:
    """metrics.jsonl without the wall-clock fields."""
    return [
        {k: v for k, v in m.items() if k not in {"seconds"}}
        for m in read_metrics(run / "metrics.jsonl")
    ]


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        seed = "7" if name == "c" else "42"
        code, _, err = run_cli("train", *FAST, "--seed", seed, "--out", str(tmp_path / name))
        assert code == 0, err
    a, b, c = (_values(tmp_path / n) for n in "abc")
    assert a == b
    assert a != c  # a different seed must change something, or the check above proves nothing
    sa = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    sb = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _bad_model_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenout.py"
    path.write_text(
        textwrap.dedent(
            """
            from torch import nn
            class FiveOut(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(256, 5)
                def forward(self, x):
                    return self.fc(x.flatten(1))
            class WrongInput(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 4, 3)
                def forward(self, x):
                    return self.conv(x).mean((2, 3))
            """
        )
    )
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "imagenet"], "unknown dataset 'imagenet'"),
        (["--model", "resnet"], "unknown model 'resnet'. Valid models: simple, deep"),
        (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["--device", "tpu"], "unknown device 'tpu'. Valid devices"),
        (["--lr", "0"], "--lr must be positive, got 0.0"),
        (["--lr", "abc"], "invalid float value: 'abc'"),
        (["--batch-size", "-4"], "--batch-size must be positive, got -4"),
        (["--epochs", "0"], "--epochs must be positive, got 0"),
        (["--data", "mnist", "--data-dir", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--model", "nothere.py:Net"], "/nothere.py' does not exist"),
        (["--model", "gradsight.models:Missing"], "has no class 'Missing'"),
        (["--nonfinite-check-every", "0"], "--nonfinite-check-every must be an integer >= 1"),
        (
            ["--on-nonfinite", "skip", "--nonfinite-check-every", "5"],
            "--nonfinite-check-every is 5; use 1, or --on-nonfinite stop/warn",
        ),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(
    tmp_path: Path, args: list[str], message: str
) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli("train", *FAST, *args, "--out", str(run))
    assert code == ExitCode.USAGE == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not run.exists()


def test_model_output_and_input_mismatch(tmp_path: Path) -> None:
    path = _bad_model_file(tmp_path)
    code, _, err = run_cli(
        "train", *FAST, "--model", f"{path}:FiveOut", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "returned [2, 5]" in err and "expected logits of shape [2, 10]" in err
    assert not (tmp_path / "r").exists()
    code, _, err = run_cli(
        "train", *FAST, "--model", f"{path}:WrongInput", "--out", str(tmp_path / "r2")
    )
    assert code == 2 and "input of shape [2, 1, 16, 16]" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r2").exists()


def test_existing_run_folder_is_not_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    code, _, err = run_cli("train", *FAST, "--out", str(run))
    assert code == 2 and "already exists" in err
    assert sorted(p.name for p in run.iterdir()) == ["keep.txt"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_cpu_machine_suggests_cpu(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "train", "--data", "synthetic", "--device", "cuda", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "use --device cpu" in err and not (tmp_path / "r").exists()


def test_no_command_and_help() -> None:
    code, _, err = run_cli()
    assert code == 2 and "no command given" in err
    with pytest.raises(SystemExit) as exc:
        run_cli("train", "--help")
    assert exc.value.code == 0


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gradsight", "train", "--data", "nope"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("gradsight: error: unknown dataset 'nope'")


def test_nan_stops_with_exit_3_names_the_module_and_keeps_weights_finite(tmp_path: Path) -> None:
    path = tmp_path / "nanmodel.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            class Broken(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc1 = nn.Linear(256, 32)
                    self.act = Log()
                    self.fc2 = nn.Linear(32, 10)
                def forward(self, x):
                    return self.fc2(self.act(self.fc1(x.flatten(1))))
            class Log(nn.Module):
                def forward(self, x):
                    return torch.log(x)
            """
        )
    )
    run = tmp_path / "run"
    code, out, err = run_cli("train", *FAST, "--model", f"{path}:Broken", "--out", str(run))
    assert code == 3, err
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    nonfinite = next(e for e in events if e["kind"] == "nonfinite")
    assert (nonfinite["phase"], nonfinite["module"], nonfinite["op"]) == ("forward", "act", "log")
    assert set(nonfinite) == {
        "step", "epoch", "kind", "severity", "module", "param", "phase", "op", "value", "message",
        "params", "ranks",
    }  # fmt: skip
    assert nonfinite["params"] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert nonfinite["param"] == "fc2.weight"  # no parameter in act: the layer it feeds
    assert "error: step 0: NaN/Inf gradient" in out and "born in the forward pass in act" in out
    assert (run / "nonfinite-step0.pt").exists()
    state = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values())
    assert json.loads((run / "summary.json").read_text())["status"] == "stopped"


def test_an_infinite_lr_is_blamed_on_the_weights_not_a_layer(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, out, _ = run_cli("train", *FAST, "--lr", "inf", "--out", str(run))
    assert code == 3
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    nonfinite = next(e for e in events if e["kind"] == "nonfinite")
    assert (nonfinite["step"], nonfinite["phase"], nonfinite["op"]) == (1, "weights", None)
    assert (nonfinite["module"], nonfinite["param"]) == ("conv1", "conv1.weight")
    assert "the weights held NaN/Inf before this step's forward pass (all 4 parameters)" in out


def test_warn_policy_never_writes_nan_weights(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli(
        "train", *FAST, "--lr", "1e6", "--on-nonfinite", "warn", "--checkpoint-every", "2",
        "--out", str(run),
    )  # fmt: skip
    summary = json.loads((run / "summary.json").read_text())
    assert code == 0 and summary["status"] == "completed"
    assert not (run / "model.pt").exists() and summary["model_pt"].startswith("not written")
    assert err.count("not written: NaN/Inf in") == 1  # said once, not at every interval
    written = sorted(p.name for p in (run / "checkpoints").glob("*.pt"))
    assert written == ["last.pt", "step-00000002.pt"]  # the weights were NaN from step 3 on
    for name in written:
        model = load_checkpoint(run / "checkpoints" / name)["model"]
        assert all(torch.isfinite(v).all() for v in model.values()), name


def test_resume_refuses_options_that_would_be_ignored(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code, _, err = run_cli("train", *FAST, "--epochs", "1", "--quiet", "--out", str(run))
    assert code == 0, err
    code, _, err = run_cli("train", "--resume", str(run), "--lr", "0.5")
    assert code == 2 and "--lr 0.5 differs from the saved 0.01" in err
    assert len(err.strip().splitlines()) == 1


def test_monitor_and_checkpoint_options_are_saved_and_kept_on_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["--watch-dead-relu", "--keep-checkpoints", "2", "--checkpoint-every", "3"]
    code, _, err = run_cli("train", *FAST, *args, "--out", str(run))
    assert code == 0, err
    saved = json.loads((run / "config.json").read_text())
    assert (saved["watch_dead_relu"], saved["keep_checkpoints"], saved["checkpoint_every"]) == (
        True, 2, 3,
    )  # fmt: skip
    code, _, err = run_cli("train", "--resume", str(run), "--keep-checkpoints", "5")
    assert code == 2
    assert "--keep-checkpoints 5 differs from the saved 2; drop it" in err


def test_bad_histogram_interval_is_one_line(tmp_path: Path) -> None:
    code, _, err = run_cli(
        "train", *FAST, "--tensorboard-hist-every", "-1", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "--tensorboard-hist-every must be >= 0, got -1" in err
    assert not (tmp_path / "r").exists()
