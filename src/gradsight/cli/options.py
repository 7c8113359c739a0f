"""Every command-line option, declared once, and the mapping from options to a TrainConfig."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
from pathlib import Path

from gradsight.config import AMP_MODES, LR_SCHEDULES, NONFINITE_POLICIES, OPTIMIZERS, TrainConfig
from gradsight.data.registry import FOLDER_PREFIX
from gradsight.models.user import names_a_file

__all__ = [
    "DEFAULTS", "absolute_paths", "add_data_model_options", "add_train_options", "config_from_args",
    "default_run_dir",
]  # fmt: skip

#: The defaults every option shows (one TrainConfig, so they cannot drift apart).
DEFAULTS = TrainConfig()


def add_data_model_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose the data, the model, the seed and the device."""
    g = parser.add_argument_group("data and model")
    g.add_argument(
        "--data", "--dataset", dest="dataset", default=DEFAULTS.dataset, metavar="NAME",
        help="fashion-mnist-mini (bundled, default), fashion-mnist, mnist, cifar10, synthetic, "
        "or folder:PATH (one subfolder per class)",
    )  # fmt: skip
    g.add_argument(
        "--data-dir", metavar="DIR",
        help="folder holding the dataset's files (e.g. the four IDX files of an MNIST-style set); "
        "default: a cache folder, downloaded into when online",
    )  # fmt: skip
    g.add_argument(
        "--download", action="store_true", default=None,
        help="download missing files into --data-dir with torchvision",
    )  # fmt: skip
    g.add_argument(
        "--image-size", type=int, metavar="N", help="resize folder: images to NxN (default 32)"
    )
    g.add_argument(
        "--skip-bad-images", action="store_true",
        help="folder: only; leave out image files that cannot be read (one warning each) "
        "instead of refusing the folder; summary.json counts them",
    )  # fmt: skip
    g.add_argument(
        "--model", default=DEFAULTS.model, metavar="SPEC",
        help="simple (the article's CNN, default), deep (VGG-style, 6 conv layers), "
        "path/to/file.py:ClassName or package.module:ClassName",
    )  # fmt: skip
    g.add_argument("--seed", type=int, default=DEFAULTS.seed, help="random seed (default 42)")
    g.add_argument(
        "--device", default=DEFAULTS.device,
        help="auto (cuda, then mps, then cpu; default), cpu, cuda, cuda:N or mps",
    )  # fmt: skip


