"""The public names at the top level, loaded on first use."""

from __future__ import annotations

import subprocess
import sys

import gradsight


def test_the_entry_points_are_at_the_top_level() -> None:
    from gradsight import (
        Finding,
        GradMonitor,
        TrainConfig,
        capture_backward,
        fit,
        prepare,
        trace_backward,
    )

    assert {"GradMonitor", "Finding", "TrainConfig", "prepare", "fit", "capture_backward",
            "trace_backward"} <= set(gradsight.__all__)  # fmt: skip
    result = fit(prepare(TrainConfig(dataset="synthetic", epochs=1, device="cpu")))
    assert result.status == "completed" and result.steps > 0
    assert callable(capture_backward) and callable(trace_backward)
    assert Finding.__module__ == "gradsight.health.findings"
    assert GradMonitor.__module__ == "gradsight.health.monitor"


def test_every_name_in_all_resolves() -> None:
    assert all(getattr(gradsight, name) is not None for name in gradsight.__all__)


def test_importing_gradsight_loads_no_torch() -> None:
    code = "import sys, gradsight; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
