"""This process's peak resident memory, read one way for the run, the bench and verify's measurement."""

from __future__ import annotations

import resource
import sys


def peak_rss_bytes() -> int:
    """The most resident memory this process has held, in bytes (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
