"""A turn: one thing the host says, from its creation to its outcome.

The host creates a turn, the presenter shows it, and both report what happened to the turn
itself; the turn records the instant and tells its observers (the store, the metrics, the OBS
director, chat replies). So nothing inside the streaming stages calls the store or a callback,
and the data still flows one way: chat -> triage -> host -> brain -> voice -> face ->
presenter -> sinks.

Events arrive in this order: ``turn_started``, ``first_frame`` (once its first frame is handed
to the sinks), ``sentence_spoken`` (each speech whose last frame was shown), ``turn_ended``.
An observer's failure is logged and never reaches the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from streambot.events import ChatMessage

if TYPE_CHECKING:
    from streambot.script.model import ScriptLine

log = logging.getLogger(__name__)


class TurnKind(StrEnum):
    """What a turn is. The values are stored, so keep them stable."""

    ANSWER = "answer"  # an answer to a viewer's message, written by the brain
    THANKS = "thanks"  # a batched thanks for gifts: its words are given
    PITCH = "pitch"  # an unprompted product pitch, written by the brain
    SAY = "say"  # the operator's own words (!say), said as they are
    SCRIPT = "script"  # a line of the sales script: authored, reworded by an LLM brain


class Outcome(StrEnum):
    """How a turn ended. The values are stored, so keep them stable."""

    PLAYED = "played"  # every frame of it was shown
    INTERRUPTED = "interrupted"  # cut short by something more important
    SHUTDOWN = "interrupted-by-shutdown"  # the daemon stopped during it
    FAILED = "failed"  # a stage raised; the stream went on


@dataclass
class TurnTimings:
    """Monotonic (perf_counter) instants of one turn, filled as its stages first produce."""

    arrived: float | None = None
    dequeued: float | None = None
    first_text: float | None = None
    first_audio: float | None = None
    first_frame: float | None = None
    interrupt_asked: float | None = None  # the interrupting message arrived (or the call)
    silenced: float | None = None  # the faded frame, the turn's last sound, reached the sinks

    def since_arrival_ms(self, instant: float | None) -> float | None:
        if instant is None or self.arrived is None:
            return None
        return (instant - self.arrived) * 1000.0

    def interruption_ms(self) -> float | None:
        """From the interrupt command's arrival to the turn's last voiced sample at the sinks."""
        if self.interrupt_asked is None or self.silenced is None:
            return None
        return (self.silenced - self.interrupt_asked) * 1000.0


@dataclass(frozen=True)
class SpokenSentence:
    """A speech the presenter has shown to its last frame (a sentence, or one part of it)."""

    index: int  # the sentence's index in the turn
    text: str
    frames: int  # frames it was shown for, gaps included
    first_frame: int  # the stream frame index of its first frame
    at: float  # perf_counter when its last frame was handed to the sinks


class TurnObserver:
    """Receives a turn's events; override what you need. Called on the event loop: an
    observer that has slow work to do starts a task."""

    def turn_started(self, turn: Turn) -> None: ...
    def first_frame(self, turn: Turn) -> None: ...
    def sentence_spoken(self, turn: Turn, sentence: SpokenSentence) -> None: ...
    def turn_ended(self, turn: Turn) -> None: ...


class ObserverWorker(TurnObserver):
    """One observer on its own queue and task (pipecat's WorkerObserver): an event is queued
    in constant time wherever it happens, the presenter's frame loop included, and reaches
    the observer in order from ``run``; so no store write, OBS request or slow observer can
    delay a frame. ``drain`` waits until every event queued so far was handled."""

    def __init__(self, observer: TurnObserver) -> None:
        self.observer = observer
        self._queue: asyncio.Queue[tuple[str, Turn, tuple[object, ...]]] = asyncio.Queue()

    def turn_started(self, turn: Turn) -> None:
        self._queue.put_nowait(("turn_started", turn, ()))

    def first_frame(self, turn: Turn) -> None:
        self._queue.put_nowait(("first_frame", turn, ()))

    def sentence_spoken(self, turn: Turn, sentence: SpokenSentence) -> None:
        self._queue.put_nowait(("sentence_spoken", turn, (sentence,)))

    def turn_ended(self, turn: Turn) -> None:
        self._queue.put_nowait(("turn_ended", turn, ()))

    async def run(self) -> None:
        while True:
            event, turn, args = await self._queue.get()
            try:
                getattr(self.observer, event)(turn, *args)
            except Exception:  # an observer's bug must not stop the others or the stream
                name = type(self.observer).__name__
                log.exception("%s failed on %s of turn %d", name, event, turn.id)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        await self._queue.join()


@dataclass(eq=False)
class Turn:
    id: int
    kind: TurnKind
    message: ChatMessage | None
    lang: str = "en"
    topic: str | None = None  # the product of a pitch or script line, or the words of a "say"
    priority: int = 0  # the message's priority, kept to queue it again after an interruption
    reply: str = ""  # the text said so far (all of it once the brain has finished)
    timings: TurnTimings = field(default_factory=TurnTimings)
    outcome: Outcome | None = None
    interrupted_by: ChatMessage | None = None
    sentences: dict[int, str] = field(default_factory=dict)  # index -> text, as voiced
    spoken: list[SpokenSentence] = field(default_factory=list)
    observers: Sequence[TurnObserver] = field(default=(), repr=False)
    script: ScriptLine | None = None  # a SCRIPT turn's segment and authored words
    _interrupt: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self.kind = TurnKind(self.kind)  # a bad kind fails here, naming itself

    # -- control ------------------------------------------------------------------------
    def interrupt(self, by: ChatMessage | None = None) -> None:
        """Ask for the turn to stop: its audio fades at the next frame boundary and the rest
        is dropped. ``by`` is the message that interrupts it (its arrival starts the
        interruption's latency). Only the first request counts."""
        if self._interrupt.is_set() or self.outcome is not None:
            return
        self.interrupted_by = by
        self.timings.interrupt_asked = by.arrived if by is not None else time.perf_counter()
        self._interrupt.set()

    @property
    def interrupt_requested(self) -> bool:
        return self._interrupt.is_set()

    async def wait_interrupted(self) -> None:
        await self._interrupt.wait()

    # -- events, reported by the stage that sees them -------------------------------------
    def started(self) -> None:
        self._emit("turn_started")

    def frame_shown(self) -> None:
        """A frame of the turn reached the sinks; the first one is an event."""
        if self.timings.first_frame is None:
            self.timings.first_frame = time.perf_counter()
            self._emit("first_frame")

    def speech_shown(self, index: int, frames: int, first_frame: int) -> None:
        sentence = SpokenSentence(
            index, self.sentences.get(index, ""), frames, first_frame, time.perf_counter()
        )
        self.spoken.append(sentence)
        self._emit("sentence_spoken", sentence)

    def silenced(self) -> None:
        if self.timings.silenced is None:
            self.timings.silenced = time.perf_counter()

    def end(self, outcome: Outcome) -> None:
        """Record the outcome and tell the observers; only the first call counts."""
        if self.outcome is not None:
            return
        self.outcome = Outcome(outcome)
        self._emit("turn_ended")
        self._ended.set()

    async def ended(self) -> Outcome:
        """The outcome, once the turn has ended (at once if it has): anyone holding the turn
        can wait for it, as for livekit's SpeechHandle."""
        await self._ended.wait()
        assert self.outcome is not None  # set before the event, in end()
        return self.outcome

    def _emit(self, event: str, *args: object) -> None:
        for observer in self.observers:
            try:
                getattr(observer, event)(self, *args)
            except Exception:  # an observer's bug must not stop the stream
                log.exception("%s failed on %s of turn %d", type(observer).__name__, event, self.id)
