"""The training loop, its events, and the setup that turns a config into ready objects."""

from gradsight.rng import seed_everything
from gradsight.train.device import resolve_device
from gradsight.train.events import (
    EVENTS,
    EpochRecord,
    EventBus,
    Observer,
    StepRecord,
    TrainState,
)
from gradsight.train.loop import TrainResult, evaluate, fit, train_one_epoch
from gradsight.train.setup import Prepared, build_optimizer, prepare

__all__ = [
    "EVENTS",
    "EpochRecord",
    "EventBus",
    "Observer",
    "Prepared",
    "StepRecord",
    "TrainResult",
    "TrainState",
    "build_optimizer",
    "evaluate",
    "fit",
    "prepare",
    "resolve_device",
    "seed_everything",
    "train_one_epoch",
]
