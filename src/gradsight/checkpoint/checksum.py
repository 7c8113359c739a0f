"""The size and SHA-256 a checkpoint's bytes are checked against before anything is unpickled.

A checkpoint ``step-00000020.pt`` is a plain ``torch.save`` file; its sidecar
``step-00000020.pt.sha256``, beside it, holds the file's size in bytes and its SHA-256::

    # gradsight-checkpoint 2 <size>
    <sha256>  step-00000020.pt

in the layout ``sha256sum -c`` reads (it skips the ``#`` line). Checkpoints written by
gradsight 0.1.0 have no sidecar: the same two values sit in a header line
``gradsight-checkpoint 1 <size> <sha256>\\n`` before the ``torch.save`` bytes.
:func:`checked_payload` reads both kinds.

>>> sidecar("a.pt", b"hi").decode().splitlines()[0]
'# gradsight-checkpoint 2 2'
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from gradsight.errors import CheckpointError

__all__ = ["MAGIC", "SUFFIX", "checked_payload", "sidecar", "sidecar_of"]

MAGIC = b"gradsight-checkpoint"
#: What a sidecar's name adds to its checkpoint's.
SUFFIX = ".sha256"
_SIDECAR = re.compile(rb"# gradsight-checkpoint 2 (\d+)\n([0-9a-f]{64})  [^\n]*\n")
_HEADER_MAX = 200


def sidecar_of(path: Path) -> Path:
    """Return the path of the sidecar that checks ``path``: ``<name>.sha256`` beside it."""
    return path.with_name(path.name + SUFFIX)


def sidecar(name: str, data: bytes) -> bytes:
    """Return the sidecar's content for ``data`` saved under the file name ``name``."""
    digest = hashlib.sha256(data).hexdigest()
    return b"# %s 2 %d\n%s  %s\n" % (MAGIC, len(data), digest.encode(), name.encode())


def checked_payload(path: Path, blob: bytes) -> bytes:
    """Return the ``torch.save`` bytes in ``blob``, the content of ``path``, once checked.

    A 0.1.0 file is checked against its header line, any other against its sidecar.

    Raises:
        CheckpointError: ``path`` is a sidecar itself, its check is missing or unreadable, or
            its size or SHA-256 differs from what the check says.
    """
    if path.name.endswith(SUFFIX):
        raise CheckpointError(
            f"{path} is the checksum file of a checkpoint; pass the checkpoint itself, "
            f"{path.name.removesuffix(SUFFIX)}"
        )
    if blob.startswith(MAGIC):
        size, digest, payload = _header(path, blob)
        _verify(path, payload, size, digest, against="its header")
        return payload
    size, digest = _read_sidecar(path)
    _verify(path, blob, size, digest, against=sidecar_of(path).name)
    return blob


def _header(path: Path, blob: bytes) -> tuple[int, str, bytes]:
    """Split a 0.1.0 file into the (size, SHA-256) of its header line and its payload."""
    header, _, payload = blob.partition(b"\n")
    fields = header[:_HEADER_MAX].split(b" ")
    if len(fields) != 4 or fields[0] != MAGIC or fields[1] != b"1":
        raise CheckpointError(
            f"{path} has a damaged '{MAGIC.decode()} 1' header line; "
            "pass a file from a run's checkpoints/ folder"
        )
    size = int(fields[2]) if fields[2].isdigit() else -1
    return size, fields[3].decode("ascii", "replace"), payload


def _read_sidecar(path: Path) -> tuple[int, str]:
    """Return the (size, SHA-256) that the sidecar of ``path`` records."""
    side = sidecar_of(path)
    try:
        text = side.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} has no {side.name} beside it, so it cannot be checked (a crash between "
            f"the two writes, or a copy without it); copy the {SUFFIX} file along with it, or "
            "resume from the run folder"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checksum file {side}: {exc.strerror}") from None
    match = _SIDECAR.fullmatch(text)
    if match is None:
        raise CheckpointError(
            f"{side} is not a gradsight checksum file (expected the lines "
            f"'# {MAGIC.decode()} 2 <size>' and '<sha256>  <name>'); restore it from a copy "
            "of the run, or resume from an older checkpoint"
        )
    return int(match[1]), match[2].decode("ascii")


def _verify(path: Path, payload: bytes, size: int, digest: str, against: str) -> None:
    """Raise unless ``payload`` has the ``size`` and SHA-256 ``digest`` that ``against`` says."""
    if len(payload) != size:
        raise CheckpointError(
            f"{path} is truncated or corrupted: {len(payload)} bytes, {against} says {size}"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path} is corrupted: its SHA-256 does not match {against}")
