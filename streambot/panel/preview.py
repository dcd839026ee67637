"""The program preview for the panel: a few frames a second as JPEG, encoded off the loop.

The presenter offers every frame it hands to the sinks; the encoder keeps only the latest one
due (``fps`` a second) and encodes it on its own thread, never more than one at a time, so the
presenter's loop pays one reference assignment per frame and never waits. The thread runs at
a lower priority than the stream's (Linux), so on a busy two-core machine an encode waits for
the presenter's clock and the sinks rather than making a frame late.
"""

from __future__ import annotations

import io
import threading

import numpy as np
from PIL import Image

from streambot.threads import lower_this_threads_priority

NICER_BY = 10  # added to the thread's nice value: about a tenth of a busy core


class PreviewEncoder:
    def __init__(self, stream_fps: int, fps: float = 4.0, width: int = 480) -> None:
        self.every = max(1, round(stream_fps / fps))
        self.width = width
        self.jpeg: bytes = b""
        self.frame_index = -1  # the stream frame the latest JPEG shows
        self.encoded = 0
        self._pending: tuple[int, np.ndarray] | None = None
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="panel-preview", daemon=True)
        self._thread.start()

    def offer(self, index: int, frame: np.ndarray) -> None:
        """Called by the presenter for each frame at the sinks (not copied: frames are not
        written to after they are handed over)."""
        if index % self.every == 0:
            self._pending = (index, frame)
            self._wake.set()

    def _run(self) -> None:
        lower_this_threads_priority(NICER_BY)
        while not self._stopped:
            self._wake.wait()
            self._wake.clear()
            item, self._pending = self._pending, None
            if item is None:
                continue
            index, frame = item
            image = Image.fromarray(frame)
            height = max(1, round(frame.shape[0] * self.width / frame.shape[1]))
            image = image.resize((self.width, height), Image.Resampling.BILINEAR)
            out = io.BytesIO()
            image.save(out, "JPEG", quality=70)
            self.jpeg, self.frame_index = out.getvalue(), index
            self.encoded += 1

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=2.0)
