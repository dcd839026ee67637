"""The host: what is said next, one turn at a time, and when a turn is cut off.

Turn policy only: questions before the sales script, the operator taking over, commands,
and interruptions. Producing a turn (brain -> voice -> face -> presenter) is
`production.TurnProducer`'s; what interrupts and what is asked again is ingest's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from streambot.catalog import LiveCatalog
from streambot.clock import Clock
from streambot.config import HostConfig
from streambot.events import ChatMessage, Kind, MessageStatus
from streambot.ingest import Ingest, skipped_by_operator
from streambot.lang import detect_lang
from streambot.production import Production, TurnProducer
from streambot.script.model import ScriptLine, default_script
from streambot.script.runner import ScriptRunner
from streambot.store import Store
from streambot.tasks import first_of
from streambot.turn import ObserverWorker, Outcome, Turn, TurnKind

log = logging.getLogger(__name__)


class Host:
    def __init__(
        self,
        config: HostConfig,
        ingest: Ingest,
        producer: TurnProducer,
        store: Store,
        clock: Clock,
        *,
        idle_pitch_after_s: float = 20.0,
        observers: Sequence[ObserverWorker] = (),
        script: ScriptRunner | None = None,
    ) -> None:
        """``script``: what the host says when chat is quiet (default: the idle pitch
        rotation, after ``idle_pitch_after_s``)."""
        self.config, self.idle_pitch_after_s = config, idle_pitch_after_s
        self.script = script or ScriptRunner(default_script(), idle_pitch_after_s, LiveCatalog())
        self.ingest, self.inbox = ingest, ingest.inbox
        self.producer, self.brain = producer, producer.brain
        self.store, self.clock = store, clock
        # Given to every turn: the record, metrics, the OBS director, chat replies.
        self.observers = list(observers)
        self._pitches = 0
        self._lang = "en"
        self.turns_played = 0
        self.current: Turn | None = None
        self._in_charge = asyncio.Event()  # cleared while a person has taken over
        self._in_charge.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self.clock.realtime:  # fast mode waits for frames: it schedules on no rate
            await self.producer.faces.calibrate()
        last_activity = self.clock.now()
        while not stop.is_set():
            if not self._in_charge.is_set():  # a person speaks: the idle loop, nothing said
                await first_of(self._in_charge.wait(), stop.wait())
                last_activity = self.clock.now()
                continue
            item = self.ingest.take()
            if item is None:  # nothing to answer: the script's turn, when it is due
                wait = self.script.due_in(self.clock.now(), last_activity)
                if wait is not None and wait <= 0:
                    await self._run_script(stop)
                    last_activity = self.clock.now()
                    continue
                timer = [self.clock.sleep(wait)] if wait is not None else []
                await first_of(self.inbox.wait(), stop.wait(), *timer)
                continue
            msg, priority = item
            if msg.kind == Kind.COMMAND:
                await self._command(msg, stop)
            else:
                turn = self._answer_turn(msg, priority)
                if await self.play(turn, stop) == Outcome.PLAYED and turn.kind == TurnKind.ANSWER:
                    self.script.answered()
            last_activity = self.clock.now()

    # -- the operator taking over --------------------------------------------------------
    @property
    def taken_over(self) -> bool:
        return not self._in_charge.is_set()

    def take_over(self) -> None:
        """A person speaks now: the current turn stops and the host says nothing (the face
        shows its idle loop) until ``hand_back``; chat keeps queuing meanwhile."""
        self._in_charge.clear()
        if self.current is not None:
            self.current.interrupt()

    def hand_back(self) -> None:
        self._in_charge.set()

    # -- turns -------------------------------------------------------------------------
    def _new_turn(
        self,
        kind: TurnKind,
        message: ChatMessage | None,
        lang: str,
        topic: str | None = None,
        priority: int = 0,
    ) -> Turn:
        turn_id = self.store.start_turn(message.id if message else None, kind, lang)
        turn = Turn(turn_id, kind, message, lang, topic, priority, observers=self.observers)
        turn.timings.arrived = message.arrived if message else time.perf_counter()
        turn.timings.dequeued = time.perf_counter()
        return turn

    def _answer_turn(self, msg: ChatMessage, priority: int = 0) -> Turn:
        lang = detect_lang(msg.text)
        # A batched thanks is already the words to say; everything else gets an answer.
        kind = TurnKind.THANKS if msg.meta.get("thanks") else TurnKind.ANSWER
        if kind == TurnKind.ANSWER:
            self._lang = lang
        return self._new_turn(kind, msg, lang, priority=priority)

    def _pitch_turn(self, topic: str | None = None, kind: TurnKind = TurnKind.PITCH) -> Turn:
        """An unprompted turn: a product pitch, or (SAY) the operator's own words."""
        lang = detect_lang(topic) if kind == TurnKind.SAY and topic else self._lang
        return self._new_turn(kind, None, lang, topic or self._next_pitch())

    async def _run_script(self, stop: asyncio.Event) -> None:
        """Say the script's current segment; the runner moves on once it was played."""
        line = self.script.line(self._lang, self._next_pitch)
        if line.skipped or (not line.text and not line.segment.is_pitch):  # or a silent Q&A
            self.script.ended(line, True, self.clock.now(), skipped=bool(line.skipped))
            return
        turn = self._script_turn(line)
        self.script.started(line, self.clock.now())
        outcome = await self.play(turn, stop)
        skipped = turn.interrupted_by is not None and skipped_by_operator(turn.interrupted_by)
        self.script.ended(line, outcome == Outcome.PLAYED, self.clock.now(), skipped=skipped)

    def _script_turn(self, line: ScriptLine) -> Turn:
        if line.segment.is_pitch:
            turn = self._new_turn(TurnKind.PITCH, None, self._lang, line.product)
        else:
            turn = self._new_turn(TurnKind.SCRIPT, None, line.lang, line.product)
        turn.script = line
        return turn

    def _next_pitch(self) -> str:
        """The next product of the catalog's pitch schedule (re-read: the catalog may change)."""
        schedule = self.brain.pitch_topics()
        topic = schedule[self._pitches % len(schedule)]
        self._pitches += 1
        return topic

    async def _command(self, msg: ChatMessage, stop: asyncio.Event) -> None:
        word, _, rest = msg.text.strip().partition(" ")
        self.store.set_status(msg.stored_id, MessageStatus.ANSWERED)
        if word in ("!skip", "!stop"):
            log.info("operator: %s (current turn already interrupted)", word)
        elif word == "!pitch":
            await self.play(self._pitch_turn(rest.strip() or None), stop)
        elif word == "!say" and rest.strip():
            await self.play(self._pitch_turn(rest.strip(), kind=TurnKind.SAY), stop)
        elif word == "!script":
            problem = self.script.command(rest)
            if problem is not None:
                self.store.log_decision(msg.stored_id, MessageStatus.REJECTED, problem, None)
        else:
            self.store.log_decision(
                msg.stored_id, MessageStatus.REJECTED, f"unknown command {word!r}", None
            )

    async def play(self, turn: Turn, stop: asyncio.Event) -> Outcome:
        """Produce and present one turn until it ends; returns its outcome. The turn is
        interrupted by a message ingest says is more important, by ``turn.interrupt()`` or by
        ``stop`` (the daemon shutting down)."""
        self.current = turn
        turn.started()
        production = self.producer.start(turn)
        self.ingest.urgent.clear()
        outcome = Outcome.SHUTDOWN  # unless it ends: cancelled, the daemon is stopping
        try:
            outcome = await self._until_it_ends(production, stop)
        finally:
            self.current = None
            turn.end(outcome)
        if outcome == Outcome.INTERRUPTED:
            # what ingest stores of it next comes after the record of how it ended
            await asyncio.gather(*(observer.drain() for observer in self.observers))
            self.ingest.after_interruption(turn)
        self.turns_played += 1
        return outcome

    async def _until_it_ends(self, production: Production, stop: asyncio.Event) -> Outcome:
        turn, shown = production.turn, production.shown
        while not shown.done():
            await first_of(shown, self.ingest.urgent.wait(), stop.wait(), turn.wait_interrupted())
            if shown.done():
                break
            if stop.is_set():
                outcome = Outcome.SHUTDOWN
            elif turn.interrupt_requested:
                outcome = Outcome.INTERRUPTED
            elif (by := self.ingest.interrupter()) is not None:
                turn.interrupt(by=by)
                outcome = Outcome.INTERRUPTED
                log.info("turn %d interrupted by a more important message", turn.id)
            else:
                self.ingest.urgent.clear()
                continue
            await production.stop()
            return outcome
        return await production.finish()
