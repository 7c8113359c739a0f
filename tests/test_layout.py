"""The architecture as the tree shows it: imports flow one way, from the CLI down to data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import gradsight

PACKAGE = Path(gradsight.__file__).parent

#: Lowest first. A module may import from its own package and from lower layers only.
LAYERS = [
    {"errors", "env", "rng", "_deprecated"},
    {"config", "data", "numpy_ref", "doctor"},  # doctor: is this machine ready (probes)
    {"models"},
    {"autograd"},  # any autograd graph: needs nothing from training
    {"train"},  # the loop, its events, and the loop's own observers
    {"checkpoint", "health", "explain", "export", "preflight"},  # preflight: gradsight check
    {"reports"},  # renderers: plain data in, DOT/SVG/JSON/HTML/text out
    {"cli", "session"},  # the CLI (the only layer that parses or prints); watch()
    {"integrations"},  # other frameworks' callbacks (Lightning), built on watch()
    {"__init__", "__main__", "observers"},  # the public names; 0.1's paths, deprecated
]


def _layer(part: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part in names)


def _imports() -> list[tuple[str, str, str]]:
    """(file, its package, imported package) for every ``from gradsight.X import``."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradsight."):
                target = node.module.split(".")[1]  # type: ignore[union-attr]
                if target != own:
                    found.append((str(rel), own, target))
    return found


def test_every_package_has_a_layer() -> None:
    parts = {p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
             if p.suffix == ".py" or (p / "__init__.py").exists()}  # fmt: skip
    assert parts == set().union(*LAYERS)


def test_imports_flow_one_way() -> None:
    upward = [
        f"{file} imports gradsight.{target}"
        for file, own, target in _imports()
        if _layer(target) >= _layer(own)
    ]
    assert upward == []


def test_the_autograd_tools_load_no_training_or_rendering_code() -> None:
    code = (
        "import sys, gradsight.autograd.capture, gradsight.autograd.trace; "
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('gradsight.')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['autograd']"


def test_a_graph_from_the_top_level_shows_in_jupyter() -> None:
    code = (
        "import torch, gradsight; w = torch.ones(2, requires_grad=True); "
        "print(gradsight.capture_graph((w * 2).sum())._repr_mimebundle_()['text/plain'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "AutogradGraph(4 nodes, 3 edges, op)"  # loss, sum, mul, w


def test_no_module_is_over_400_lines() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text(encoding="utf-8").splitlines())
             for p in PACKAGE.rglob("*.py")}  # fmt: skip
    assert {name: n for name, n in sizes.items() if n > 400} == {}
