"""Meter values outside Faust's per-event path: a batch consumer Service in the worker."""
