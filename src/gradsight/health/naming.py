"""Say which parameters, in a sentence a person reads: modules instead of long name lists."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["covering_modules", "join_limited", "nearest", "place", "summarize"]


def covering_modules(names: Sequence[str], every: Sequence[str]) -> list[str]:
    """Return the fewest module prefixes that cover exactly ``names``, in model order.

    A module is named instead of its parameters when all of its parameters (in ``every``,
    the model's parameter names) are in ``names``; a parameter stays named alone otherwise.

    >>> every = ["conv.weight", "fc.0.weight", "fc.0.bias", "fc.1.weight"]
    >>> covering_modules(["fc.0.weight", "fc.0.bias", "fc.1.weight"], every)
    ['fc']
    >>> covering_modules(["conv.weight", "fc.0.bias"], every)
    ['conv', 'fc.0.bias']
    """
    chosen = set(names)
    total: dict[str, int] = {}  # module prefix -> parameters under it
    hit: dict[str, int] = {}  # ... of which in names
    for name in every:
        for prefix in _prefixes(name):
            total[prefix] = total.get(prefix, 0) + 1
            hit[prefix] = hit.get(prefix, 0) + (name in chosen)
    out: dict[str, None] = {}  # ordered set
    for name in (n for n in every if n in chosen):
        out.setdefault(next(p for p in _prefixes(name) if hit[p] == total[p]))
    return list(out)


def _prefixes(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``."""
    parts = name.split(".")
    return [".".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def join_limited(items: Sequence[str], limit: int) -> str:
    """Join ``items`` with commas, at most about ``limit`` characters: ``a, b and 7 more``."""
    shown: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        if shown and len(", ".join([*shown, item])) + (12 if rest else 0) > limit:
            return f"{', '.join(shown)} and {len(items) - len(shown)} more"
        shown.append(item)
    return ", ".join(shown)


def summarize(names: Sequence[str], every: Sequence[str], limit: int = 120) -> str:
    """Say which parameters ``names`` are, in words: ``conv1.weight``, ``all 62 parameters``,
    ``30 parameters of layer3, layer4, fc`` (the modules they make up), or, when that takes
    more than four names, ``124 of 142 parameters, in features, classifier`` (the
    top-level modules holding them).

    >>> every = ["conv.weight", "conv.bias", "fc.weight", "fc.bias"]
    >>> summarize(["fc.weight", "fc.bias"], every), summarize(every, every)
    ('2 parameters of fc', 'all 4 parameters')
    """
    if len(names) == 1:
        return names[0]
    if set(names) >= set(every):
        return f"all {len(names)} parameters"
    covering = covering_modules(names, every)
    if len(covering) <= 4:
        return f"{len(names)} parameters of {join_limited(covering, limit)}"
    tops = list(dict.fromkeys(name.split(".")[0] for name in covering))
    return f"{len(names)} of {len(every)} parameters, in {join_limited(tops, limit)}"


def nearest(names: Sequence[str], module: str | None) -> str | None:
    """The parameter of ``names`` nearest to ``module``: the longest shared name prefix;
    among equals, the first parameter of the last such layer (the one closest to the
    output, where a forward NaN has come through most recently)."""
    if not names:
        return None
    target = module.split(".") if module else []

    def shared(name: str) -> int:
        parts = name.split(".")[:-1]
        return next(
            (i for i, (a, b) in enumerate(zip(parts, target, strict=False)) if a != b),
            min(len(parts), len(target)),
        )

    best = max(shared(n) for n in names)
    last_layer = [n for n in names if shared(n) == best][-1].rpartition(".")[0]
    return next(n for n in names if shared(n) == best and n.rpartition(".")[0] == last_layer)


def place(module: str | None, kind: str | None) -> str:
    """Name where code ran: ``layer2.0 (BasicBlock)``, ``TinyViT.forward`` for the root
    model's own ``forward``, ``the loss, outside the model`` for None.

    >>> place("layer2.0", "BasicBlock"), place("", "TinyViT"), place(None, None)
    ('layer2.0 (BasicBlock)', 'TinyViT.forward', 'the loss, outside the model')
    """
    if module is None:
        return "the loss, outside the model"
    if module == "":
        return f"{kind or 'the model'}.forward"
    return f"{module} ({kind})" if kind else module
