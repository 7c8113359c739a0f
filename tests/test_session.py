"""``gradsight.watch`` in a user's own loop, on models written here (not SimpleCNN)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

import gradsight
from gradsight.train.runfiles import read_metrics


class TinyLM(nn.Module):
    """tokens (B, T) -> {"logits": (B, T, V), "hidden": ...}, with dropout and a LayerNorm."""

    def __init__(self, vocab: int = 11, d: int = 8) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.rnn = nn.GRU(d, d, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(d, vocab)
        self.poison = False

    def forward(self, tokens: Tensor) -> dict[str, Tensor]:
        hidden, _ = self.rnn(self.emb(tokens))
        hidden = self.drop(self.norm(hidden))
        if self.poison:
            hidden = hidden / (hidden - hidden)  # 0/0 in the model's own forward
        return {"logits": self.head(hidden), "hidden": hidden}


class Regressor(nn.Module):
    """A sequence regressor with batch norm: float sequences (B, T, 3) -> (B, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 6, batch_first=True)
        self.bn = nn.BatchNorm1d(6)
        self.out = nn.Linear(6, 1)

    def forward(self, x: Tensor) -> Tensor:
        seq, _ = self.rnn(x)
        return self.out(self.bn(seq[:, -1]))


def lm_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    logits = model(batch["tokens"])["logits"]  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1), batch["next"].flatten())


def reg_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    return F.mse_loss(model(batch[0]), batch[1])


def _lm_batches(n: int) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(0)
    tokens = [torch.randint(0, 11, (4, 9), generator=g) for _ in range(n)]
    return [{"tokens": t, "next": t.roll(-1, 1)} for t in tokens]


def _train(model: nn.Module, batches: list, loss_fn, run=None, poison_at: int = -1) -> None:  # type: ignore[no-untyped-def]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step, batch in enumerate(batches):
        model.poison = step == poison_at  # type: ignore[assignment]
        opt.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        if run is not None:
            if run.check(step, batch):
                break
            run.log(step, loss=float(loss.detach()))
        opt.step()


def test_the_graph_is_drawn_when_the_run_closes_not_in_the_loop(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, run_dir = TinyLM(), tmp_path / "lm"
    drawings = {"graph.svg", "graph.dot", "graph-modules.svg", "graph-modules.dot"}
    with gradsight.watch(model, lm_loss, run_dir) as run:
        _train(model, _lm_batches(2), lm_loss, run)
        inside = {p.name for p in run_dir.iterdir()}
    assert {"graph.json", "trace.json"} <= inside and not drawings & inside  # no Graphviz wait
    after = {p.name for p in run_dir.iterdir()}
    assert {"graph.svg", "graph-modules.svg"} <= after or {
        "graph.dot",
        "graph-modules.dot",
    } <= after


def test_a_dict_output_language_model_leaves_a_complete_run_folder(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyLM()
    run_dir = tmp_path / "lm"
    with gradsight.watch(model, lm_loss, run_dir, log_every=2) as run:
        _train(model, _lm_batches(6), lm_loss, run)
    names = {p.name for p in run_dir.iterdir()}
    assert {"env.json", "config.json", "metrics.jsonl", "summary.json", "graph.json",
            "trace.json", "curves.png", "gradflow.png", "report.html"} <= names  # fmt: skip
    assert "graph.svg" in names or "graph.dot" in names
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["steps"], summary["findings"]) == ("completed", 6, 0)
    lines = read_metrics(run_dir / "metrics.jsonl")
    assert [m["step"] for m in lines] == list(range(6)) and all(m["loss"] > 0 for m in lines)
    assert "grad_norm" in lines[1] and "head" in lines[1]["grad_norm"]  # a log step
    trace = json.loads((run_dir / "trace.json").read_text())
    params = {e["param"] for e in trace["events"] if e["param"]}
    assert params == {n for n, _ in model.named_parameters()}
    env = json.loads((run_dir / "env.json").read_text())
    assert env["command_line"] and "torch" in env


def test_watching_changes_nothing_in_the_training(tmp_path: Path) -> None:
    """The first-step replay sets gradients, buffers and the random state aside."""
    results = []
    for watched in (False, True):
        torch.manual_seed(0)
        model = Regressor()
        g = torch.Generator().manual_seed(1)
        batches = [(torch.randn(5, 4, 3, generator=g), torch.randn(5, 1, generator=g))
                   for _ in range(4)]  # fmt: skip
        if watched:
            with gradsight.watch(model, reg_loss, tmp_path / "reg") as run:
                _train(model, batches, reg_loss, run)
        else:
            _train(model, batches, reg_loss)
        results.append(({k: v.clone() for k, v in model.state_dict().items()}, torch.rand(1)))
    (plain, r1), (watched_state, r2) = results
    assert all(torch.equal(plain[k], watched_state[k]) for k in plain)  # BN stats included
    assert torch.equal(r1, r2)  # the global random stream went on as without watching
    assert json.loads((tmp_path / "reg" / "summary.json").read_text())["status"] == "completed"


def test_an_exception_in_the_loop_still_finishes_the_folder(tmp_path: Path) -> None:
    model = Regressor()
    run_dir = tmp_path / "boom"
    with (
        pytest.raises(RuntimeError, match="data loader died"),
        gradsight.watch(model, reg_loss, run_dir),
    ):
        raise RuntimeError("data loader died")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["stop_reason"]) == (
        "failed",
        "RuntimeError: data loader died",
    )
    assert (run_dir / "report.html").is_file() and (run_dir / "curves.png").is_file()


def test_a_nan_in_a_named_submodule_is_named_in_events(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyLM()
    run_dir = tmp_path / "nan"
    with gradsight.watch(model, lm_loss, run_dir) as run:
        _train(model, _lm_batches(6), lm_loss, run, poison_at=3)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    (nonfinite,) = [e for e in events if e["kind"] == "nonfinite"]
    assert (nonfinite["step"], nonfinite["phase"], nonfinite["module"], nonfinite["op"]) == (
        3, "forward", "", "div",
    )  # fmt: skip
    assert "TinyLM.forward" in nonfinite["message"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["stop_reason"]) == (
        "stopped",
        "non-finite gradient at step 3",
    )


def test_without_run_dir_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    model = TinyLM()
    seen: list[gradsight.Finding] = []
    with gradsight.watch(model, lm_loss, on_finding=seen.append) as run:
        _train(model, _lm_batches(3), lm_loss, run, poison_at=1)
    assert [f.kind for f in seen] == ["nonfinite"] and run.findings == seen
    assert list(tmp_path.iterdir()) == []


def test_a_used_run_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="already holds files"):
        gradsight.watch(nn.Linear(2, 2), run_dir=tmp_path)
