"""Helpers the test suites (and bench/) share: plain code, no fixtures (those stay in the
conftest.py files, where pytest finds them)."""