def add_optimizer_options(
    parser: argparse.ArgumentParser, title: str = "optimisation"
) -> argparse._ArgumentGroup:
    """Add the optimizer and batch options ``train`` and ``check`` share; return the group."""
    g = parser.add_argument_group(title)
    g.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=OPTIMIZERS)
    g.add_argument("--lr", type=float, default=DEFAULTS.lr, help="learning rate (default 0.01)")
    g.add_argument("--momentum", type=float, default=DEFAULTS.momentum, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=DEFAULTS.weight_decay)
    g.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="default 64")
    return g


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Add the optimisation and output options of ``gradsight train``."""
    g = add_optimizer_options(parser)
    g.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="default 3")
    g.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default=DEFAULTS.lr_schedule,
        help="learning rate per step: none (default), cosine decay to 0 after "
        "--warmup-epochs of linear warm-up, or onecycle (peaking at --lr)",
    )  # fmt: skip
    g.add_argument(
        "--warmup-epochs", type=float, default=DEFAULTS.warmup_epochs, metavar="E",
        help="linear warm-up of the schedule, in epochs (default 0)",
    )  # fmt: skip
    fast = parser.add_argument_group("speed")
    fast.add_argument(
        "--amp", choices=AMP_MODES, default=DEFAULTS.amp,
        help="mixed precision: bf16 autocast (CPU or GPU), fp16 autocast with a GradScaler "
        "(CUDA); default off",
    )  # fmt: skip
    fast.add_argument(
        "--compile", action="store_true",
        help="torch.compile the model (the first steps compile; needs a C++ compiler on the CPU)",
    )  # fmt: skip
    fast.add_argument(
        "--channels-last", action="store_true",
        help="model and batches in channels-last memory (faster convolutions on many GPUs)",
    )  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out", type=Path, metavar="RUN_DIR",
        help="run folder to create (default: runs/<time>-<model>-<data>); must not hold files",
    )  # fmt: skip
    out.add_argument(
        "--log-every", type=int, default=DEFAULTS.log_every, metavar="N",
        help="steps between progress updates and step lines in metrics.jsonl (default 20)",
    )  # fmt: skip
    out.add_argument("--quiet", action="store_true", help="print only the final summary")
    ckpt = parser.add_argument_group("checkpoints and reproducibility")
    ckpt.add_argument(
        "--checkpoint-every", type=int, default=DEFAULTS.checkpoint_every, metavar="N",
        help="also checkpoint every N optimizer steps (default 0: only at epoch ends)",
    )  # fmt: skip
    ckpt.add_argument(
        "--checkpoint-dir", type=Path, metavar="DIR", help="default: RUN_DIR/checkpoints"
    )
    ckpt.add_argument(
        "--keep-checkpoints", type=int, default=DEFAULTS.keep_checkpoints, metavar="K",
        help="numbered checkpoints to keep besides last.pt (default 3)",
    )  # fmt: skip
    ckpt.add_argument(
        "--resume", type=Path, metavar="RUN_DIR|FILE",
        help="continue a run from its newest valid checkpoint (or this checkpoint file), "
        "bit-identically; the run's saved config is used",
    )  # fmt: skip
    ckpt.add_argument(
        "--deterministic", action="store_true",
        help="deterministic kernels only (torch.use_deterministic_algorithms, cuDNN, cuBLAS)",
    )  # fmt: skip
    health = parser.add_argument_group("gradient health")
    health.add_argument(
        "--on-nonfinite", choices=NONFINITE_POLICIES, default=DEFAULTS.on_nonfinite,
        help="on a NaN/Inf gradient: stop (default; exit code 3, after saving the batch and "
        "naming where it was born), skip that update and go on, or warn and go on",
    )  # fmt: skip
    health.add_argument(
        "--nonfinite-check-every", type=int, default=DEFAULTS.nonfinite_check_every,
        metavar="N",
        help="read the NaN/Inf flag (one device sync) every N steps instead of every step "
        "(default 1); for GPUs where the per-step sync costs time. With N > 1 a NaN is "
        "found up to N-1 steps late and where it was born is not replayed; not with skip",
    )  # fmt: skip
    health.add_argument(
        "--watch-dead-relu", action="store_true",
        help="report ReLU modules most of whose units never fire (forward hooks; opt-in)",
    )  # fmt: skip
    health.add_argument(
        "--clip-grad-norm", type=float, metavar="X",
        help="clip the total gradient norm to X before each step (the article uses 1.0); a "
        "NaN/Inf total skips the update, except on a GPU with --nonfinite-check-every N > 1, "
        "where nothing is read per step",
    )  # fmt: skip
    health.add_argument(
        "--check", action="store_true",
        help="run gradsight check first (checks.json, lr_range.png, a report.html section); "
        "stop with exit code 1 if a check fails; skipped on --resume",
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build the frozen :class:`TrainConfig` from parsed options (the CLI's only Namespace use).

    Relative paths (a model file, ``folder:PATH``, ``--data-dir``) are made absolute here,
    when the run starts, so ``config.json`` works from any directory (export, report,
    ``--resume``).
    """
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return absolute_paths(TrainConfig(**{k: v for k, v in vars(args).items() if k in names}))


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """Return ``config`` with its model file, image folder and data folder made absolute.

    >>> config = absolute_paths(TrainConfig(model="nets.py:Tiny", dataset="folder:pngs"))
    >>> config.model == os.path.abspath("nets.py") + ":Tiny", config.dataset.startswith("folder:/")
    (True, True)
    """
    where, _, cls = config.model.rpartition(":")
    model = f"{_absolute(where)}:{cls}" if where and names_a_file(where) else config.model
    dataset = config.dataset
    if dataset.startswith(FOLDER_PREFIX) and dataset[len(FOLDER_PREFIX) :]:
        dataset = FOLDER_PREFIX + _absolute(dataset[len(FOLDER_PREFIX) :])
    data_dir = _absolute(config.data_dir) if config.data_dir else config.data_dir
    return dataclasses.replace(config, model=model, dataset=dataset, data_dir=data_dir)


def _slug(text: str) -> str:
    tail = text.rsplit(":", 1)[-1] if ":" in text else text
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(tail).name).strip("-").lower() or "run"


def default_run_dir(config: TrainConfig, root: Path = Path("runs")) -> Path:
    """Return ``runs/<UTC time>-<model>-<data>``, a fresh run folder name."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{_slug(config.model)}-{_slug(config.dataset)}"
