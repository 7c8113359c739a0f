"""Wall time to 90% test accuracy on the full Fashion-MNIST: gradsight vs the article's loop.

Both sides train the article's SimpleCNN (``gradsight.models.SimpleCNN(1, 10, 28)``) on the
60,000 Fashion-MNIST training images read from the same four IDX files (Debian's
``dataset-fashion-mnist``: ``--data-dir /usr/share/datasets/fashion-mnist``), and evaluate
on all 10,000 test images after every epoch; a side stops at the first epoch whose test
accuracy reaches ``--target``, or when its wall time passes ``--max-seconds``.

- ``gradsight``: ``gradsight train`` run in process (``gradsight.cli.main``) with
  ``--data fashion-mnist`` (the in-memory pipeline: the images normalised once and batched
  by index), everything it writes on (monitor, run folder, first-step snapshot,
  checkpoints), and the recipe ``--recipe`` (default :data:`RECIPE`, the fastest to 90% of
  those measured here on 2 CPU cores: see benchmarks/RESULTS.md). An observer appended
  after the CLI's own reads each epoch's test accuracy and stops the run at the target.
- ``article``: the article's loop written with torchvision's pipeline:
  ``datasets.FashionMNIST`` (PIL images), ``transforms.Compose([ToTensor(),
  Normalize(mean, std)])`` (the training set's mean and std, the same normalisation as
  gradsight's), ``DataLoader(batch_size=64, shuffle=True, num_workers=--article-workers)``,
  CrossEntropyLoss, ``SGD(lr=0.01)``, ``running_loss += loss.item()`` every step; its
  evaluation a ``DataLoader(batch_size=1000)`` over the test set under ``torch.no_grad()``.

Wall time runs from before the data is read (gradsight: the ``gradsight.cli.main`` call;
article: the ``FashionMNIST`` datasets built) to the end of the epoch, its evaluation
included, whose test accuracy reaches the target. Not counted: the process start-up and
imports, and for the article side gunzipping the IDX files into torchvision's
``FashionMNIST/raw`` layout (where its download would have put them). Printed: each side's
curve, both times and their ratio (goal: gradsight / article <= 0.5); written: a PNG of test
accuracy against wall time for both (``--plot``).

    python benchmarks/bench_time_to_accuracy.py [--data-dir /usr/share/datasets/fashion-mnist]
        [--target 0.9] [--max-seconds 1800] [--article-workers 0] [--recipe "..."]
        [--sides gradsight,article] [--plot runs/time_to_accuracy.png] [--quick]
"""

from __future__ import annotations

import argparse
import gzip
import io
import lzma
import shlex
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import timed_cli_fit
from gradsight.cli import main as cli_main
from gradsight.data.mnist import MNIST_FILES
from gradsight.models import SimpleCNN
from gradsight.train import EpochRecord, Observer, TrainState

#: gradsight's recipe: the fastest to 90% on this 2-core CPU of those tried (RESULTS.md).
RECIPE = (
    "--optimizer sgd --momentum 0.9 --lr 0.1 --batch-size 128 --epochs 4 --lr-schedule onecycle "
    "--amp bf16 --channels-last"
)
#: the recipe of ``--quick``: the same options, 2 epochs
QUICK_RECIPE = RECIPE.replace("--epochs 4", "--epochs 2")
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
GOAL = 0.5


@dataclass
class Curve:
    """One side's test accuracy after each epoch, against wall time from its start."""

    name: str
    points: list[tuple[float, float]] = field(default_factory=list)  # (seconds, accuracy)
    reached: float | None = None  # seconds when the target was first reached
    note: str = ""

    @property
    def best(self) -> float:
        return max((acc for _, acc in self.points), default=float("nan"))

    def add(self, seconds: float, accuracy: float) -> None:
        """Record one epoch's test accuracy, and print it as it comes (long runs)."""
        self.points.append((seconds, accuracy))
        print(
            f"{self.name:<10} epoch {len(self.points)}: {seconds:.1f} s, test accuracy "
            f"{accuracy:.2%}",
            flush=True,
        )


class StopAtTarget(Observer):
    """Record each epoch's test accuracy and wall time; stop the run at the target or cap."""

    def __init__(self, curve: Curve, started: float, target: float, max_seconds: float) -> None:
        self.curve, self.started = curve, started
        self.target, self.max_seconds = target, max_seconds

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        seconds = time.perf_counter() - self.started
        self.curve.add(seconds, record.test_acc)
        if record.test_acc >= self.target:
            self.curve.reached = seconds
            state.request_stop(f"test accuracy {record.test_acc:.2%} reached the target")
        elif seconds > self.max_seconds:
            state.request_stop(f"--max-seconds {self.max_seconds:g} passed")


