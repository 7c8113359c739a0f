from __future__ import annotations

import torch
from torch.utils.data import Dataset

from gradsight.data import StreamSplit


class _Squares(Dataset[tuple[torch.Tensor, int]]):
    """Sample i is a (1, 2, 2) image filled with i, labelled i % 3."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 2, 2), float(i)), i % 3


def _ids(split: StreamSplit, shuffle: bool, generator: torch.Generator | None = None) -> list[int]:
    batches = split.batches(4, shuffle=shuffle, generator=generator)
    return [int(v) for x, _ in batches for v in x[:, 0, 0, 0].tolist()]


def test_len_and_num_batches() -> None:
    split = StreamSplit(_Squares(10))
    assert len(split) == 10
    assert split.num_batches(4) == 3
    assert split.num_batches(10) == 1


def test_unshuffled_batches_keep_order_and_types() -> None:
    batches = list(StreamSplit(_Squares(10)).batches(4, shuffle=False))
    assert [x.shape[0] for x, _ in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 1, 2, 2) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2, 0]
    assert _ids(StreamSplit(_Squares(10)), shuffle=False) == list(range(10))


def test_shuffle_follows_the_generator_seed() -> None:
    split = StreamSplit(_Squares(20))
    first = _ids(split, shuffle=True, generator=torch.Generator().manual_seed(3))
    again = _ids(split, shuffle=True, generator=torch.Generator().manual_seed(3))
    other = _ids(split, shuffle=True, generator=torch.Generator().manual_seed(4))
    assert first == again
    assert first != other
    assert sorted(first) == list(range(20))


def test_batches_are_moved_to_the_device() -> None:
    device = torch.device("cpu")
    x, y = next(iter(StreamSplit(_Squares(3)).batches(2, shuffle=False, device=device)))
    assert x.device == device and y.device == device
