"""Evaluations of trained policies on public benchmarks (BFCL, ...)."""