def run_gradsight(
    data_dir: Path, recipe: str, target: float, max_seconds: float, out: Path, device: str = "cpu"
) -> Curve:
    """``gradsight train`` with ``recipe`` in process, stopped at ``target`` accuracy."""
    curve = Curve("gradsight")
    argv = ["train", "--quiet", "--out", str(out), "--data", "fashion-mnist"]
    argv += ["--data-dir", str(data_dir), "--device", device, *shlex.split(recipe)]
    stdout, stderr = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with timed_cli_fit([StopAtTarget(curve, started, target, max_seconds)]):
        code = cli_main(argv, stdout=stdout, stderr=stderr)
    curve.note = f"gradsight train {recipe}; whole command {time.perf_counter() - started:.1f} s"
    if code not in (0, 1) or not curve.points:  # 1: stopped at the target, as asked
        raise RuntimeError(
            f"gradsight train exited {code}:\n{stdout.getvalue()}{stderr.getvalue()}"
        )
    return curve


def torchvision_root(data_dir: Path, folder: Path) -> Path:
    """Gunzip (or copy) the four IDX files into ``folder/FashionMNIST/raw``; return ``folder``."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        gz, plain = data_dir / f"{name}.gz", data_dir / name
        if plain.exists():
            shutil.copyfile(plain, raw / name)
        else:
            with gzip.open(gz, "rb") as src, open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return folder


def _train_mean_std(root: Path) -> tuple[float, float]:
    from torchvision import datasets

    pixels = datasets.FashionMNIST(root, train=True, download=False).data.double() / 255
    return float(pixels.mean()), float(pixels.std(correction=0))


def run_article(
    root: Path,
    target: float,
    max_seconds: float,
    workers: int,
    device: str = "cpu",
    max_epochs: int = 1000,
) -> Curve:
    """The article's loop on torchvision's DataLoader pipeline, stopped at ``target``."""
    from torchvision import datasets, transforms

    curve = Curve("article", note=f"DataLoader(batch_size=64, num_workers={workers}), SGD lr 0.01")
    mean, std = _train_mean_std(root)  # constants in a script: computed before the clock
    torch.manual_seed(42)
    started = time.perf_counter()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
    train_set = datasets.FashionMNIST(root, train=True, download=False, transform=transform)
    test_set = datasets.FashionMNIST(root, train=False, download=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=64, shuffle=True, num_workers=workers
    )
    test_loader = torch.utils.data.DataLoader(
        test_set, batch_size=1000, shuffle=False, num_workers=workers
    )
    model = SimpleCNN(1, 10, 28).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(max_epochs):
        model.train()
        running_loss = 0.0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            outputs = model(images)  # (64, 10)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        accuracy = _article_accuracy(model, test_loader, device)
        seconds = time.perf_counter() - started
        curve.add(seconds, accuracy)
        if accuracy >= target:
            curve.reached = seconds
            break
        if seconds > max_seconds:
            break
    return curve


def _article_accuracy(model: nn.Module, loader: Iterable[Any], device: str) -> float:
    """The article's evaluation: eval mode, no_grad, ``torch.max`` and ``.item()`` per batch."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            _, predicted = torch.max(model(images), 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
    return correct / total


