"""Fault injection for the crash tests: kill this process for real at a chosen point of a write.

    DRIFTING_FAILPOINT=checkpoint_write:3   SIGKILL during the 3rd atomic file write (new file complete on
                                            disk, not yet renamed into place)
    DRIFTING_FAILPOINT=metrics_append:5     SIGKILL halfway through writing the 5th metrics.jsonl row

Unset (always, outside tests) it costs one dictionary lookup per write.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

FAILPOINT_ENV = "DRIFTING_FAILPOINT"
# Hits per failpoint name in this process. Module state on purpose: a failpoint counts process-wide events,
# and a process killed at one never needs it reset.
_HITS: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """SIGKILL the process if DRIFTING_FAILPOINT is `<name>:<n>` and this is the n-th time `name` is hit."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    target, _, count = wanted.rpartition(":")
    if target != name:
        return
    _HITS[name] += 1
    if _HITS[name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)
