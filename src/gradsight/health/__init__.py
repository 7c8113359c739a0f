"""Gradient health checks: the monitor and its parts (NaN/Inf birthplace replay, forward
sentinel, no-gradient watch, dead ReLUs) and the findings they report."""
