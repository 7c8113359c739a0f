"""``gradsight check``: the pre-training checks on the model and data ``train`` would use,
as a table, as JSON, and as ``checks.json`` + ``lr_range.png`` in a folder."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from gradsight.cli.app import ExitCode
from gradsight.cli.options import add_data_model_options, add_optimizer_options, config_from_args
from gradsight.errors import ConfigError
from gradsight.preflight import CheckReport, check_prepared
from gradsight.reports.checks_render import draw_lr_range, value_text
from gradsight.reports.html import write_report
from gradsight.train import Prepared, prepare
from gradsight.train.runfiles import write_json

__all__ = ["checks_table", "register", "run_check", "run_checks_into", "write_check_files"]

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight check`` to the subcommands."""
    parser = sub.add_parser(
        "check",
        help="check data, model, init, one-batch overfit and lr before training",
        description="Run the checks an expert runs before training on the data, model and "
        "optimizer that gradsight train would use: input statistics, labels, class balance, "
        "outputs (logits or probabilities), the first loss against ln(C), activations and "
        "gradients at initialisation, overfitting one small batch, an lr range test, and "
        "train/eval differences. Exit 0 when no check fails, 1 when one does.",
    )
    add_data_model_options(parser)
    # the optimisation options of gradsight train that decide what is checked, same defaults
    add_optimizer_options(parser, "optimisation (as gradsight train)")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json", action="store_true",
        help='print {"checks": [{"name", "status", "value", "message", "fix", "details"}], '
        '"ok", "seconds"} instead of the table',
    )  # fmt: skip
    out.add_argument(
        "--out", type=Path, metavar="DIR",
        help="also write checks.json and lr_range.png into DIR (created if needed); in a run "
        "folder, its report.html is rewritten to show them",
    )  # fmt: skip
    parser.set_defaults(command=run_check)


def _check_out_dir(path: Path) -> None:
    """Refuse an ``--out`` that is a file or cannot be created, before any work is done."""
    existing = path if path.exists() else next(p for p in path.absolute().parents if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"--out {path}: {existing} is a file, not a folder; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: cannot write in {existing}; choose another --out")


def write_check_files(folder: Path, report: CheckReport) -> list[Path]:
    """Write ``checks.json`` and, when the lr range test ran, ``lr_range.png`` into
    ``folder`` (created if needed); rewrite its ``report.html`` if it has one."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "checks.json"]
    write_json(written[0], report.to_dict())
    sweep = next((c.details for c in report if c.name == "lr_range" and c.details), None)
    if sweep is not None:
        written.append(folder / "lr_range.png")
        draw_lr_range(sweep, written[-1])
    if (folder / "report.html").is_file():
        written.append(write_report(folder))
    return written


def checks_table(report: CheckReport) -> Table:
    """Return the checks as a rich table: check, status, value, what it means and the fix."""
    table = Table(title="gradsight check")
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("value", max_width=24, overflow="fold")
    table.add_column("what it means / fix", ratio=1)
    for c in report:
        words = Text(c.message)
        if c.fix and c.status != "pass":
            words.append(f"\nfix: {c.fix}", style="italic")
        table.add_row(Text(c.name), Text(c.status, style=_STYLE[c.status]),
                      Text(value_text(c.value)), words)  # fmt: skip
    return table


def _verdict(report: CheckReport) -> str:
    failed, warned = report.with_status("fail"), report.with_status("warn")
    names = ", ".join(c.name for c in failed)
    head = f"gradsight check: {len(failed)} failed" + (f" ({names})" if failed else "")
    return f"{head}, {len(warned)} warned, {len(report)} checks in {report.seconds:.1f} s"


def run_checks_into(run_dir: Path | None, prepared: Prepared, out: Console) -> CheckReport:
    """Check ``prepared`` (what ``gradsight train`` trains), print the table, and write
    ``checks.json`` and ``lr_range.png`` into ``run_dir`` (when given).

    The model, optimizer and random state are left as they were, so the training that
    follows is the same as without the checks.
    """
    report = check_prepared(prepared)
    out.print(checks_table(report))
    out.print(_verdict(report), markup=False, highlight=False)
    if run_dir is not None:
        written = write_check_files(Path(run_dir), report)
        out.print(f"Wrote {', '.join(p.name for p in written)} into {run_dir}", markup=False,
                  highlight=False)  # fmt: skip
    return report


def run_check(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight check`` and return its exit code: 0 no check failed, 1 one did."""
    config = config_from_args(args)
    if args.out is not None:
        _check_out_dir(args.out)
    prepared = prepare(config)
    if args.json:
        report = check_prepared(prepared)
        if args.out is not None:
            write_check_files(args.out, report)
        out.out(json.dumps(report.to_dict(), indent=2), highlight=False)
    else:
        info = prepared.data.info
        out.print(
            f"gradsight: checking {config.model} on {info.name} on {prepared.device}, "
            f"{config.optimizer} lr {config.lr}, batch {config.batch_size}",
            markup=False, highlight=False,
        )  # fmt: skip
        report = run_checks_into(args.out, prepared, out)
    return ExitCode.OK if report.ok else ExitCode.FAILED
