"""The presenter's clock gets the GIL back quickly from worker threads that run Python."""

import asyncio
import sys

import numpy as np

from streambot.app import App
from streambot.clock import CLOCK_SWITCH_INTERVAL_S, responsive_clock


def test_the_switch_interval_is_short_inside_and_restored_after():
    before = sys.getswitchinterval()
    with responsive_clock(0.002):
        assert sys.getswitchinterval() == 0.002
    assert sys.getswitchinterval() == before


def test_numpy_asks_for_no_huge_pages_inside_and_as_before_after():
    multiarray = (getattr(np, "_core", None) or np.core).multiarray  # NumPy 2, or 1.26
    before = multiarray._set_madvise_hugepage(True)
    try:
        with responsive_clock(0.002):
            assert multiarray._set_madvise_hugepage(False) is False  # it was off inside
        assert multiarray._set_madvise_hugepage(True) is True  # on again after
    finally:
        multiarray._set_madvise_hugepage(before)


def test_a_shorter_interval_set_by_the_user_is_kept():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        with responsive_clock(0.002):
            assert sys.getswitchinterval() == 0.0005
    finally:
        sys.setswitchinterval(before)


def test_the_interval_is_restored_when_the_block_fails():
    before = sys.getswitchinterval()
    try:
        with responsive_clock(0.002):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert sys.getswitchinterval() == before


def test_the_daemon_streams_with_the_clocks_interval(fast_config):
    seen: list[float] = []

    async def stream() -> None:
        app = App(fast_config)

        async def watch() -> None:  # once frames are flowing
            while app.presenter is None or app.presenter.frame_index < 3:
                await asyncio.sleep(0)
            seen.append(sys.getswitchinterval())

        watcher = asyncio.create_task(watch())
        await app.run(0.5)
        await watcher

    before = sys.getswitchinterval()
    asyncio.run(stream())
    assert seen == [CLOCK_SWITCH_INTERVAL_S]
    assert sys.getswitchinterval() == before
