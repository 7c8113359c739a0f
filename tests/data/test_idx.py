from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from gradsight.data.idx import read_idx, write_idx
from gradsight.errors import DataError


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_uint8_images_round_trip_plain_and_gzipped(tmp_path: Path, name: str) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / name, images)
    back = read_idx(path)
    assert back.dtype == np.uint8
    assert back.shape == (7, 28, 28)
    np.testing.assert_array_equal(back, images)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_every_idx_dtype_round_trips_in_native_order(tmp_path: Path, dtype: str) -> None:
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    back = read_idx(write_idx(tmp_path / "a.idx", array))
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_magic_then_dims(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l.idx", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int32))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 2])
    assert raw[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert raw[12:16] == bytes([0, 0, 0, 1])  # first value, big-endian int32
    assert len(raw) == 12 + 6 * 4


def test_gzip_is_detected_by_magic_bytes_not_by_name(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "labels.gz", labels)
    renamed = (tmp_path / "labels.gz").rename(tmp_path / "labels-idx1-ubyte")
    np.testing.assert_array_equal(read_idx(renamed), labels)


def test_gzipped_output_is_byte_reproducible(tmp_path: Path) -> None:
    array = np.arange(100, dtype=np.uint8)
    first = write_idx(tmp_path / "a.gz", array).read_bytes()
    second = write_idx(tmp_path / "b.gz", array).read_bytes()
    assert first == second


def test_reads_a_file_gzipped_by_the_standard_tool(tmp_path: Path) -> None:
    plain = write_idx(tmp_path / "x.idx", np.ones((2, 2), dtype=np.uint8)).read_bytes()
    (tmp_path / "x.idx.gz").write_bytes(gzip.compress(plain))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx.gz"), np.ones((2, 2)))


def _bad(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x01\x02\x08\x01\x00\x00\x00\x01\x05", "magic number is 01 02 08 01"),
        (b"", "magic number is empty"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated: its IDX header declares 3 dims"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02", "has 10 bytes but its IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "has 10 bytes but its IDX header"),
        (b"\x1f\x8b\x08\x00garbage", "cannot be decompressed"),
    ],
    ids=["magic", "empty", "type-code", "short-header", "truncated", "trailing", "bad-gzip"],
)
def test_bad_file_raises_data_error_naming_the_file(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = _bad(tmp_path, content)
    with pytest.raises(DataError, match="bad-idx3-ubyte") as info:
        read_idx(path)
    assert expected in str(info.value)


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cannot read IDX file .*nope"):
        read_idx(tmp_path / "nope")


def test_writer_rejects_dtypes_idx_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dtype uint16 .*allowed dtypes: uint8, int8"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.uint16))
    with pytest.raises(DataError, match="0-dim array"):
        write_idx(tmp_path / "a.idx", np.array(3, dtype=np.uint8))
