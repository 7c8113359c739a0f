"""Old import paths that still work for one release, with a ``DeprecationWarning``."""

from __future__ import annotations

import importlib
import sys
import warnings

__all__ = ["alias"]


def alias(old: str, new: str) -> None:
    """Make module ``old`` the module ``new``, warning that ``old`` goes away in 0.3.

    Called from the old module's file, it replaces that module in ``sys.modules``, so
    ``from old import name`` finds every name of ``new``.
    """
    warnings.warn(
        f"{old} moved to {new} in gradsight 0.2; import it from there ({old} goes in 0.3)",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)
