"""Shutdown ends every task, even one that loses a cancel (Python 3.11's wait_for can), and
"wait for this or stop" ends what it started and leaves the caller's futures alone."""

from __future__ import annotations

import asyncio

import pytest

from streambot.tasks import cancel_and_wait, first_of, wait_or_stop


async def test_a_task_that_loses_one_cancel_is_still_ended() -> None:
    lost = 0

    async def loses_first_cancel() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost += 1  # carries on, as a task whose wait_for swallowed the cancel

    async def fails() -> None:
        raise RuntimeError("a task that already failed")

    tasks = [asyncio.create_task(loses_first_cancel()), asyncio.create_task(fails())]
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(tasks, retry_s=0.05), 5)
    assert lost == 1 and all(task.done() for task in tasks)
    assert tasks[0].cancelled() and isinstance(tasks[1].exception(), RuntimeError)


class Sleeper:
    """A coroutine factory that says whether its sleep was cancelled."""

    def __init__(self) -> None:
        self.cancelled = 0
        self.finished = 0

    async def sleep(self, seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return "slept"


async def test_first_of_returns_with_the_first_and_ends_the_others() -> None:
    slow = Sleeper()
    fast = Sleeper()
    await asyncio.wait_for(first_of(slow.sleep(30), fast.sleep(0.01), slow.sleep(30)), 5)
    assert fast.finished == 1 and slow.cancelled == 2  # ended, not merely asked to end


async def test_first_of_leaves_passed_in_futures_and_tasks_running() -> None:
    future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(asyncio.sleep(30))
    try:
        await asyncio.wait_for(first_of(future, task, asyncio.sleep(0.01)), 5)
        assert not future.done() and not task.done()
        future.set_result("mine")
        await asyncio.wait_for(first_of(future, task), 5)  # an already finished one counts
        assert future.result() == "mine" and not task.done()
    finally:
        task.cancel()


async def test_first_of_raises_what_a_coroutine_it_ran_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    slow = Sleeper()
    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(first_of(fails(), slow.sleep(30)), 5)
    assert slow.cancelled == 1


async def test_cancelling_first_of_ends_its_tasks_and_spares_the_callers() -> None:
    sleeper = Sleeper()
    future = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(first_of(sleeper.sleep(30), future))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert sleeper.cancelled == 1 and not future.done()


async def test_first_of_needs_something_to_wait_for() -> None:
    with pytest.raises(ValueError):
        await first_of()


async def test_wait_or_stop_says_whether_the_awaitable_finished() -> None:
    stop = asyncio.Event()
    assert await asyncio.wait_for(wait_or_stop(asyncio.sleep(0.01), stop), 5) is True
    sleeper = Sleeper()
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert await asyncio.wait_for(wait_or_stop(sleeper.sleep(30), stop), 5) is False
    assert sleeper.cancelled == 1


async def test_wait_or_stop_leaves_a_passed_in_future_to_its_owner() -> None:
    stop = asyncio.Event()
    stop.set()
    future = asyncio.get_running_loop().create_future()
    assert await asyncio.wait_for(wait_or_stop(future, stop), 5) is False
    assert not future.done()
    future.set_exception(RuntimeError("the owner's to read"))
    assert await wait_or_stop(future, asyncio.Event()) is True  # not raised here
    assert isinstance(future.exception(), RuntimeError)


async def test_wait_or_stop_raises_what_its_awaitable_raised() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(wait_or_stop(fails(), asyncio.Event()), 5)


async def test_background_tasks_are_kept_settled_and_their_failures_logged(caplog) -> None:
    from streambot.tasks import Background

    done: list[int] = []

    async def work(i: int) -> None:
        await asyncio.sleep(0.01 * i)
        done.append(i)

    async def broken() -> None:
        raise RuntimeError("a bug in a fire-and-forget task")

    background = Background("test work")
    for i in range(3):
        background.spawn(work(i), name=f"work-{i}")
    background.spawn(broken(), name="broken")
    assert len(background) == 4
    await background.settle()
    assert sorted(done) == [0, 1, 2] and len(background) == 0
    assert "test work: broken failed" in caplog.text and "a bug in a" in caplog.text
