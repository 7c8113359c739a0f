"""Smoke tests of benchmarks/: each script's quick mode runs and prints its ratio line.

No timing is asserted (the machine's speed is not the code's); what is checked is that each
harness runs end to end on tiny data, prints what its docstring promises, and that the pieces
with a right answer (the IDX files written for the quick run, the ratio's wording, the GPU
script's timeouts) have it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gradsight.data import load_dataset
from gradsight.data.mnist import MNIST_FILES
from gradsight.health.config import MonitorConfig

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):
    """Import a benchmark script as a module (their folder is not a package)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import importlib

    return importlib.import_module


def test_bench_train_quick_prints_every_variant_and_the_goal(bench, capsys) -> None:
    import gradsight.cli.train as cli_train
    import gradsight.train.setup as train_setup

    fit, load = cli_train.fit, train_setup.load_dataset
    bench("bench_train").main(["--quick"])
    out = capsys.readouterr().out
    variants = ("article loop", "no-.item() loop", "gradsight train", "gradsight fit, no observers",
                "article loop (again)", "gradsight train, whole command")  # fmt: skip
    for variant in variants:
        assert re.search(rf"^{re.escape(variant)}.*\s[\d,]+\s+[\d.]+\s+[\d.]+$", out, re.M), out
    assert re.search(r"^goal gradsight train / article loop >= 0\.95: (met|NOT met) \(\d\.\d{3}\)$",
                     out, re.M)  # fmt: skip
    assert "where the time goes" in out
    for variant in variants[:-1]:  # the whole command is not split into steps
        assert re.search(rf"^{re.escape(variant)}\s+[\d,]+\s+[\d.]+\s+-?[\d,]+\s+[+-][\d,]+$",
                         out, re.M), out  # fmt: skip
    # the harness put the library back as it found it
    assert (cli_train.fit, train_setup.load_dataset) == (fit, load)


def test_bench_train_article_loop_trains_like_gradsight(bench) -> None:
    """The hand loops start from the weights and batches fit() uses, and learn the same way."""
    from gradsight.config import TrainConfig
    from gradsight.train import fit, prepare

    module = bench("bench_train")
    config = TrainConfig(dataset="synthetic", device="cpu", epochs=1)
    weights = []
    for run in (module.article_loop, module.no_item_loop, lambda p, e: fit(p, [])):
        prepared = prepare(config)
        run(prepared, 1)
        weights.append(prepared.model.fc.weight.detach().clone())
    assert all(w.equal(weights[0]) for w in weights[1:])


def test_bench_trace_quick_prints_ratios_and_the_snapshot(bench, capsys) -> None:
    bench("bench_trace").main(["--quick"])
    out = capsys.readouterr().out
    assert "saved+graph" in out
    assert re.search(r"^SimpleCNN\s+5\s.*goal <= 1\.2: full (met|NOT met), norm (met|NOT met)$",
                     out, re.M), out  # fmt: skip
    assert "run folder's first-step snapshot" in out
    assert "drawn at the end" in out
    assert re.search(r"^SimpleCNN(\s+\d+\.\d){5}$", out, re.M), out


