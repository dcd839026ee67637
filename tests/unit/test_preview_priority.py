"""The panel's preview encoder yields the CPU to the stream."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from streambot.panel.preview import NICER_BY, PreviewEncoder


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_preview_encodes_at_a_lower_priority_than_the_stream():
    own_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    encoder = PreviewEncoder(stream_fps=25)
    try:
        tid = encoder._thread.native_id
        assert tid is not None
        for _ in range(200):  # the thread lowers itself as it starts
            if os.getpriority(os.PRIO_PROCESS, tid) > own_nice:
                break
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, tid) == min(19, own_nice + NICER_BY)
    finally:
        encoder.close()
