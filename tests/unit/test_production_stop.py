"""Cutting a turn off always ends it at the presenter, even before its production began (a
turn interrupted the moment it started once left the presenter waiting for its frames
forever, and with it the whole stream on a virtual clock)."""

from __future__ import annotations

import asyncio

from streambot.events import TurnEnd
from streambot.production import Production
from streambot.turn import Outcome, Turn, TurnKind


class Presenter:
    """What a Production asks of the presenter: a cut, and the turn's end."""

    def __init__(self) -> None:
        self.pushed: list[object] = []
        self.cut: list[int] = []

    def interrupt(self, turn_id: int) -> None:
        self.cut.append(turn_id)

    async def push(self, item: object) -> None:
        self.pushed.append(item)


async def production(begins: bool) -> tuple[Production, Presenter]:
    presenter, begun = Presenter(), asyncio.Event()

    async def produce() -> bool:  # as TurnProducer._produce: marks its start, ends the turn
        begun.set()
        try:
            await asyncio.sleep(60)
        finally:
            await presenter.push(TurnEnd(7))
        return False

    shown: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    shown.set_result(Outcome.INTERRUPTED)
    turn = Turn(7, TurnKind.SCRIPT, None)
    made = Production(turn, shown, asyncio.create_task(produce()), presenter, begun)  # type: ignore[arg-type]
    if begins:
        await asyncio.sleep(0)  # the task takes its first step
    return made, presenter


async def test_a_turn_cut_off_before_its_first_step_still_ends_at_the_presenter():
    made, presenter = await production(begins=False)
    await made.stop()
    assert presenter.cut == [7] and presenter.pushed == [TurnEnd(7)]


async def test_a_turn_cut_off_while_running_ends_once():
    made, presenter = await production(begins=True)
    await made.stop()
    assert presenter.pushed == [TurnEnd(7)]  # its own end, not a second one