def test_time_to_accuracy_quick_prints_both_sides_the_ratio_and_a_plot(
    bench, capsys, tmp_path: Path
) -> None:
    plot = tmp_path / "curve.png"
    assert bench("bench_time_to_accuracy").main(["--quick", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^gradsight\s+time to 50%: ", out, re.M), out
    assert re.search(r"^article\s+time to 50%: ", out, re.M), out
    assert re.search(r"^ratio gradsight / article(: | < )", out, re.M), out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_to_accuracy_skips_without_the_files(bench, capsys, tmp_path: Path) -> None:
    code = bench("bench_time_to_accuracy").main(["--data-dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("skipped: the four Fashion-MNIST IDX files are not in")
    assert "apt-get install dataset-fashion-mnist" in out


def test_quick_idx_files_load_as_fashion_mnist(bench, tmp_path: Path) -> None:
    folder = bench("bench_time_to_accuracy").write_small_idx(tmp_path, 96, 32)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)
    data = load_dataset("fashion-mnist", data_dir=str(folder), download=False)
    assert (len(data.train), len(data.test)) == (96, 32)
    assert data.info.image_size == (28, 28)


def test_ratio_line_says_met_not_met_or_a_bound(bench) -> None:
    module = bench("bench_time_to_accuracy")
    curve = module.Curve

    def side(name: str, reached: float | None, points: list[tuple[float, float]]):
        return curve(name, points, reached)

    fast = side("gradsight", 30.0, [(30.0, 0.91)])
    assert module.ratio_line(fast, side("article", 120.0, [(120.0, 0.9)]), 0.9) == (
        "ratio gradsight / article: 0.250; goal <= 0.5: met"
    )
    assert module.ratio_line(fast, side("article", 40.0, [(40.0, 0.9)]), 0.9).endswith("NOT met")
    capped = side("article", None, [(100.0, 0.85), (200.0, 0.88)])
    assert module.ratio_line(fast, capped, 0.9) == (
        "ratio gradsight / article < 0.150 (the article loop did not reach 90% in 200 s, "
        "best 88.00%); goal <= 0.5: met"
    )
    assert "did not reach" in module.ratio_line(side("gradsight", None, []), capped, 0.9)


def test_gpu_bench_script_is_valid_bash_and_times_out_every_step() -> None:
    script = BENCH / "gpu_bench.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text(encoding="utf-8")
    steps = re.findall(r'^step "[^"]+" (\d+) \\\n\s+"\$PY" benchmarks/(\S+)', text, re.M)
    assert [name for _, name in steps] == [
        "bench_train.py", "bench_time_to_accuracy.py", "bench_trace.py", "bench_monitor.py",
        "gpu_sync_check.py",
    ]  # fmt: skip
    assert sum(int(limit) for limit, _ in steps) < 300  # the whole script under 5 minutes
    assert 'timeout --kill-after=10 "$limit" "$@"' in text


def test_gpu_sync_check_says_it_needs_cuda(bench, capsys) -> None:
    assert bench("gpu_sync_check").main(["--device", "cpu"]) == 0
    assert "needs a CUDA device (--device cpu); nothing checked" in capsys.readouterr().out


def test_gpu_sync_check_puts_syncs_in_step_buckets_and_names_unexpected_ones(bench) -> None:
    import warnings
    from types import SimpleNamespace

    module = bench("gpu_sync_check")
    log: list[warnings.WarningMessage] = []
    buckets = module.SyncBuckets(log)

    def sync(line: int) -> None:
        message = UserWarning("called a synchronizing CUDA operation")
        log.append(warnings.WarningMessage(message, UserWarning, "loop.py", line))

    for step in range(7):  # one epoch of 7 steps; step 2 syncs though it should not
        buckets.on_before_forward(SimpleNamespace(step=step))
        if step in (0, 2, 3, 6):
            sync(100 + step)
        if step == 5:  # another warning is not a sync
            log.append(warnings.WarningMessage(UserWarning("other"), UserWarning, "x.py", 1))
    sync(200)  # the evaluation, before epoch_end: the last step's bucket
    buckets.on_epoch_end(SimpleNamespace(step=7, epoch=1), None)
    sync(300)
    buckets._close("end")
    buckets.steps = 7
    assert buckets.counts == {0: 1, 2: 1, 3: 1, 6: 2, "epoch 1 end": 1}
    assert buckets.epoch_ends == {6} and buckets.first[2] == "loop.py:102"
    monitor = MonitorConfig()  # sentinels every 200 steps, update ratios every 100
    assert module.unexpected(buckets, log_every=8, check_every=4, monitor=monitor) == [2]
    assert module.unexpected(buckets, log_every=8, check_every=1, monitor=monitor) == []
    assert module.unexpected(buckets, 8, 4, MonitorConfig(update_every=3)) == []  # step 2
