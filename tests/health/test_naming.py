"""Naming parameter groups and places in words (the doctests in naming.py cover the rest)."""

from __future__ import annotations

from gradsight.health.naming import covering_modules, join_limited, nearest, summarize

EVERY = [
    "conv1.weight", "layer1.0.conv.weight", "layer1.0.bn.weight", "layer1.1.conv.weight",
    "layer2.0.conv.weight", "fc.weight", "fc.bias",
]  # fmt: skip


def test_covering_modules_names_whole_modules_only() -> None:
    names = ["layer1.0.conv.weight", "layer1.0.bn.weight", "layer1.1.conv.weight", "fc.bias"]
    assert covering_modules(names, EVERY) == ["layer1", "fc.bias"]
    assert covering_modules(["layer1.0.conv.weight"], EVERY) == ["layer1.0.conv"]


def test_join_limited_counts_what_it_leaves_out() -> None:
    items = [f"module{i}" for i in range(30)]
    joined = join_limited(items, 40)
    assert len(joined) <= 40 + len(" and 99 more")
    shown = joined.split(" and ")[0].split(", ")
    assert joined.endswith(f" and {30 - len(shown)} more") and shown == items[: len(shown)]
    assert join_limited(["a", "b"], 40) == "a, b"


def test_summarize_falls_back_to_top_level_modules() -> None:
    names = ["conv1.weight", "layer1.0.conv.weight", "layer1.1.conv.weight",
             "layer2.0.conv.weight", "fc.weight"]  # fmt: skip
    assert summarize(names, EVERY) == "5 of 7 parameters, in conv1, layer1, layer2, fc"
    assert summarize(["fc.bias"], EVERY) == "fc.bias"


def test_nearest_prefers_the_birth_module_then_the_layer_nearest_the_output() -> None:
    assert nearest(EVERY, "layer1.0.conv") == "layer1.0.conv.weight"
    assert nearest(EVERY, "layer1.0") == "layer1.0.bn.weight"  # its last layer: nearest the add
    assert nearest(EVERY, "") == "fc.weight"  # the root: the last layer
    assert nearest(EVERY, None) == "fc.weight"
    assert nearest([], "fc") is None
