"""The NumPy reference imports no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import gradsight

PACKAGE_DIR = Path(gradsight.__file__).parent


def _torch_loaded_after(code: str) -> bool:
    script = code + "\nimport sys\nprint('torch' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout.strip().splitlines()[-1] == "True"


def test_numpy_ref_modules_import_no_torch() -> None:
    # An empty stand-in for gradsight/__init__.py, so only numpy_ref's own imports run.
    code = textwrap.dedent(
        f"""
        import types, sys
        pkg = types.ModuleType("gradsight")
        pkg.__path__ = [{str(PACKAGE_DIR)!r}]
        sys.modules["gradsight"] = pkg
        import numpy as np
        from gradsight.numpy_ref import relu_backward, relu_forward
        out, cache = relu_forward(np.array([-1.0, 2.0]))
        assert relu_backward(np.ones(2), cache).tolist() == [0.0, 1.0]
        """
    )
    assert not _torch_loaded_after(code)
    assert _torch_loaded_after(code + "\nimport gradsight.models")  # the check can fail


def test_import_gradsight_numpy_ref_loads_no_torch() -> None:
    assert not _torch_loaded_after("import gradsight.numpy_ref")
    assert _torch_loaded_after("import gradsight\ngradsight.SimpleCNN")  # lazy, not missing
