"""Giving memory a step no longer needs back to the operating system.

A run is one process (Dagster's in-process executor), so what one step frees but the
process keeps is still counted at the next step's peak. Three allocators keep freed
memory for reuse: Python's (objects in reference cycles wait for the collector), Arrow's
pool (mimalloc), and glibc's heap, where millions of small strings (a pandas frame's text
columns) leave pages that are free but not returned. At a million people the Great
Expectations frames of the staging checks left about 2 GB that way, carried by every later
step on top of DuckDB's own memory limit (docs/benchmarks.md, "Scale ladder").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache


@cache
def _glibc():
    """glibc's malloc_trim, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return getattr(library, "malloc_trim", None)


def release_freed_memory() -> None:
    """Collect unreachable objects, then hand Arrow's and glibc's free pages back.

    Call it after a step drops large Python or Arrow objects; it costs a garbage
    collection (well under a second) and changes no data.
    """
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _glibc()
    if trim is not None:
        trim(0)
