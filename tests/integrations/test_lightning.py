"""The Lightning callback on modules written here: a residual MLP, a GRU tagger (no SimpleCNN)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")
# Lightning's own use of a torch.utils._pytree name that torch deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`isinstance\\(treespec, LeafSpec\\)`:FutureWarning")

from gradsight.integrations.lightning import GradsightCallback  # noqa: E402
from gradsight.train.runfiles import read_metrics  # noqa: E402


class Block(nn.Module):
    """x + MLP(LayerNorm(x)), which turns NaN (0/0) once ``poison`` is set."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(
            nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * d, d)
        )
        self.poison = False

    def forward(self, x: Tensor) -> Tensor:
        h = self.mlp(self.norm(x))
        if self.poison:
            h = h / (h - h)
        return x + h


class ResidualMLP(pl.LightningModule):
    """Dict batches {"x", "y"}; NaN born in ``blocks.1`` from global step ``nan_at`` on."""

    def __init__(self, nan_at: int | None = None, d: int = 8) -> None:
        super().__init__()
        self.inp = nn.Linear(4, d)
        self.blocks = nn.Sequential(Block(d), Block(d))
        self.head = nn.Linear(d, 3)
        self.nan_at = nan_at

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"logits": self.head(self.blocks(self.inp(x)))}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        self.blocks[1].poison = self.nan_at is not None and self.global_step >= self.nan_at
        loss = F.cross_entropy(self(batch["x"])["logits"], batch["y"])
        self.log("train_loss", loss)
        return {"loss": loss}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


class DictData(torch.utils.data.Dataset[dict[str, Tensor]]):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def _trainer(run_dir: Path | None, **kwargs: Any) -> tuple[pl.Trainer, GradsightCallback]:
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in ("on_nonfinite", "log_every")}
    callback = GradsightCallback(run_dir=run_dir, **({"log_every": 2} | options))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, callbacks=[callback], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        **({"max_epochs": 2} | kwargs),
    )  # fmt: skip
    return trainer, callback


def _fit(module: pl.LightningModule, trainer: pl.Trainer, n: int = 64) -> None:
    torch.manual_seed(0)
    trainer.fit(module, DataLoader(DictData(n), batch_size=8))


def test_healthy_two_epochs_leave_a_complete_run_folder(tmp_path: Path) -> None:
    trainer, callback = _trainer(tmp_path / "run")
    _fit(ResidualMLP(), trainer)
    run = tmp_path / "run"
    for name in ("env.json", "config.json", "metrics.jsonl", "graph.json", "graph.svg",
                 "trace.json", "summary.json", "report.html", "curves.png"):  # fmt: skip
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 16  # 8 steps x 2 epochs
    lines = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in lines] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert {"train_loss", "loss", "epoch", "grad_norm_total", "grad_norm"} <= set(lines[-1])
    assert lines[-1]["epoch"] == 1
    trace = json.loads((run / "trace.json").read_text())
    params = {e["param"] for e in trace["events"] if e.get("param")}
    assert "blocks.1.mlp.0.weight" in params  # the first step drawn through training_step
    assert callback.run is not None and callback.run.findings == []


def test_nan_at_a_known_step_names_the_module_and_stops(tmp_path: Path) -> None:
    module = ResidualMLP(nan_at=11)  # epoch 1, its 4th step
    trainer, callback = _trainer(tmp_path / "run")
    before = None

    class Snapshot(pl.Callback):
        def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
            nonlocal before
            if trainer.global_step == 11:
                before = {k: v.clone() for k, v in module.state_dict().items()}

    trainer.callbacks.append(Snapshot())
    _fit(module, trainer)
    # stopped after step 11, whose optimizer.step ran without gradients: no update
    assert trainer.should_stop and trainer.global_step == 12
    assert before is not None
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").open()]
    nonfinite = [e for e in events if e["kind"] == "nonfinite"]
    assert len(nonfinite) == 1 and nonfinite[0]["step"] == 11 and nonfinite[0]["epoch"] == 1
    assert nonfinite[0]["module"] == "blocks.1" and nonfinite[0]["op"] == "div"
    assert nonfinite[0]["phase"] == "forward"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and "step 11" in summary["stop_reason"]
    assert (tmp_path / "run" / "nonfinite-step11.pt").is_file()
    assert callback.run is not None and "train_loss" not in str(callback.run.findings)


