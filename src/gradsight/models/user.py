"""Import a user's model class from ``path/to/file.py:ClassName`` or ``pkg.module:ClassName``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType

from torch import nn

from gradsight.errors import ModelError

__all__ = ["SIZE_ARGUMENTS", "import_model_class", "instantiate", "names_a_file"]

#: Keyword arguments gradsight passes to a model's constructor when its signature takes them.
SIZE_ARGUMENTS = ("in_channels", "num_classes", "image_size")


def _load_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ModelError(f"model file '{path}' does not exist; check the path before ':ClassName'")
    name = f"gradsight_user_model_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot import '{path}' as Python; the model file must end in .py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelError(f"importing '{path}' failed: {type(exc).__name__}: {exc}") from exc
    return module


def _load_module(dotted: str) -> ModuleType:
    try:
        return importlib.import_module(dotted)
    except ImportError as exc:
        raise ModelError(
            f"cannot import module '{dotted}' ({exc}); install it or pass a file: "
            "--model path/to/file.py:ClassName"
        ) from exc


def names_a_file(where: str) -> bool:
    """Whether the part of a model spec before ``:`` is a file path (else a module path)."""
    return where.endswith(".py") or "/" in where or "\\" in where


def import_model_class(spec: str) -> type[nn.Module]:
    """Import the class named by ``spec`` (``file.py:ClassName`` or ``package.module:ClassName``).

    Raises:
        ModelError: the file or module is missing, the class is missing, or is no ``nn.Module``.
    """
    where, _, class_name = spec.rpartition(":")
    if not where or not class_name:
        raise ModelError(
            f"model '{spec}' must look like path/to/file.py:ClassName or pkg.mod:Class"
        )
    module = _load_file(Path(where)) if names_a_file(where) else _load_module(where)
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(
            n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module)
        )
        raise ModelError(
            f"'{where}' has no class '{class_name}'; nn.Module classes there: "
            f"{', '.join(found) or 'none'}"
        )
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise ModelError(f"'{spec}' is not a torch.nn.Module subclass")
    return cls


def instantiate(cls: type[nn.Module], sizes: dict[str, object]) -> nn.Module:
    """Construct ``cls`` with the entries of ``sizes`` its signature accepts.

    Raises:
        ModelError: the constructor needs other arguments, or raises.
    """
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in sizes.items() if takes_any or k in params}
    missing = [
        name
        for name, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and name not in kwargs
    ]
    if missing:
        raise ModelError(
            f"{cls.__name__}() requires {', '.join(missing)}; gradsight can only pass "
            f"{', '.join(SIZE_ARGUMENTS)} (give the others defaults)"
        )
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise ModelError(f"{cls.__name__}(**{kwargs}) failed: {type(exc).__name__}: {exc}") from exc
