"""Checks of the activations at initialisation: dead ReLUs, saturated sigmoid/tanh, and the
activation scale through depth, all read from the probe's forward hooks."""

from __future__ import annotations

import math

from gradsight.preflight.probe import LayerStat
from gradsight.preflight.result import Check

__all__ = ["check_activation_scale", "check_dead_relu", "check_saturation", "names"]

#: Dead fraction of one ReLU's units at init: above WARN something is off, above FAIL the
#: layer barely passes a gradient (a healthy init kills none; DeepCNN's last block ~17%).
DEAD_WARN, DEAD_FAIL = 0.3, 0.6
#: Saturated fraction of a sigmoid/tanh's outputs, where its gradient is under 1% of its peak.
SATURATED_WARN, SATURATED_FAIL = 0.2, 0.5
#: How far a layer's output RMS may drift from the first layer's (DeepCNN's 6 plain convs
#: shrink it ~30x): beyond WARN the scale is vanishing or exploding, beyond FAIL it is gone.
SCALE_WARN, SCALE_FAIL = 1e2, 1e4


def names(items: list[str], most: int = 3) -> str:
    """``a, b, c and 4 more``: a short list for a one-sentence message."""
    head = ", ".join(items[:most])
    return head + (f" and {len(items) - most} more" if len(items) > most else "")


def check_dead_relu(layers: list[LayerStat]) -> Check:
    """Fraction of each ReLU's units that never fire on the probe batch."""
    name = "dead_relu"
    relus = [s for s in layers if s.dead is not None]
    if not relus:
        return Check(name, "pass", None, "No nn.ReLU modules (a functional relu is not seen).")
    details = {s.name: s.dead for s in relus}
    worst = max(relus, key=lambda s: s.dead or 0.0)
    dead = worst.dead or 0.0
    bad = [s.name for s in relus if (s.dead or 0.0) >= DEAD_WARN]
    if dead < DEAD_WARN:
        return Check(name, "pass", dead, f"Every ReLU fires: at most {dead:.0%} of a layer's "
                     f"units ({worst.name}) are silent on every sample.", "", details)  # fmt: skip
    return Check(
        name, "fail" if dead >= DEAD_FAIL else "warn", dead,
        f"{dead:.0%} of the units of {worst.name} never fire on any sample"
        f"{f' (also {names(bad[1:])})' if len(bad) > 1 else ''}; a dead unit passes no "
        "gradient and never recovers.",
        "Check the layer before it (a large negative bias or a bad init kills every unit), "
        "normalise the inputs, or use LeakyReLU.", details,
    )  # fmt: skip


def check_saturation(layers: list[LayerStat]) -> Check:
    """Fraction of each sigmoid/tanh's outputs in its flat tails."""
    name = "saturation"
    squashers = [s for s in layers if s.saturated is not None]
    if not squashers:
        return Check(name, "pass", None, "No nn.Sigmoid or nn.Tanh modules.")
    details = {s.name: s.saturated for s in squashers}
    worst = max(squashers, key=lambda s: s.saturated or 0.0)
    frac = worst.saturated or 0.0
    if frac < SATURATED_WARN:
        return Check(name, "pass", frac, f"Sigmoid/tanh outputs are in their responsive range "
                     f"(at most {frac:.0%} saturated, {worst.name}).", "", details)  # fmt: skip
    return Check(
        name, "fail" if frac >= SATURATED_FAIL else "warn", frac,
        f"{frac:.0%} of the outputs of {worst.name} sit in the flat tails of the "
        f"{worst.kind}, where its gradient is under 1% of its peak.",
        "Scale the inputs of that layer down: a smaller init of the layer before it "
        "(Xavier/Glorot), normalised inputs, or a normalisation layer in between.", details,
    )  # fmt: skip


def check_activation_scale(layers: list[LayerStat]) -> Check:
    """The RMS of every layer with parameters, relative to the first one's, through depth."""
    name = "activation_scale"
    weighted = [s for s in layers if s.kind == "weighted"]
    if not weighted:
        return Check(name, "pass", None, "No layers with parameters were called.")
    details = {s.name: s.rms for s in weighted}
    broken = [s.name for s in layers if not s.finite]
    if broken:
        return Check(name, "fail", "nonfinite", f"The output of {names(broken)} holds NaN/Inf "
                     "at initialisation.", "Find the op that overflows: a division, a log or "
                     "exp of large values, or an init that is far too large.",
                     details)  # fmt: skip
    first = weighted[0]
    if first.rms == 0:
        return Check(name, "fail", 0.0, f"The first layer {first.name} outputs only zeros.",
                     "Check its init and its inputs.", details)  # fmt: skip
    ratios = [(s, s.rms / first.rms) for s in weighted]
    far, ratio = max(ratios, key=lambda sr: abs(math.log(sr[1])) if sr[1] > 0 else math.inf)
    size = 1 / ratio if ratio and ratio < 1 else ratio
    if ratio and size < SCALE_WARN:
        return Check(name, "pass", ratio, f"The activation scale stays within {SCALE_WARN:.0f}x "
                     f"of {first.name}'s through depth (most: {far.name}, {ratio:.3g}x).",
                     "", details)  # fmt: skip
    how = "vanish" if ratio < 1 else "explode"
    return Check(
        name, "fail" if not ratio or size >= SCALE_FAIL else "warn", ratio,
        f"The activation scale {how}{'es' if how == 'vanish' else 's'} through depth: "
        f"{far.name} outputs {ratio:.3g}x the RMS of {first.name}, so gradients {how} too.",
        "Use an init that keeps the variance (kaiming_normal_ for ReLU, xavier for tanh), "
        "normalisation layers, or residual connections.", details,
    )  # fmt: skip
