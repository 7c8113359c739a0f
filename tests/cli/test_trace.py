from __future__ import annotations

import io
import json
from pathlib import Path

from gradsight.cli import main


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_text_trace_of_the_default_run() -> None:
    code, out, err = run_cli("trace", "--device", "cpu")
    assert code == 0, err
    assert out.splitlines()[0].startswith("backward pass: 12 nodes in execution order")
    assert "ReLU backward: passed the gradient where the input was > 0" in out
    assert "AccumulateGrad: stored into fc.weight.grad" in out


def test_json_to_stdout_and_file(tmp_path: Path) -> None:
    code, out, err = run_cli("trace", "--data", "synthetic", "--json", "--device", "cpu")
    assert code == 0, err
    events = json.loads(out)["events"]
    assert events[0]["name"] == "NllLossBackward0" and len(events) == 12
    path = tmp_path / "t.json"
    code, out, _ = run_cli("trace", "--data", "synthetic", "--json", "--out", str(path))
    assert code == 0

    def untimed(evs: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in e.items() if k != "seconds"} for e in evs]

    assert untimed(json.loads(path.read_text())["events"]) == untimed(events)  # same seed
    assert f"wrote {path}" in out


def test_bad_batch_size() -> None:
    code, _, err = run_cli("trace", "--batch-size", "-1")
    assert code == 2 and "--batch-size must be positive, got -1" in err


def test_norm_detail_keeps_the_norms_and_drops_the_rest() -> None:
    runs = {}
    for detail in ("full", "norm"):
        code, out, err = run_cli(
            "trace", "--data", "synthetic", "--json", "--device", "cpu", "--detail", detail
        )
        assert code == 0, err
        runs[detail] = json.loads(out)["events"]
    full, norm = runs["full"], runs["norm"]
    assert [e["name"] for e in norm] == [e["name"] for e in full]
    for a, b in zip(full, norm, strict=True):
        for x, y in zip(a["produced"], b["produced"], strict=True):
            if x is not None:
                assert y["norm"] == x["norm"] and y["zeros"] is None and y["max_abs"] is None
    relu = next(e for e in norm if e["name"] == "ReluBackward0")
    assert relu["explanation"] == "ReLU backward: passed the gradient where the input was > 0"
    code, _, err = run_cli("trace", "--detail", "some")
    assert code == 2 and "invalid choice: 'some'" in err
