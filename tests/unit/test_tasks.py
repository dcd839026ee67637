"""Shutdown ends every task, even one that loses a cancel (Python 3.11's wait_for can)."""

from __future__ import annotations

import asyncio

from streambot.tasks import cancel_and_wait


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
