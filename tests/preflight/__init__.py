"""Tests of gradsight.preflight: each check on a model written with its bug."""
