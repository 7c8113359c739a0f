"""Deprecated: moved to :mod:`gradsight.autograd.attribution` (``ModuleTracker`` is now
``ModuleAttribution``) and :mod:`gradsight.autograd.tensors` in 0.2 (this path goes in 0.3)."""

import warnings

from gradsight.autograd.attribution import ModuleAttribution, is_compiled, module_type, unwrap
from gradsight.autograd.tensors import grad_fns, has_nonfinite, tensors_in

ModuleTracker = ModuleAttribution

__all__ = [
    "ModuleTracker", "grad_fns", "has_nonfinite", "is_compiled", "module_type", "tensors_in",
    "unwrap",
]  # fmt: skip

warnings.warn(
    "gradsight.observers.modules moved to gradsight.autograd.attribution (ModuleTracker is "
    "now ModuleAttribution) and gradsight.autograd.tensors in gradsight 0.2; import them from "
    "there (the old path goes in 0.3)",
    DeprecationWarning,
    stacklevel=2,
)
