"""The worker's heap: how often Python collects, and handing freed C memory back.

Both keep DR fast and memory low under load: CPython's default thresholds make full
collections that hold DR signals behind them, and glibc keeps freed batch and checkpoint
buffers resident.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Callable, Iterator


def tune_gc() -> None:
    """Fewer, cheaper garbage collections: with CPython's default thresholds the objects of
    every fetched batch outlive two young collections, so full collections (long, and
    finding nothing) run every few seconds under load and hold every DR signal behind them.
    With a young generation of 50,000 a batch dies young; what the import and start-up built
    is frozen out of every later scan."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic collection during urgent control work (a frequency activation over a
    whole area, half a second): one young collection in its middle, over the commands just
    built, took 20-80 ms of it. What it would have collected waits until the work is done;
    collection then resumes where it stood."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to hand back this way
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`). Each fetched
    batch and each checkpoint allocate and free tens of megabytes; glibc keeps what was
    freed inside its arenas, so the resident set stayed near the busiest second's high-water
    mark rather than what the worker holds. Nothing to do where there is no glibc."""
    if _TRIM is not None:
        _TRIM(0)
