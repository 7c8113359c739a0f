"""``gradsight train``: validate everything, then train with progress and record a run folder."""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import traceback
from pathlib import Path

from rich.console import Console
from torch import nn

from gradsight.checkpoint import CheckpointObserver
from gradsight.cli.app import ExitCode, build_parser
from gradsight.cli.check import run_checks_into
from gradsight.cli.checkpointing import checkpoint_settings, find_resume
from gradsight.cli.options import (
    DEFAULTS,
    add_data_model_options,
    add_train_options,
    config_from_args,
    default_run_dir,
)
from gradsight.cli.progress import ProgressDisplay, epoch_table
from gradsight.config import TrainConfig
from gradsight.errors import ConfigError, GradsightError
from gradsight.health.findings import EventLog, Finding
from gradsight.health.monitor import GradMonitor, MonitorConfig
from gradsight.reports.graph_files import write_first_step
from gradsight.reports.html import write_report, write_run_reports
from gradsight.train import Observer, fit, prepare
from gradsight.train.device import resolve_device
from gradsight.train.distributed import (
    Ranks,
    broadcast_object,
    init_distributed,
    leave_process_group,
    local_module,
    ranks_from_env,
    weights_agree,
)
from gradsight.train.loop import one_line
from gradsight.train.recorder import RunRecorder
from gradsight.train.runfiles import write_json
from gradsight.train.snapshot import FirstStepSnapshot
from gradsight.train.tensorboard import TensorBoardLogger, require_tensorboard

__all__ = ["register", "run_train"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight train`` to the subcommands."""
    parser = sub.add_parser(
        "train",
        help="train a CNN with live progress and write a run folder",
        description="Train a CNN (the article's SimpleCNN by default, on the bundled "
        "Fashion-MNIST subset) and write runs/<name>/ with config.json, env.json, "
        "metrics.jsonl, model.pt and summary.json.",
    )
    add_data_model_options(parser)
    add_train_options(parser)
    tb = parser.add_argument_group("tensorboard (pip install 'gradsight[tensorboard]')")
    tb.add_argument(
        "--tensorboard", action="store_true",
        help="also write TensorBoard event files into RUN_DIR/tensorboard",
    )  # fmt: skip
    tb.add_argument(
        "--tensorboard-hist-every", type=int, default=DEFAULTS.tensorboard_hist_every,
        metavar="N",
        help="steps between gradient histograms with --tensorboard; 0: none (default 100)",
    )  # fmt: skip
    parser.set_defaults(command=run_train)


def _check_run_dir(path: Path) -> None:
    """Refuse a run folder that exists with files, or that cannot be created."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"--out {path} already exists and is not an empty folder; choose another --out "
            "or remove it (gradsight never overwrites a run)"
        )
    parent = next(p for p in path.absolute().parents if p.exists())  # "/" always does
    if not parent.is_dir():
        raise ConfigError(f"--out {path}: {parent} is a file, not a folder; choose another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: cannot create folders in {parent}; choose another --out")


def _typed_fields(argv: list[str]) -> set[str]:
    """The TrainConfig fields whose options were typed on the command line (``argv`` after
    the program name), whatever their value: the options parsed again with no defaults."""

    parser = build_parser()
    for sub in (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)):
        for action in sub.choices["train"]._actions:
            action.default = argparse.SUPPRESS
    typed = vars(parser.parse_args(argv))
    return {f.name for f in dataclasses.fields(TrainConfig) if f.name in typed}


def _refuse_changed_options(given: TrainConfig, saved: TrainConfig, typed: set[str]) -> None:
    """A resumed run keeps its saved config: refuse a typed option that would be ignored."""
    changed = [
        f.name for f in dataclasses.fields(TrainConfig)
        if f.name in typed and getattr(given, f.name) != getattr(saved, f.name)
    ]  # fmt: skip
    if changed:
        name = changed[0]
        raise ConfigError(
            f"--resume continues the run with its saved config, but --{name.replace('_', '-')} "
            f"{getattr(given, name)!r} differs from the saved {getattr(saved, name)!r}; drop it "
            "(or start a new run)"
        )


