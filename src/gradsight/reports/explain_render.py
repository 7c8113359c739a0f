"""Render an :class:`~gradsight.explain.Explanation` for the terminal (rich) or as Markdown.

Both renderers show the same sections and the same measured figures; nothing here computes.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from gradsight.explain import (
    Comparison,
    Explanation,
    LayerWalk,
    ScalarExample,
    SGDStepDemo,
    ZeroGradDemo,
)
from gradsight.explain.scalar import DERIVATIVE, FUNCTION

__all__ = ["SECTION_TITLES", "render_markdown", "render_terminal", "verdict"]

SECTION_TITLES = (
    "1. A scalar first",
    "2. Forward pass, layer by layer",
    "3. Backward pass, layer by layer",
    "4. Why zero_grad matters",
    "5. One SGD step",
)
MATCH, MISMATCH = "matches", "MISMATCH"
FORWARD_COLUMNS = ("layer", "operation", "output shape", "NumPy vs PyTorch", "check")
ZERO_GRAD_COLUMNS = ("parameter", "|grad| 1 pass", "|grad| 2 passes", "2nd = 2 x 1st", "zeroed")
SGD_COLUMNS = ("parameter", "|lr * grad|", "by hand vs optimizer.step()", "check")


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]" if shape else "scalar"


def _num(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def _check(c: Comparison) -> str:
    return MATCH if c.passed else MISMATCH


def _diff(c: Comparison) -> str:
    return f"{_num(c.max_abs_diff)} (rel {_num(c.max_rel_diff)})"


def _intro(e: Explanation) -> list[str]:
    s = e.setting
    c, h, w = s.image_shape
    named = zip(s.labels, s.label_names, strict=True) if s.label_names else None
    labels = ", ".join(f"{k} {n}" for k, n in named) if named else ", ".join(map(str, s.labels))
    tol = max(c.tolerance for c in e.comparisons())
    exact = [c for c in e.comparisons() if c.tolerance == 0]
    exact_note = " (the zero_grad checks demand exact equality)" if exact else ""
    return [
        f"SimpleCNN ({c}x{h}x{w} -> {s.num_classes} classes) on {s.source}, seed {s.seed}.",
        f"Labels: {labels}.",
        f'Every "{MATCH}" below is a comparison made in this run, in {s.dtype}: the value '
        f"computed by hand (NumPy or a formula) against PyTorch's, as max |difference| and "
        f"that relative to PyTorch's largest value; tolerance {tol:g} relative{exact_note}.",
    ]


def _scalar_lines(s: ScalarExample) -> list[str]:
    return [
        f"{FUNCTION} at x = {s.x:g}: y = {s.y:g}.",
        f"autograd (y.backward(); x.grad): {s.autograd_grad:g}; by hand, {DERIVATIVE} = "
        f"{s.formula_grad:g}; difference {_num(s.comparison.max_abs_diff)}: "
        f"{_check(s.comparison)}.",
    ]


def _zero_grad_lines(z: ZeroGradDemo) -> list[str]:
    cleared = "set every .grad to None" if z.cleared else "did NOT clear every .grad"
    return [
        "loss.backward() adds into .grad. Two backward passes without zero_grad give exactly "
        "twice the gradient, so the second step would use a wrong (doubled) gradient.",
        f"optimizer.zero_grad() {cleared}; one more backward gives the first gradient again.",
    ]


def _sgd_lines(p: SGDStepDemo) -> list[str]:
    return [
        f"w <- w - lr * grad with lr = {p.lr:g}, using the NumPy gradients, against "
        "torch.optim.SGD(...).step().",
        f"Loss on this batch: {p.loss_before:.4f} before the step, {p.loss_after:.4f} after.",
    ]


def verdict(e: Explanation) -> str:
    """Return one line: all comparisons matched, or which did not."""
    total, failures = len(e.comparisons()), e.failures()
    if not failures and e.zero_grad.cleared:
        return f"All {total} comparisons with PyTorch match."
    parts = [f"{c.label} (rel {_num(c.max_rel_diff)} > {c.tolerance:g})" for c in failures]
    if not e.zero_grad.cleared:
        parts.append("zero_grad left a gradient behind")
    return f"{len(parts)} of {total} checks FAILED: " + "; ".join(parts) + "."


# --- terminal ---------------------------------------------------------------------------


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i < 2 else "right")
    return table


def _forward_table(walk: LayerWalk) -> Table:
    table = _table(*FORWARD_COLUMNS)
    for s in walk.forward:
        c = s.comparison
        diff, check = (_diff(c), _check(c)) if c else ("-", "-")
        table.add_row(s.name, s.op, _shape(s.shape), diff, check)
    return table


def _backward_blocks(walk: LayerWalk) -> list[RenderableType]:
    blocks: list[RenderableType] = [Text(f"loss.backward() from loss = {walk.loss:.4f}")]
    for s in walk.backward:
        c = s.comparison
        head = Text.assemble((s.name, "bold"), f"  {_shape(s.shape)}  {s.rule.title}")
        figures = (
            f"    norm {s.norm:.4g}, {s.nonzero:.0%} non-zero; max |NumPy - autograd| {_diff(c)}: "
        )
        status = Text(_check(c), style="green" if c.passed else "bold red")
        blocks += [
            head,
            Text(f"    {s.rule.symbols}"),
            Text(f"    {s.rule.words}", style="dim"),
            Text.assemble(figures, status),
        ]
    return blocks


def _zero_grad_table(z: ZeroGradDemo) -> Table:
    table = _table(*ZERO_GRAD_COLUMNS)
    for r in z.rows:
        table.add_row(
            r.name, f"{r.norm_once:.4g}", f"{r.norm_twice:.4g}",
            f"{_diff(r.twice)} {_check(r.twice)}", _check(r.after_zero),
        )  # fmt: skip
    return table


def _sgd_table(p: SGDStepDemo) -> Table:
    table = _table(*SGD_COLUMNS)
    for r in p.rows:
        table.add_row(r.name, f"{r.update_norm:.4g}", _diff(r.comparison), _check(r.comparison))
    return table


def render_terminal(e: Explanation) -> Group:
    """Return the walk-through as rich renderables, for ``Console.print``."""
    parts: list[RenderableType] = [Text("gradsight explain", style="bold")]
    parts += [Text(line) for line in _intro(e)]
    sections: list[list[RenderableType]] = [
        [Text(line) for line in _scalar_lines(e.scalar)],
        [_forward_table(e.layers)],
        _backward_blocks(e.layers),
        [*(Text(line) for line in _zero_grad_lines(e.zero_grad)), _zero_grad_table(e.zero_grad)],
        [*(Text(line) for line in _sgd_lines(e.sgd)), _sgd_table(e.sgd)],
    ]
    for title, body in zip(SECTION_TITLES, sections, strict=True):
        parts += [Text(""), Text(title, style="bold underline"), *body]
    style = "bold green" if e.ok else "bold red"
    return Group(*parts, Text(""), Text(verdict(e), style=style))


# --- Markdown ---------------------------------------------------------------------------


def _md_paragraphs(lines: list[str]) -> list[str]:
    return [part for line in lines for part in (line, "")]


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _md_table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = [_md_row(header), "|" + "---|" * len(header), *(_md_row(row) for row in rows)]
    return [*lines, ""]


def _md_backward(walk: LayerWalk) -> list[str]:
    lines = [f"`loss.backward()` from loss = {walk.loss:.4f}.", ""]
    for s in walk.backward:
        c = s.comparison
        lines += [
            f"### `{s.name}` {_shape(s.shape)}: {s.rule.title}",
            "",
            f"`{s.rule.symbols}`",
            "",
            s.rule.words,
            "",
            f"Norm {s.norm:.4g}, {s.nonzero:.0%} non-zero; max |NumPy - autograd| "
            f"{_diff(c)}: **{_check(c)}**.",
            "",
        ]
    return lines


def _md_sections(e: Explanation) -> list[list[str]]:
    forward = [
        [f"`{s.name}`", f"`{s.op}`", _shape(s.shape)]
        + ([_diff(s.comparison), _check(s.comparison)] if s.comparison else ["-", "-"])
        for s in e.layers.forward
    ]
    zero = [
        [f"`{r.name}`", f"{r.norm_once:.4g}", f"{r.norm_twice:.4g}",
         f"{_diff(r.twice)} {_check(r.twice)}", _check(r.after_zero)]
        for r in e.zero_grad.rows
    ]  # fmt: skip
    sgd = [
        [f"`{r.name}`", f"{r.update_norm:.4g}", _diff(r.comparison), _check(r.comparison)]
        for r in e.sgd.rows
    ]
    return [
        _md_paragraphs(_scalar_lines(e.scalar)),
        _md_table(FORWARD_COLUMNS, forward),
        _md_backward(e.layers),
        [*_md_paragraphs(_zero_grad_lines(e.zero_grad)), *_md_table(ZERO_GRAD_COLUMNS, zero)],
        [*_md_paragraphs(_sgd_lines(e.sgd)), *_md_table(SGD_COLUMNS, sgd)],
    ]


def render_markdown(e: Explanation) -> str:
    """Return the walk-through as a Markdown document."""
    lines = ["# gradsight explain", "", *_md_paragraphs(_intro(e))]
    for title, body in zip(SECTION_TITLES, _md_sections(e), strict=True):
        lines += [f"## {title}", "", *body]
    lines += ["## Result", "", f"**{verdict(e)}**", ""]
    return "\n".join(lines)