def test_skip_policy_drops_the_update_and_goes_on(tmp_path: Path) -> None:
    module = ResidualMLP(nan_at=5)
    trainer, callback = _trainer(None, on_nonfinite="skip", max_epochs=1)
    _fit(module, trainer)
    assert not trainer.should_stop and trainer.global_step == 8
    assert callback.run is not None and callback.run.monitor.skipped == 3  # steps 5, 6, 7
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_accumulation_and_clipping_check_once_per_optimizer_step(tmp_path: Path) -> None:
    seen: list[tuple[int, float]] = []
    trainer, callback = _trainer(
        tmp_path / "run", max_epochs=1, accumulate_grad_batches=2, gradient_clip_val=1e-3
    )

    class Norms(pl.Callback):  # after gradsight, before Lightning clips
        def on_before_optimizer_step(self, trainer: pl.Trainer, module: Any, opt: Any) -> None:
            assert callback.run is not None
            total = torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in module.parameters()])
            )
            seen.append((trainer.global_step, callback.run.monitor.last_total - float(total)))

    trainer.callbacks.append(Norms())
    _fit(ResidualMLP(), trainer)
    assert [s for s, _ in seen] == [0, 1, 2, 3]  # 8 batches, 4 optimizer steps
    assert all(abs(d) < 1e-5 for _, d in seen)  # the monitor saw the accumulated, unclipped sum
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 4


def test_amp_scaler_overflow_is_not_a_fault(tmp_path: Path) -> None:
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)  # overflows the first steps
    plugin = MixedPrecision("16-mixed", "cpu", scaler=scaler)
    trainer, callback = _trainer(tmp_path / "run", max_epochs=1, plugins=[plugin])

    class Big(ResidualMLP):
        def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
            out = super().training_step(batch, batch_idx)
            return {"loss": out["loss"] * 1e3}

    _fit(Big(), trainer)
    assert callback.run is not None
    assert callback.run.monitor.scaler_skipped >= 1 and callback.run.findings == []
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["scaler_skipped_steps"] == callback.run.monitor.scaler_skipped


def test_an_exception_in_training_step_leaves_a_failed_summary(tmp_path: Path) -> None:
    class Broken(ResidualMLP):
        def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
            if self.global_step == 3:
                raise RuntimeError("disk full")
            return super().training_step(batch, batch_idx)

    trainer, _ = _trainer(tmp_path / "run")
    with pytest.raises(RuntimeError, match="disk full"):
        _fit(Broken(), trainer)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "disk full" in summary["stop_reason"]
    assert (tmp_path / "run" / "report.html").is_file()


class Tagger(pl.LightningModule):
    """A GRU sequence tagger whose training_step takes only the batch (no batch_idx)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.rnn = nn.GRU(6, 6, batch_first=True)
        self.out = nn.Linear(6, 10)

    def training_step(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        tokens, tags = batch
        hidden, _ = self.rnn(self.emb(tokens))
        if self.global_step >= 2:
            hidden = hidden.log()  # log of a GRU's negative outputs: NaN
        return F.cross_entropy(self.out(hidden).flatten(0, 1), tags.flatten())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_sequence_model_without_batch_idx(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randint(0, 10, (32, 5), generator=g),
                         torch.randint(0, 10, (32, 5), generator=g))  # fmt: skip
    trainer, callback = _trainer(tmp_path / "run")
    trainer.fit(Tagger(), DataLoader(data, batch_size=8))
    assert trainer.should_stop and trainer.global_step == 3  # stopped after step 2
    assert callback.run is not None
    found = [f for f in callback.run.findings if f.kind == "nonfinite"]
    assert len(found) == 1 and found[0].step == 2 and found[0].op == "log"


def test_importing_without_lightning_names_the_package() -> None:
    code = (
        "import sys; sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
        "import gradsight.integrations.lightning"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "pip install 'gradsight[lightning]'" in proc.stderr.splitlines()[-1]


def test_other_ranks_check_but_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pl.Trainer, "is_global_zero", property(lambda self: False))
    trainer, callback = _trainer(tmp_path / "run")
    _fit(ResidualMLP(nan_at=3), trainer)
    assert not (tmp_path / "run").exists()  # rank 0 writes the folder, not this rank
    assert callback.run is not None and callback.run.run_dir is None
    assert [f.step for f in callback.run.findings if f.kind == "nonfinite"] == [3]
    assert trainer.should_stop  # every rank stops on the same (all-reduced) gradients


def test_the_replay_starts_from_training_steps_random_state(tmp_path: Path) -> None:
    """Dropout in the replay draws the masks the step drew: the random state kept is the one
    training_step started from (taken in on_train_batch_start, not at the first forward)."""
    at_start: list[Tensor] = []
    kept: list[Tensor] = []

    class Drawing(ResidualMLP):
        def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
            at_start.append(torch.get_rng_state())
            torch.rand(3)  # random work before the forward, e.g. augmentation
            return super().training_step(batch, batch_idx)

    callback = GradsightCallback(log_every=2)

    class Peek(pl.Callback):  # runs before gradsight's check, which resets the state
        def on_before_optimizer_step(self, *args: Any) -> None:
            assert callback.run is not None and callback.run.monitor._rng is not None
            kept.append(callback.run.monitor._rng[0])

    trainer = pl.Trainer(
        accelerator="cpu", callbacks=[Peek(), callback], max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    _fit(Drawing(), trainer, n=24)
    assert len(kept) == len(at_start) == 3
    assert all(torch.equal(a, b) for a, b in zip(at_start, kept, strict=True))
