from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradsight.config import TrainConfig
from gradsight.data.base import LoadedDataset
from gradsight.models import build_model
from gradsight.train import (
    EVENTS,
    EpochRecord,
    EventBus,
    Observer,
    Prepared,
    StepRecord,
    TrainState,
    build_optimizer,
    evaluate,
    fit,
    seed_everything,
)


def _prepared(data: LoadedDataset, **overrides: object) -> Prepared:
    config = TrainConfig(**{"batch_size": 16, "epochs": 2, "log_every": 2, **overrides})  # type: ignore[arg-type]
    seed_everything(config.seed)
    model = build_model(config.model, data.info)
    return Prepared(config, data, model, build_optimizer(config, model), torch.device("cpu"))


class Recorder(Observer):
    """Record every event name and what the state held at that moment."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.steps: list[StepRecord] = []
        self.epochs: list[EpochRecord] = []
        self.grads_seen_after_backward: list[bool] = []
        self.status: str | None = None

    def on_train_start(self, state: TrainState) -> None:
        self.names.append("train_start")

    def on_epoch_start(self, state: TrainState) -> None:
        self.names.append("epoch_start")

    def on_before_forward(self, state: TrainState) -> None:
        self.names.append("before_forward")
        assert state.inputs is not None and all(p.grad is None for p in state.model.parameters())

    def on_after_forward(self, state: TrainState) -> None:
        self.names.append("after_forward")
        assert state.loss is not None and state.loss.requires_grad

    def on_after_backward(self, state: TrainState) -> None:
        self.names.append("after_backward")
        self.grads_seen_after_backward.append(
            all(p.grad is not None for p in state.model.parameters())
        )

    def on_before_step(self, state: TrainState) -> None:
        self.names.append("before_step")

    def on_after_step(self, state: TrainState) -> None:
        self.names.append("after_step")

    def on_log(self, state: TrainState, record: StepRecord) -> None:
        self.names.append("log")
        self.steps.append(record)

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        self.names.append("epoch_end")
        self.epochs.append(record)

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.names.append("train_end")
        self.status = status


def test_events_in_order_and_counts(tiny_data: LoadedDataset) -> None:
    rec = Recorder()
    result = fit(_prepared(tiny_data), [rec])
    batches = 96 // 16
    assert result.status == "completed" and result.steps == 2 * batches
    assert rec.names[0] == "train_start" and rec.names[-1] == "train_end"
    first_step = rec.names[2:8]
    assert first_step == [
        "before_forward", "after_forward", "after_backward", "before_step", "after_step",
        "before_forward",
    ]  # fmt: skip
    assert rec.names.count("after_backward") == 2 * batches
    assert rec.names.count("log") == 2 * batches // 2
    assert rec.names.count("epoch_end") == 2
    assert all(rec.grads_seen_after_backward)
    assert set(rec.names) == set(EVENTS)
    assert rec.status == "completed"


def test_step_and_epoch_metrics_are_consistent(tiny_data: LoadedDataset) -> None:
    rec = Recorder()
    result = fit(_prepared(tiny_data), [rec])
    first_epoch = [r for r in rec.steps if r.epoch == 1]
    weighted = sum(r.loss * r.images for r in first_epoch) / sum(r.images for r in first_epoch)
    assert sum(r.images for r in first_epoch) == 96
    assert math.isclose(result.epochs[0].train_loss, weighted, rel_tol=1e-12)
    # the tiny data is learnable: the toy CNN must beat chance (1/3) clearly
    assert result.epochs[-1].test_acc > 0.9
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss


def test_loop_equals_hand_written_article_loop(tiny_data: LoadedDataset) -> None:
    """gradsight's loop computes exactly what the article's loop computes."""
    prepared = _prepared(tiny_data, epochs=1)
    seed_everything(0)
    reference = build_model("simple", tiny_data.info)
    reference.load_state_dict(prepared.model.state_dict())
    fit(prepared)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(prepared.config.seed)
    for images, labels in tiny_data.train.batches(16, shuffle=True, generator=g):
        optimizer.zero_grad()
        loss = criterion(reference(images), labels)
        loss.backward()
        optimizer.step()
    for (name, a), b in zip(
        prepared.model.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_observer_can_stop(tiny_data: LoadedDataset) -> None:
    class StopAt3(Observer):
        def on_after_step(self, state: TrainState) -> None:
            if state.step == 3:
                state.request_stop("enough")

    result = fit(_prepared(tiny_data), [StopAt3()])
    assert (result.status, result.steps, result.stop_reason) == ("stopped", 3, "enough")


def test_train_end_emitted_on_interrupt(tiny_data: LoadedDataset) -> None:
    class Interrupt(Observer):
        status: str | None = None

        def on_after_step(self, state: TrainState) -> None:
            raise KeyboardInterrupt

        def on_train_end(self, state: TrainState, status: str) -> None:
            self.status = status

    obs = Interrupt()
    with pytest.raises(KeyboardInterrupt):
        fit(_prepared(tiny_data), [obs])
    assert obs.status == "interrupted"


class _Ends(Observer):
    """Record train_end; raise there when given an error."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error, self.status = error, None

    def on_train_end(self, state: TrainState, status: str) -> None:
        self.status = status
        if self.error is not None:
            raise self.error


