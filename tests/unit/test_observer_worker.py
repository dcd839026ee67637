"""Turn observers run on their own queue and task, never inside the stage that reports."""

from __future__ import annotations

import asyncio

from streambot.turn import ObserverWorker, Outcome, Turn, TurnObserver


class Notes(TurnObserver):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def turn_started(self, turn: Turn) -> None:
        self.seen.append("started")

    def first_frame(self, turn: Turn) -> None:
        self.seen.append("first_frame")

    def sentence_spoken(self, turn, sentence) -> None:
        self.seen.append(f"sentence {sentence.index}: {sentence.text}")

    def turn_ended(self, turn: Turn) -> None:
        self.seen.append(f"ended {turn.outcome}")


class Broken(TurnObserver):
    def first_frame(self, turn: Turn) -> None:
        raise RuntimeError("an observer's bug")


async def test_the_reporting_stage_only_queues_and_the_observer_gets_every_event_in_order():
    notes = Notes()
    worker = ObserverWorker(notes)
    turn = Turn(1, "answer", None, observers=[worker])
    turn.sentences[0] = "Hello there."
    turn.started()
    turn.frame_shown()
    turn.speech_shown(0, frames=10, first_frame=3)
    turn.end(Outcome.PLAYED)
    assert notes.seen == []  # the frame loop called nothing of the observer's
    running = asyncio.create_task(worker.run())
    await worker.drain()
    assert notes.seen == ["started", "first_frame", "sentence 0: Hello there.", "ended played"]
    running.cancel()


async def test_an_observer_that_raises_is_logged_and_its_later_events_still_arrive(caplog):
    class Both(Broken, Notes):
        pass

    both = Both()
    worker = ObserverWorker(both)
    running = asyncio.create_task(worker.run())
    turn = Turn(2, "pitch", None, observers=[worker])
    turn.started()
    turn.frame_shown()
    turn.end(Outcome.INTERRUPTED)
    await worker.drain()
    running.cancel()
    assert both.seen == ["started", "ended interrupted"]
    assert "Both failed on first_frame of turn 2" in caplog.text
