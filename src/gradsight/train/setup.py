"""Turn a :class:`TrainConfig` into ready objects: seeded RNGs, data, device, model, optimizer.

Everything that can fail on bad input fails here, before a run folder is created.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from gradsight.config import TrainConfig
from gradsight.data import LoadedDataset, TensorSplit, load_dataset
from gradsight.errors import ConfigError
from gradsight.models import build_model, check_model_fits
from gradsight.rng import seed_everything
from gradsight.train.device import resolve_device
from gradsight.train.distributed import (
    Ranks,
    ShardedSplit,
    init_distributed,
    ranks_from_env,
    wrap_model,
)
from gradsight.train.speed import build_scheduler, check_speed_options, compile_model

__all__ = [
    "CUBLAS_WORKSPACE",
    "Prepared",
    "build_optimizer",
    "prepare",
    "set_deterministic",
]

#: The cuBLAS workspace setting deterministic CUDA matmuls need.
CUBLAS_WORKSPACE = ":4096:8"


def set_deterministic(enabled: bool) -> None:
    """Switch torch to deterministic kernels (or back), cuDNN included.

    Sets ``torch.use_deterministic_algorithms``, ``cudnn.deterministic``, turns
    ``cudnn.benchmark`` off, and sets ``CUBLAS_WORKSPACE_CONFIG`` to :data:`CUBLAS_WORKSPACE`
    unless already set. An op without a deterministic kernel then raises instead of running.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Return the optimizer ``config.optimizer`` names over ``model``'s parameters.

    Raises:
        ConfigError: an unknown optimizer name.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ConfigError(f"invalid optimizer '{config.optimizer}'. Valid optimizers: sgd, adam")


@dataclass
class Prepared:
    """The objects a run trains with."""

    config: TrainConfig
    data: LoadedDataset
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    ranks: Ranks | None = None  # under torchrun: this process's rank; model in DDP
    scheduler: LRScheduler | None = None  # --lr-schedule, stepped after every step


def _data_on(data: LoadedDataset, device: torch.device) -> LoadedDataset:
    """Move in-memory splits to ``device`` once, so batches need no host-to-device copy."""
    if device.type == "cpu":
        return data
    train, test = data.train, data.test
    if isinstance(train, TensorSplit):
        train = train.to(device)
    if isinstance(test, TensorSplit):
        test = test.to(device)
    return LoadedDataset(info=data.info, train=train, test=test)


def _sharded(data: LoadedDataset, ranks: Ranks) -> LoadedDataset:
    train, test = ShardedSplit(data.train, ranks), ShardedSplit(data.test, ranks)
    return LoadedDataset(info=data.info, train=train, test=test)


def prepare(config: TrainConfig) -> Prepared:
    """Load the data, pick the device, build and check the model, build the optimizer.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this process also joins the process group, takes
    its GPU (``cuda:LOCAL_RANK``) or the CPU, wraps the model in DistributedDataParallel and
    trains on its shard of each batch (:mod:`gradsight.train.distributed`).

    Raises:
        GradsightError: any input problem (data, model, device, optimizer), before any file
            is written.
    """
    device = resolve_device(config.device)
    ranks = ranks_from_env()
    if ranks is not None:
        device = init_distributed(ranks, device)
    check_speed_options(config, device)
    set_deterministic(config.deterministic)
    data = load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        image_size=config.image_size,
        download=config.download,
        seed=config.seed,
        skip_bad_images=config.skip_bad_images,
    )
    seed_everything(config.seed)  # model init draws from torch's generator
    model = build_model(config.model, data.info).to(device)
    check_model_fits(model, data.info, device)
    optimizer = build_optimizer(config, model)
    model = compile_model(model, config)  # channels-last and/or torch.compile, if asked
    data = _data_on(data, device)
    if ranks is not None:
        model, data = wrap_model(model, device), _sharded(data, ranks)
    scheduler = build_scheduler(config, optimizer, data.train.num_batches(config.batch_size))
    return Prepared(config, data, model, optimizer, device, ranks, scheduler)