def plot(curves: Sequence[Curve], target: float, path: Path, title: str) -> None:
    """Write test accuracy against wall time for every side, each marked where it hit the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for curve in curves:
        seconds = [s for s, _ in curve.points]
        label = curve.name + (
            f": {target:.0%} at {curve.reached:.0f} s" if curve.reached is not None
            else f": best {curve.best:.2%}, not {target:.0%}"
        )  # fmt: skip
        (line,) = ax.plot(seconds, [100 * a for _, a in curve.points], marker="o", label=label)
        if curve.reached is not None:
            ax.axvline(curve.reached, color=line.get_color(), linestyle=":", linewidth=1)
    ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(left=0)
    ax.set(xlabel="wall time (s), data loading and evaluations included",
           ylabel="test accuracy (%)", title=title)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = 0x0800 | (3 if array.ndim == 3 else 1)  # unsigned bytes, 3 or 1 dimensions
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_small_idx(folder: Path, train: int, test: int) -> Path:
    """The first ``train``/``test`` images of the bundled subset as four IDX .gz files."""
    assets = resources.files("gradsight.data").joinpath("assets")
    npz = np.load(
        io.BytesIO(lzma.decompress(assets.joinpath("fashion-mnist-mini.npz.xz").read_bytes()))
    )
    arrays = (npz["train_images"][:train], npz["train_labels"][:train],
              npz["test_images"][:test], npz["test_labels"][:test])  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(MNIST_FILES, arrays, strict=True):
        _write_idx(folder / f"{name}.gz", array)
    return folder


def _print_curve(curve: Curve, target: float) -> None:
    points = ", ".join(f"{s:.0f}s {a:.2%}" for s, a in curve.points)
    if curve.reached is not None:
        reached = f"{curve.reached:.1f} s"
    else:
        last = curve.points[-1][0] if curve.points else float("nan")
        reached = f"not reached in {last:.0f} s (best {curve.best:.2%})"
    print(f"{curve.name:<10} {curve.note}")
    print(f"{curve.name:<10} after each epoch: {points}")
    print(f"{curve.name:<10} time to {target:.0%}: {reached}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=DEBIAN_DIR, help=f"the IDX files (default {DEBIAN_DIR})"
    )
    parser.add_argument("--target", type=float, default=0.9, help="test accuracy (default 0.9)")
    parser.add_argument(
        "--max-seconds", type=float, default=1800.0,
        help="each side stops after the epoch that passes this wall time (default 1800)",
    )  # fmt: skip
    parser.add_argument(
        "--article-workers", type=int, default=0,
        help="the article DataLoader's num_workers (default 0: the fastest on 2 cores here)",
    )  # fmt: skip
    parser.add_argument(
        "--recipe", default=RECIPE, help=f"gradsight train options (default: {RECIPE})"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--sides", default="gradsight,article", help="which sides, comma-separated")
    parser.add_argument("--plot", default="runs/time_to_accuracy.png", help="the PNG to write")
    parser.add_argument(
        "--quick", action="store_true",
        help="a smoke run on 1,024/256 bundled images written as IDX files, target 50%%",
    )  # fmt: skip
    return parser


def ratio_line(mine: Curve, theirs: Curve, target: float) -> str:
    """The time-to-target ratio gradsight / article, or what bounds it, and the verdict."""
    if mine.reached is None:
        return f"ratio gradsight / article: none, gradsight did not reach {target:.0%}"
    if theirs.reached is not None:
        ratio = mine.reached / theirs.reached
        return f"ratio gradsight / article: {ratio:.3f}; goal <= {GOAL}: " + (
            "met" if ratio <= GOAL else "NOT met"
        )
    last = theirs.points[-1][0] if theirs.points else float("nan")
    bound = mine.reached / last
    return (
        f"ratio gradsight / article < {bound:.3f} (the article loop did not reach {target:.0%} "
        f"in {last:.0f} s, best {theirs.best:.2%}); goal <= {GOAL}: "
        + ("met" if bound <= GOAL else "undecided")
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(args.data_dir)
        if args.quick:
            data_dir = write_small_idx(Path(tmp) / "idx", 1024, 256)
            args.target, args.max_seconds = 0.5, 60.0
            args.recipe = QUICK_RECIPE
        if not all((data_dir / f"{n}.gz").exists() or (data_dir / n).exists() for n in MNIST_FILES):
            print(
                f"skipped: the four Fashion-MNIST IDX files are not in {data_dir}; on Debian: "
                f"apt-get install dataset-fashion-mnist (then --data-dir {DEBIAN_DIR})"
            )
            return 0
        where = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
        print(
            f"time to {args.target:.0%} test accuracy, SimpleCNN, {data_dir}; {where}, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads; cap {args.max_seconds:g} s "
            "per side; wall time includes reading the data and every evaluation"
        )
        curves: list[Curve] = []
        sides = args.sides.split(",")
        if "gradsight" in sides:
            out = Path(tmp) / "run"
            curves.append(
                run_gradsight(
                    data_dir, args.recipe, args.target, args.max_seconds, out, args.device
                )
            )
        if "article" in sides:
            root = torchvision_root(data_dir, Path(tmp) / "torchvision")
            curves.append(
                run_article(root, args.target, args.max_seconds, args.article_workers, args.device)
            )
    for curve in curves:
        _print_curve(curve, args.target)
    size = "1,024 images of" if args.quick else "the full"
    title = f"SimpleCNN on {size} Fashion-MNIST: test accuracy after each epoch"
    plot(curves, args.target, Path(args.plot), title)
    print(f"plot: {args.plot}")
    if len(curves) == 2:
        print(ratio_line(curves[0], curves[1], args.target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
