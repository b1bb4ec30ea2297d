"""Commands as the worker publishes them, for the gateway tests."""

from evgrid.bench.gateway import sample_command as command

__all__ = ["command"]