def run_train(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight train`` and return its exit code.

    Every input is checked (config, data, model, device) before the run folder is created,
    so bad input leaves nothing behind. Under ``torchrun`` every process trains its shard
    (:mod:`gradsight.train.distributed`); rank 0 alone prints progress and writes files.
    """
    ranks = ranks_from_env()
    if ranks is None:
        return _run_train(args, out, err, None)
    if not ranks.is_main:  # the other ranks train quietly; their errors still show
        out, args.quiet = Console(file=io.StringIO()), True
    init_distributed(ranks, resolve_device(config_from_args(args).device))
    code = _run_train(args, out, err, ranks)  # an exception exits without waiting: torchrun
    leave_process_group()  # then stops the other ranks
    return code


def _new_run_dir(path: Path, ranks: Ranks | None) -> Path:
    """Rank 0's run folder, checked, on every rank (a default name holds the time)."""
    problem = None
    if ranks is None or ranks.is_main:
        try:
            _check_run_dir(path)
        except ConfigError as exc:
            problem = str(exc)
    path, problem = broadcast_object((path, problem))
    if problem is not None:
        raise ConfigError(problem)
    return Path(path)


def _run_train(args: argparse.Namespace, out: Console, err: Console, ranks: Ranks | None) -> int:
    given = config_from_args(args)
    resumed = find_resume(args, out) if args.resume else None
    if resumed is not None:
        _refuse_changed_options(given, resumed.config, _typed_fields(args.argv[1:]))
    config = resumed.config if resumed else given
    if config.tensorboard:
        require_tensorboard()
    run_dir = Path(
        os.path.abspath(resumed.run_dir if resumed else args.out or default_run_dir(config))
    )
    if resumed is None:
        run_dir = _new_run_dir(run_dir, ranks)
    settings = checkpoint_settings(config, args.checkpoint_dir, run_dir)
    prepared = prepare(config)
    start = resumed.restore(prepared, err) if resumed else None
    info = prepared.data.info
    n_params = sum(p.numel() for p in prepared.model.parameters())
    where = str(prepared.device)
    if ranks is not None:
        where = f"{ranks.world_size} processes ({prepared.device.type}, DDP)"
    batch = f"batch {config.batch_size}" + (f" x {ranks.world_size}" if ranks else "")
    out.print(
        f"gradsight: training {config.model} ({n_params:,} parameters) on {info.name} "
        f"({info.train_size:,} train / {info.test_size:,} test, {info.channels}x"
        f"{info.image_size[0]}x{info.image_size[1]}) on {where}, "
        f"{config.optimizer} lr {config.lr}, {batch}, {config.epochs} epochs",
        highlight=False,
    )
    events = EventLog(run_dir / "events.jsonl")

    def report(finding: Finding) -> None:
        events.write(finding)
        _show(out, finding)

    main = ranks is None or ranks.is_main
    monitor = GradMonitor(  # on every rank: each replays its own batch; rank 0 reports
        local_module(prepared.model), MonitorConfig.of(config),
        on_finding=report if main else None, run_dir=run_dir if main else None,
    )  # fmt: skip
    if resumed is not None and (saved := resumed.checkpoint.observer_state("monitor")):
        monitor.load_state_dict(saved)  # its medians and what it already reported
    observers: list[Observer] = [
        RunRecorder(run_dir, argv=args.argv),
        monitor,  # before the progress display, so findings print as they happen
        events,
        FirstStepSnapshot(on_snapshot=lambda trace: write_first_step(run_dir, trace, draw=False)),
    ]
    if config.tensorboard:  # after the monitor, whose grad_norm_total it logs
        observers.append(TensorBoardLogger(run_dir / "tensorboard", config.tensorboard_hist_every))
    observers.append(CheckpointObserver(settings, run_dir, {"monitor": monitor}))
    if start is not None:  # the first step's graph and trace belong to the original run
        observers = [o for o in observers if not isinstance(o, FirstStepSnapshot)]
    if not main:  # only rank 0 writes the run folder, checkpoints and TensorBoard files
        observers = [monitor]
    if args.check and start is None:  # the checks leave model, optimizer and RNG untouched
        checked = run_checks_into(run_dir, prepared, out) if main else None
        if not broadcast_object(checked.ok if checked is not None else True):  # rank 0 decides
            if main:
                write_report(run_dir)  # the run folder shows the failed checks
            err.print(
                "gradsight: a pre-training check failed (see the table and "
                f"{run_dir / 'checks.json'}); fix it, or train without --check",
                markup=False,
            )
            return ExitCode.FAILED
    if not args.quiet:
        observers.append(ProgressDisplay(out, prepared.data.train.num_batches(config.batch_size)))
    try:
        result = fit(prepared, observers, start)
    except KeyboardInterrupt:
        if main:
            write_run_reports(run_dir)  # best effort: a second Ctrl-C stops it
        err.print(f"gradsight: interrupted; partial run kept in {run_dir}", markup=False)
        raise
    except Exception as exc:  # in the user's model or data: their traceback, then ours
        if not isinstance(exc, GradsightError):
            err.print(traceback.format_exc().rstrip(), markup=False, highlight=False)
        if main:
            write_run_reports(run_dir)
        err.print(
            f"gradsight: training failed: {one_line(exc)}; the run folder {run_dir} keeps its "
            "summary, plots, report and newest checkpoint",
            markup=False,
        )
        return ExitCode.FAILED
    if ranks is not None:
        _check_ranks_agree(prepared.model, ranks, run_dir, err)
    if main:
        write_run_reports(run_dir)
    out.print(epoch_table(result.epochs))
    if result.status != "completed":
        err.print(f"gradsight: training {result.status}: {result.stop_reason}", markup=False)
    out.print(f"Run folder: {run_dir}", highlight=False)
    if result.status == "completed":
        return ExitCode.OK
    nonfinite = any(f.kind == "nonfinite" for f in monitor.findings)
    return ExitCode.NONFINITE if nonfinite else ExitCode.FAILED


def _check_ranks_agree(model: nn.Module, ranks: Ranks, run_dir: Path, err: Console) -> None:
    """Compare the ranks' final weights; rank 0 records the answer in summary.json."""
    same = weights_agree(model)
    if not ranks.is_main:
        return
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    summary["distributed"] = {"world_size": ranks.world_size, "weights_identical": same}
    write_json(run_dir / "summary.json", summary)
    if not same:
        err.print(
            "gradsight: warning: the ranks' final weights differ (a non-deterministic kernel "
            "or an op outside DDP); model.pt holds rank 0's",
            markup=False,
        )


_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


def _show(out: Console, finding: Finding) -> None:
    out.print(
        f"gradsight: {finding.severity}: step {finding.step}: {finding.message}",
        style=_STYLE.get(finding.severity), markup=False, highlight=False,
    )  # fmt: skip
