"""Thread priorities: the work off the stream's clock yields the CPU to the work on it.

Linux schedules each thread on its own, by its id, so one thread can be made nicer than the
rest of its process. On a two-core machine the presenter's clock, the sinks and the event
loop then get a core first when the producers, the LLM or the panel's preview are busy.
Elsewhere a thread's id names no schedulable thing (on macOS it could be another process's
id), so nothing is changed there.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading


def lower_this_threads_priority(by: int) -> bool:
    """Make the calling thread ``by`` steps nicer (at most 19; threads it starts inherit
    it, OpenMP's among them). False where that cannot be done: not Linux, or not allowed."""
    if not sys.platform.startswith("linux") or by <= 0:
        return False
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + by))
        return True
    return False