def test_every_observer_gets_train_end_when_one_raises_there(tiny_data: LoadedDataset) -> None:
    first, broken, also, last = _Ends(), _Ends(OSError("disk full")), _Ends(ValueError()), _Ends()
    warned = pytest.warns(RuntimeWarning, match=r"_Ends.on_train_end also failed: ValueError")
    with warned, pytest.raises(OSError, match="disk full"):  # the first, after the others ran
        fit(_prepared(tiny_data, epochs=1), [first, broken, also, last])
    assert [o.status for o in (first, broken, also, last)] == ["completed"] * 4


def test_emit_all_calls_everyone_and_raises_ctrl_c_last() -> None:
    calls: list[str] = []

    class Interrupted(Observer):
        def on_train_end(self, state: TrainState, status: str) -> None:
            calls.append("interrupted")
            raise KeyboardInterrupt

    class Closes(Observer):
        def on_train_end(self, state: TrainState, status: str) -> None:
            calls.append("closes")

    with pytest.raises(KeyboardInterrupt):
        EventBus([Interrupted(), Closes()]).emit_all("train_end", None, "interrupted")
    assert calls == ["interrupted", "closes"]


def test_evaluate_matches_manual(tiny_data: LoadedDataset) -> None:
    model = _prepared(tiny_data).model
    loss, acc = evaluate(model, tiny_data.test, batch_size=5, device=torch.device("cpu"))
    split = tiny_data.test
    assert hasattr(split, "images")
    with torch.no_grad():
        logits = model(split.images)  # type: ignore[attr-defined]
        ref_loss = nn.functional.cross_entropy(logits, split.labels).item()  # type: ignore[attr-defined]
        ref_acc = (logits.argmax(1) == split.labels).float().mean().item()  # type: ignore[attr-defined]
    assert math.isclose(loss, ref_loss, rel_tol=1e-5) and math.isclose(acc, ref_acc)
    assert model.training


def test_observer_can_skip_an_update(tiny_data: LoadedDataset) -> None:
    class SkipSecond(Observer):
        def __init__(self) -> None:
            self.before: dict[str, torch.Tensor] = {}
            self.checked = False

        def on_before_step(self, state: TrainState) -> None:
            if state.step == 1:  # the second batch
                state.skip_step = True
                self.before = {k: v.clone() for k, v in state.model.state_dict().items()}

        def on_after_step(self, state: TrainState) -> None:
            if state.step == 2:
                after = state.model.state_dict()
                assert all(torch.equal(self.before[k], after[k]) for k in after)
                self.checked = True

    rec, skipper = Recorder(), SkipSecond()
    result = fit(_prepared(tiny_data, epochs=1), [skipper, rec])
    assert skipper.checked
    assert result.steps == 6
    assert sum(r.images for r in rec.steps) == 96 - 16  # the skipped batch is left out
