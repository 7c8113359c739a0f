"""Deprecated: moved to :mod:`gradsight.health.sentinel` in 0.2 (this path goes in 0.3)."""

from gradsight._deprecated import alias

alias(__name__, "gradsight.health.sentinel")
