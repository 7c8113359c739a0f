"""Write tiny dataset files in the real on-disk formats, for the data tests."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import pickle
import socket
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gradsight.data.idx import write_idx

MNIST_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CIFAR_CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
CIFAR_CLASSES += [b"dog", b"frog", b"horse", b"ship", b"truck"]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def mnist_arrays() -> dict[str, np.ndarray]:
    """Return 20 train and 10 test 28x28 uint8 images; labels cycle through the 10 classes."""
    rng = np.random.default_rng(0)
    return {
        "train_images": rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(20) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(10)[::-1] % 10).astype(np.uint8),
    }


def write_mnist(folder: Path, gz: bool = True) -> dict[str, Path]:
    """Write :func:`mnist_arrays` as the four IDX files into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = mnist_arrays()
    suffix = ".gz" if gz else ""
    return {
        key: write_idx(folder / f"{stem}{suffix}", arrays[key]) for key, stem in MNIST_STEMS.items()
    }


def cifar_batches() -> dict[str, tuple[np.ndarray, list[int]]]:
    """Return five train batches of 3 images and a test batch of 4, as CIFAR rows (N, 3072)."""
    rng = np.random.default_rng(1)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = 4 if name == "test_batch" else 3
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batches[name] = (data, [(i + j) % 10 for j in range(n)])
    return batches


def write_cifar(folder: Path, protocol: int = 2) -> Path:
    """Write :func:`cifar_batches` and ``batches.meta`` as CIFAR-10 pickles into ``folder``.

    Keys are bytes, as Python 2 wrote them and as ``encoding="bytes"`` reads them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, labels) in cifar_batches().items():
        entry = {b"batch_label": name.encode(), b"labels": labels, b"data": data}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=protocol))
    meta = {b"label_names": CIFAR_CLASSES, b"num_cases_per_batch": 3, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return folder


def write_cifar_tarball(workdir: Path) -> Path:
    """Write ``workdir/mirror/cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/``."""
    write_cifar(workdir / "build" / "cifar-10-batches-py")
    archive = workdir / "mirror" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(workdir / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive


def write_pngs(folder: Path, colours: list[tuple[int, int, int]], mode: str = "RGB") -> list[Path]:
    """Write one tiny 6x5 PNG per colour into ``folder``; ``mode="L"`` saves grey images."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(colours):
        image = Image.new("RGB", (6, 5), colour)
        path = folder / f"img{i}.png"
        (image.convert("L") if mode == "L" else image).save(path)
        paths.append(path)
    return paths


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 and yield its base URL, ending with ``/``.

    torchvision's downloader cannot read ``file://`` URLs (it needs ``response.length``,
    which only HTTP responses have), so the download tests use a loopback server: the real
    download code runs, and nothing leaves the machine. Proxies are bypassed for 127.0.0.1.
    """

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    saved = {key: os.environ.get(key) for key in ("no_proxy", "NO_PROXY")}
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.shutdown()
        server.server_close()
        thread.join()


def dead_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens: a download there fails at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
