"""The 0.1 import paths under gradsight.observers still work in 0.2, with a warning."""

from __future__ import annotations

import importlib
import re
import sys

import pytest

from gradsight.autograd.attribution import ModuleAttribution
from gradsight.autograd.trace import trace_backward
from gradsight.health.monitor import GradMonitor
from gradsight.train.runfiles import read_metrics


def _fresh(name: str) -> object:
    for key in [k for k in sys.modules if k == name or k.startswith("gradsight.observers")]:
        del sys.modules[key]
    return importlib.import_module(name)


@pytest.mark.filterwarnings("ignore:gradsight.observers moved in")  # the package's own
@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("gradsight.observers.trace", "trace_backward", trace_backward),
        ("gradsight.observers.monitor", "GradMonitor", GradMonitor),
        ("gradsight.observers.modules", "ModuleTracker", ModuleAttribution),
        ("gradsight.observers", "read_metrics", read_metrics),
    ],
)
def test_old_paths_warn_and_give_the_same_objects(old: str, name: str, new: object) -> None:
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(old)} moved"):
        module = _fresh(old)
    assert getattr(module, name) is new
