"""Datasets as normalised train/test splits, chosen by name with :func:`load_dataset`.

The default, ``fashion-mnist-mini``, is real Fashion-MNIST data shipped in the package, so
``load_dataset(DEFAULT_DATASET)`` works offline.
"""

from __future__ import annotations

from gradsight.data.base import Batch, DatasetInfo, LoadedDataset, Split, TensorSplit
from gradsight.data.registry import DATASET_NAMES, DEFAULT_DATASET, load_dataset
from gradsight.data.storage import default_cache_dir
from gradsight.data.stream import StreamSplit

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_DATASET",
    "Batch",
    "DatasetInfo",
    "LoadedDataset",
    "Split",
    "StreamSplit",
    "TensorSplit",
    "default_cache_dir",
    "load_dataset",
]
