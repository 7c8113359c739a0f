"""The running median the total-norm explosion test reads every step."""

from __future__ import annotations

import random
import statistics

from gradsight.health.config import MonitorConfig
from gradsight.health.norms import MedianWindow, NormChecks


def test_median_window_matches_statistics_median_as_values_come_and_go() -> None:
    rng = random.Random(0)
    for size in (1, 2, 5, 50):
        window, kept = MedianWindow(size), []
        for _ in range(300):
            value = float(rng.choice([0.0, 1.0, 1.0, 2.5])) if rng.random() < 0.3 else rng.random()
            window.append(value)
            kept = [*kept, value][-size:]
            assert list(window) == kept  # arrival order, oldest dropped first
            assert window.median() == statistics.median(kept)


def test_total_norm_explodes_against_the_running_median_of_the_last_window() -> None:
    config = MonitorConfig(median_window=4, warmup_steps=3, explode_factor=10.0)
    checks = NormChecks(config)
    for step, total in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 100.0, 100.0, 100.0, 100.0]):
        found = checks.total(step, 0, total)
        if step == 5:  # 100 > 10 x median 1
            assert [f.kind for f in found] == ["exploding"] and "100x" in found[0].message
        else:  # the window now holds 100s: the median follows (and one stretch, one report)
            assert found == []
    assert checks.totals.median() == 100.0
    restored = NormChecks(config)
    restored.load_state_dict(checks.state_dict())
    assert list(restored.totals) == [100.0] * 4 and restored.totals.median() == 100.0
