"""Deprecated: moved to :mod:`gradsight.autograd.capture` and :mod:`gradsight.autograd.graph`
in 0.2 (this path goes in 0.3)."""

from gradsight._deprecated import alias

alias(__name__, "gradsight.autograd.capture")  # it also holds the graph data classes
