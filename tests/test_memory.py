"""release_freed_memory hands a dropped frame's memory back to the operating system."""

import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from assets.shared.memory import release_freed_memory

ROOT = Path(__file__).resolve().parents[1]

# A staging check's frame in small: millions of short strings from Arrow into pandas.
# Run in a process of its own, so nothing else of the test session moves its memory.
DROPPED_FRAME = """
import gc, sys
import pandas as pd, pyarrow as pa
from assets.shared.memory import release_freed_memory

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e6

base = rss_mb()
frame = pa.table({"s": [f"value-{i}" for i in range(3_000_000)]}).to_pandas()
frame["u"] = frame["s"].str.upper()
held = rss_mb() - base
del frame
gc.collect()
kept = rss_mb() - base
release_freed_memory()
print(held, kept, rss_mb() - base)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads memory from Linux's /proc")
def test_a_dropped_frames_memory_goes_back_to_the_system():
    printed = subprocess.run(
        [sys.executable, "-c", DROPPED_FRAME], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    held, kept, released = (float(x) for x in printed.split())
    assert held > 100  # the frame took real memory
    assert kept > held / 2  # freed, the process still kept most of it
    assert released < held / 4  # released, it is back with the system


def test_objects_in_reference_cycles_are_collected():
    class Node:
        pass

    node = Node()
    node.self = node  # only the collector frees a cycle
    alive = weakref.ref(node)
    del node
    release_freed_memory()
    assert alive() is None
