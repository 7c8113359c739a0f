"""Tools that work on any autograd graph and need nothing from training: graph capture, the
backward trace, gradient statistics, and attributing nodes to modules."""
