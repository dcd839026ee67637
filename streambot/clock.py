"""Clocks the pipeline schedules against: the real monotonic clock, a sound card's sample clock
(when the voice plays on an audio device, so picture and sound share the card's pace), or a
virtual one for faster-than-real-time runs and tests, advanced by whoever owns stream time
(the presenter)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

log = logging.getLogger(__name__)

# The presenter's clock runs on the event loop's thread beside worker threads that run Python
# (overlay drawing, the voice, the brain). Each NumPy call on a frame's path lets go of the GIL,
# and getting it back waits until the running worker's switch interval ends: at Python's
# default 5 ms a 2 ms overlay blend took 50-80 ms beside one busy worker, a late frame
# (BENCHMARKS.md, issue 31). A shorter interval costs the workers a little more switching.
CLOCK_SWITCH_INTERVAL_S = 0.001


# NumPy asks the kernel for transparent huge pages for every array of 4 MB and more (a face
# batch, a second of frames). Where the kernel honours that with direct compaction (Debian's and
# Ubuntu's default, THP "madvise"), a burst of such arrays at the start of a turn stalled the
# presenter's thread for 20-40 ms, and frames came late; without them: none (BENCHMARKS.md,
# issue 31). Small pages cost the big arrays a little speed and nothing on the clock.
def _set_numpy_huge_pages(enabled: bool) -> bool | None:
    """Turn NumPy's huge-page requests on or off; returns the setting before, or None where
    this NumPy has no switch (``NUMPY_MADVISE_HUGEPAGE``'s runtime form)."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    switch = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    return None if switch is None else bool(switch(enabled))


@contextlib.contextmanager
def responsive_clock(interval_s: float | None = None) -> Iterator[None]:
    """Run the block with the interpreter's thread switch interval at most ``interval_s``
    (default ``CLOCK_SWITCH_INTERVAL_S``) and without NumPy's huge-page requests; both
    restored after."""
    previous = sys.getswitchinterval()
    wanted = CLOCK_SWITCH_INTERVAL_S if interval_s is None else interval_s
    sys.setswitchinterval(min(previous, wanted))
    huge_pages = _set_numpy_huge_pages(False)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)
        if huge_pages is not None:
            _set_numpy_huge_pages(huge_pages)


class Clock(Protocol):
    realtime: bool

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    realtime = True

    def __init__(self) -> None:
        self._origin = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._origin

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SampleCounter(Protocol):
    """A sound card's progress: how many samples it has taken, and when it last asked."""

    rate: int
    max_gap: float  # the longest pause between callbacks that is normal for this device

    def tick(self) -> tuple[int, float] | None:
        """(samples consumed, ``time.monotonic()`` of that callback); None once closed."""
        ...


class DeviceClock:
    """Stream time from a sound card's sample counter: the hardware clock paces the stream.

    Between the card's callbacks the time is interpolated on the monotonic clock so it moves
    smoothly. Until a counter is attached, or while the card has stopped asking for samples
    (longer than ``stall_s``, or twice the card's ``max_gap``: stream died, device unplugged),
    the clock carries on on the monotonic clock from where it was, so the stream never stops;
    when the card comes back it rejoins it from there. Time never goes backwards.
    """

    realtime = True

    def __init__(self, stall_s: float = 0.5, time_fn: Callable[[], float] = time.monotonic):
        self._time = time_fn
        self._stall = self._stall_now = stall_s
        self._source: SampleCounter | None = None
        self._value = 0.0  # the last time returned
        self._at = time_fn()  # monotonic instant of _value
        self._offset = 0.0  # stream time minus device time, fixed each time the clock joins it
        self._following = False
        self._warned = False
        self._lock = threading.Lock()

    def attach(self, source: SampleCounter) -> None:
        """Follow this card from the next reading on (joining it where the clock is then)."""
        self._source, self._following, self._warned = source, False, False
        self._stall_now = max(self._stall, 2 * source.max_gap)

    @property
    def source(self) -> SampleCounter | None:
        return self._source

    @property
    def following_device(self) -> bool:
        """Whether the card paced the last reading (else the monotonic clock did)."""
        return self._following

    def now(self) -> float:
        with self._lock:  # the event loop reads it; a worker thread reading too stays monotonic
            return self._now()

    def _now(self) -> float:
        mono = self._time()
        carried = self._value + (mono - self._at)  # the monotonic clock's continuation
        source = self._source
        tick = source.tick() if source is not None else None
        if source is not None and tick is not None and mono - tick[1] <= self._stall_now:
            samples, at = tick
            device = samples / source.rate + (mono - at)
            if not self._following:
                # Join (or rejoin) the card where the clock stands, so time does not jump.
                self._offset = carried - device
                self._following = True
                if self._warned:
                    log.info("the audio device is consuming samples again; pacing on it")
                self._warned = False
            value = device + self._offset
        else:
            if tick is not None and not self._warned:
                log.warning(
                    "the audio device has not asked for samples for %.1f s; "
                    "pacing on the monotonic clock until it does",
                    mono - tick[1],
                )
                self._warned = True
            self._following = False
            value = carried
        # A card a little slow against the interpolation would step back at its next
        # callback: hold the time instead until the card catches up.
        if value > self._value:
            self._value = value
        self._at = mono
        return self._value

    async def sleep_until(self, deadline: float) -> None:
        # The card's clock and the monotonic one differ slightly: sleep, look, sleep again.
        while (delay := deadline - self.now()) > 0:
            await asyncio.sleep(max(delay, 0.001))

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self.now() + max(0.0, seconds))


class VirtualClock:
    """Time that moves only when ``advance_to`` is called; sleepers wake in deadline order.

    ``realtime=True`` simulates real time: the presenter still moves the clock frame by frame,
    but never waits for a model, and counts a frame that is not ready as late, as on a real
    clock (tests of pacing that must not depend on the machine's speed)."""

    realtime = False

    def __init__(self, start: float = 0.0, realtime: bool = False) -> None:
        self.realtime = realtime
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        await future

    async def sleep(self, seconds: float) -> None:
        await self.sleep_until(self._now + max(0.0, seconds))

    async def advance_to(self, instant: float) -> None:
        """Move time forward and let every task whose deadline passed run before returning."""
        if instant > self._now:
            self._now = instant
        woke = False
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
                woke = True
        # Yield every frame so other tasks run between frames even when nobody sleeps on the
        # clock; a few more turns let woken tasks reach their next await (queue a message).
        for _ in range(5 if woke else 1):
            await asyncio.sleep(0)
