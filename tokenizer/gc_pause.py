"""Pausing Python's cyclic garbage collector around allocation-heavy loops that build no cycles."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC. Encoding and BPE training allocate many small lists and tuples and build
    no cycles; with a 50k-merge vocabulary alive each full collection re-walks it (measured: 40% of
    encode time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
