"""Deprecated: moved to :mod:`gradsight.rng` in 0.2 (this path goes in 0.3)."""

from gradsight._deprecated import alias

alias(__name__, "gradsight.rng")
