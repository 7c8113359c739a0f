"""Read and write IDX files, the format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then ``ndim`` big-endian
uint32 sizes, then the values, big-endian, in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from gradsight.errors import DataError

__all__ = ["read_idx", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian NumPy dtype
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_KIND_SIZE_TO_CODE = {(dt.kind, dt.itemsize): code for code, dt in _CODE_TO_DTYPE.items()}
_ALLOWED_DTYPES = "uint8, int8, int16, int32, float32, float64"


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file into a NumPy array in native byte order.

    The file may be gzipped whatever its name: gzip is detected by its magic bytes ``1f 8b``.

    Args:
        path: the ``.idx`` / ``-ubyte`` file, optionally ``.gz``.

    Returns:
        The array, with the shape and dtype the header declares.

    Raises:
        DataError: the file is missing, is not valid gzip, or is not a valid IDX file.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path} is not an IDX file: its magic number is {raw[:4].hex(' ') or 'empty'}, "
            "expected 00 00 <type> <ndim>. Re-download the file or check that it is "
            "an MNIST-style -ubyte file."
        )
    code, ndim = raw[2], raw[3]
    if code not in _CODE_TO_DTYPE:
        valid = ", ".join(f"0x{c:02X}" for c in _CODE_TO_DTYPE)
        raise DataError(
            f"{path} has unknown IDX type code 0x{code:02X}; valid codes: {valid}. "
            "The file is corrupted or not an IDX file."
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(
            f"{path} is truncated: its IDX header declares {ndim} dims. Re-download it."
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _CODE_TO_DTYPE[code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path} has {len(raw)} bytes but its IDX header (shape {shape}, {dtype.name}) "
            f"needs {expected}. The file is truncated or corrupted; re-download it."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends with ``.gz``.

    The gzip header carries no time stamp, so the same array always gives the same bytes.

    Args:
        path: where to write.
        array: an array of uint8, int8, int16, int32, float32 or float64, at most 255 dims.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        DataError: the dtype or the number of dims cannot be stored in IDX.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _KIND_SIZE_TO_CODE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise DataError(
            f"cannot write dtype {array.dtype} to IDX; allowed dtypes: {_ALLOWED_DTYPES}. "
            "Convert the array with .astype() first."
        )
    if not 1 <= array.ndim <= 255:
        raise DataError(f"cannot write a {array.ndim}-dim array to IDX; it needs 1 to 255 dims.")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw_file, gzip.GzipFile("", "wb", fileobj=raw_file, mtime=0) as gz:
            gz.write(payload)
    else:
        path.write_bytes(payload)
    return path


def _read_bytes(path: Path) -> bytes:
    """Return the file's bytes, decompressed when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}.") from exc
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path} starts like gzip but cannot be decompressed ({exc}). "
            "The file is truncated or corrupted; re-download it."
        ) from exc
