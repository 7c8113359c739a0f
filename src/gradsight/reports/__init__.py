"""Renderers: turn observers' plain data into DOT, SVG, PNG, JSON and text."""
