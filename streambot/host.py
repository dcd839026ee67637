"""The host: one turn at a time, interruptions, operator commands and the idle pitch.

A turn streams through three small tasks joined by bounded queues: brain text is split into
sentences, each sentence is voiced and turned into frames, and the frames go to the presenter
in small clips while later sentences are still being voiced. The host waits for the presenter
to finish the turn, or interrupts it when something more important arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from streambot.brain.base import Brain
from streambot.catalog import LiveCatalog
from streambot.clock import Clock
from streambot.config import HostConfig
from streambot.events import ChatMessage, Clip, Kind, MessageStatus, Sentence, Speech, TurnEnd
from streambot.face.base import Face, SlowFacePolicy
from streambot.ingest import Ingest
from streambot.lang import detect_lang
from streambot.screening import screen_fold
from streambot.script.model import ScriptLine, default_script
from streambot.script.runner import ScriptRunner
from streambot.sentences import SentenceSplitter
from streambot.stage.presenter import Presenter
from streambot.stage.schedule import SAFETY, RenderRate
from streambot.store import Store
from streambot.tasks import first_of
from streambot.timing import FACE_RATE, samples_per_frame
from streambot.turn import Outcome, Turn, TurnKind, TurnObserver
from streambot.voice.base import (
    AlignedVoice,
    SoundGuard,
    StreamingVoice,
    Voice,
    pieces_of,
    to_speech,
)
from streambot.voice.pieces import SpeechAssembler, join_speech

log = logging.getLogger(__name__)
_END = object()
MAX_REQUEUES = 2  # an interrupted question is tried again at most this many times


@dataclass
class Stages:
    """A turn's streaming stages, in the order its data flows through them."""

    brain: Brain
    voice: Voice
    face: Face
    presenter: Presenter


class Host:
    def __init__(
        self,
        config: HostConfig,
        ingest: Ingest,
        stages: Stages,
        store: Store,
        clock: Clock,
        *,
        idle_pitch_after_s: float = 20.0,
        observers: Sequence[TurnObserver] = (),
        slow: SlowFacePolicy | None = None,
        script: ScriptRunner | None = None,
        reword_script: bool = True,
    ) -> None:
        """``script``: what the host says when chat is quiet (default: the idle pitch
        rotation, after ``idle_pitch_after_s``); ``reword_script``: let the brain reword its
        lines (else they are said as authored)."""
        self.config, self.idle_pitch_after_s = config, idle_pitch_after_s
        self.script = script or ScriptRunner(default_script(), idle_pitch_after_s, LiveCatalog())
        self.reword_script = reword_script
        self.ingest, self.inbox = ingest, ingest.inbox
        self.brain, self.voice = stages.brain, stages.voice
        self.face, self.presenter = stages.face, stages.presenter
        self.store, self.clock, self.fps = store, clock, stages.presenter.fps
        # Given to every turn: the record, metrics, the OBS director, chat replies.
        self.observers = list(observers)
        self._pitches = 0
        self._lang = "en"
        self.turns_played = 0
        self.current: Turn | None = None
        self.slow = slow or SlowFacePolicy()
        self.render_rates: dict[str, RenderRate] = {}  # per face backend
        self._said_slow: set[str] = set()
        self._in_charge = asyncio.Event()  # cleared while a person has taken over
        self._in_charge.set()
        self._said_full: set[str] = set()
        self.sound = SoundGuard()  # no unplayable audio from any voice reaches the face

    async def run(self, stop: asyncio.Event) -> None:
        if self.clock.realtime:  # fast mode waits for frames: it schedules on no rate
            await self.calibrate()
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
        skipped = _skipped_by(turn.interrupted_by)
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
        self.store.set_status(msg.id, MessageStatus.ANSWERED)
        if word in ("!skip", "!stop"):
            log.info("operator: %s (current turn already interrupted)", word)
        elif word == "!pitch":
            await self.play(self._pitch_turn(rest.strip() or None), stop)
        elif word == "!say" and rest.strip():
            await self.play(self._pitch_turn(rest.strip(), kind=TurnKind.SAY), stop)
        elif word == "!script":
            problem = self.script.command(rest)
            if problem is not None:
                self.store.log_decision(msg.id, MessageStatus.REJECTED, problem, None)
        else:
            self.store.log_decision(
                msg.id, MessageStatus.REJECTED, f"unknown command {word!r}", None
            )

    async def play(self, turn: Turn, stop: asyncio.Event) -> Outcome:
        """Produce and present one turn until it ends; returns its outcome. The turn is
        interrupted by a message of at least ``interrupt_priority``, by ``turn.interrupt()``
        or by ``stop`` (the daemon shutting down)."""
        self.current = turn
        self.face.reset()
        turn.started()
        done = self.presenter.begin_turn(turn)
        producer = asyncio.create_task(self._produce(turn), name=f"turn-{turn.id}")
        self.ingest.urgent.clear()
        outcome: Outcome | None = None
        try:
            outcome = await self._until_it_ends(turn, done, producer, stop)
        finally:
            self.current = None
            turn.end(outcome or Outcome.SHUTDOWN)  # cancelled: the daemon is stopping
        if outcome == Outcome.INTERRUPTED and turn.message is not None:
            self._after_interruption(turn, turn.message, turn.interrupted_by)
        self.turns_played += 1
        return outcome

    async def _until_it_ends(
        self, turn: Turn, done: asyncio.Future[Outcome], producer: asyncio.Task, stop: asyncio.Event
    ) -> Outcome:
        while not done.done():
            await first_of(done, self.ingest.urgent.wait(), stop.wait(), turn.wait_interrupted())
            if done.done():
                break
            if stop.is_set():
                outcome = Outcome.SHUTDOWN
            elif turn.interrupt_requested:
                outcome = Outcome.INTERRUPTED
            elif (self.inbox.peek_priority() or 0) >= self.config.interrupt_priority:
                turn.interrupt(by=(self.inbox.peek() or (None, 0))[0])
                outcome = Outcome.INTERRUPTED
                log.info("turn %d interrupted by a more important message", turn.id)
            else:
                self.ingest.urgent.clear()
                continue
            self.presenter.interrupt(turn.id)
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
            await first_of(done, asyncio.sleep(1.0))  # its faded frame reaches the sinks
            return outcome
        failed = False
        with contextlib.suppress(asyncio.CancelledError):
            failed = await producer
        played = await done
        if failed:
            return Outcome.FAILED
        return played

    def _after_interruption(
        self, turn: Turn, msg: ChatMessage, interrupter: ChatMessage | None
    ) -> None:
        """An interrupted question (or thanks) is answered again after what interrupted it,
        unless the operator skipped it, it was cut off too often, or the same viewer asked
        the same again meanwhile; each of those is stored as the reason."""
        if _skipped_by(interrupter):
            word = interrupter.text.strip().split(" ", 1)[0]
            self.store.log_decision(
                msg.id, MessageStatus.SKIPPED, f"skipped by the operator ({word})", None
            )
            return
        tries = msg.meta["interruptions"] = msg.meta.get("interruptions", 0) + 1
        if tries > MAX_REQUEUES:
            reason = f"interrupted {tries} times; not tried again"
            self.store.log_decision(msg.id, MessageStatus.UNANSWERED, reason, None)
            log.info("#%s %s", msg.id, reason)
            return
        asked = screen_fold(msg.text)
        for other in self.inbox.queued():
            if other is not msg and other.user == msg.user and screen_fold(other.text) == asked:
                reason = f"interrupted; the same question is queued again as #{other.id}"
                self.store.log_decision(msg.id, MessageStatus.SUPERSEDED, reason, None)
                return
        by = f"{interrupter.kind} #{interrupter.id}" if interrupter is not None else "the operator"
        self.ingest.requeue(msg, turn.priority, f"re-queued: interrupted by {by}")
        log.info("#%s queued again: interrupted by %s", msg.id, by)

    async def _produce(self, turn: Turn) -> bool:
        """Run brain -> voice -> face for one turn; always ends with TurnEnd. True on failure."""
        sentences: asyncio.Queue = asyncio.Queue(maxsize=4)
        speeches: asyncio.Queue = asyncio.Queue(maxsize=2)
        tasks = [
            asyncio.create_task(self._think(turn, sentences)),
            asyncio.create_task(self._speak(turn, sentences, speeches)),
            asyncio.create_task(self._show(turn, speeches)),
        ]
        failed = False
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            raise
        except Exception:
            failed = True
            log.exception("turn %d failed; the stream goes on", turn.id)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.presenter.push(TurnEnd(turn.id))
        return failed

    async def _think(self, turn: Turn, out: asyncio.Queue) -> None:
        splitter = SentenceSplitter()
        limit = self.config.max_reply_chars
        if turn.kind == TurnKind.SAY:
            stream = _one(turn.topic or "")
        elif turn.kind == TurnKind.THANKS and turn.message is not None:
            stream = _one(turn.message.text)
        elif turn.kind == TurnKind.SCRIPT and not self.reword_script and turn.script is not None:
            stream = _one(turn.script.text)
        else:
            stream = self.brain.reply(turn)

        async def sentence(text: str) -> None:
            index = len(turn.sentences)
            turn.sentences[index] = text
            await out.put(Sentence(turn.id, index, text, turn.lang))

        async for delta in stream:
            if turn.timings.first_text is None:
                turn.timings.first_text = time.perf_counter()
            delta = delta[: max(0, limit - len(turn.reply))]
            turn.reply += delta  # what was said so far is kept, even if it is interrupted
            for text in splitter.feed(delta):
                await sentence(text)
            if len(turn.reply) >= limit:
                break
        for text in splitter.flush():
            await sentence(text)
        await out.put(_END)

    async def _speak(self, turn: Turn, inbox: asyncio.Queue, out: asyncio.Queue) -> None:
        while (sentence := await inbox.get()) is not _END:
            async for speech in self._speeches(sentence):
                if turn.timings.first_audio is None:
                    turn.timings.first_audio = time.perf_counter()
                await out.put(speech)
        await out.put(_END)

    async def _speeches(self, sentence: Sentence) -> AsyncIterator[Speech]:
        """The sentence's audio as Speech: piece by piece from a streaming voice (the first
        piece as soon as it is decoded), else one Speech per sentence the voice makes."""
        what = f"turn {sentence.turn_id} sentence {sentence.index}"
        if isinstance(self.voice, StreamingVoice):
            assembler = None
            pieces = pieces_of(self.voice, sentence.text, sentence.lang)
            async for piece in self.sound.sound(pieces, lambda p: p.pcm, what):
                assembler = assembler or SpeechAssembler(piece.rate, sentence, self.fps)
                if (speech := assembler.push(piece.pcm)) is not None:
                    yield speech
                if piece.ends:
                    yield assembler.finish()
                    assembler = None
            if assembler is not None:  # a voice that stopped without ending its sentence
                yield assembler.finish()
            return
        if isinstance(self.voice, AlignedVoice):
            parts = self.voice.speak_aligned(sentence.text, sentence.lang)
        else:
            parts = _without_phonemes(self.voice.speak(sentence.text, sentence.lang))
        async for pcm, phonemes in self.sound.sound(parts, lambda part: part[0], what):
            yield to_speech(pcm, self.voice.sample_rate, sentence, self.fps, phonemes)

    # -- the face: scheduled rendering -------------------------------------------------------
    def render_rate(self, face: Face) -> RenderRate:
        return self.render_rates.setdefault(_backend(face), RenderRate())

    async def calibrate(self, seconds: float = 1.0) -> None:
        """Render a second of silence twice before the first turn, so the first speech is
        scheduled on a measured render rate: the first pass warms the engine up (its first
        runs are slow) and is forgotten, the second is measured."""
        frames = max(2, round(seconds * self.fps))
        silence = np.zeros(frames * samples_per_frame(self.fps, FACE_RATE), np.float32)
        try:
            await self._render(self.face, silence, 0)
            self.render_rates.pop(_backend(self.face), None)
            await self._render(self.face, silence, 0)
        except Exception:
            log.exception("the face failed its warm-up render; its first turn may be late")
        finally:
            self.face.reset()

    def _face_for(self, face: Face) -> Face:
        """``face``, or the mouth face when ``face`` is too slow and the policy says so."""
        rate = self.render_rate(face)
        factor = rate.real_time_factor(self.fps)
        if rate.samples == 0 or factor >= self.slow.floor:
            return face
        fallback = self.slow.fallback if self.slow.mode == "mouth" else None
        name = _backend(face)
        if name not in self._said_slow:
            self._said_slow.add(name)
            then = (
                "finishing turns with the mouth face"
                if fallback is not None
                else ("each sentence starts later so the voice never breaks up")
            )
            log.warning(
                "the %s face renders at %.1f fps (%.2fx real time, under the floor %.2fx): %s",
                name,
                rate.fps,
                factor,
                self.slow.floor,
                then,
            )
        return fallback if fallback is not None else face

    async def _show(self, turn: Turn, inbox: asyncio.Queue) -> None:
        face, held, follows, in_pieces = self.face, [], False, True
        while (speech := await inbox.get()) is not _END:
            assert isinstance(speech, Speech)
            if not follows and not held:  # a sentence's pieces stay on one face, one way
                chosen = self._face_for(face)
                if chosen is not face:
                    face = chosen
                    face.reset()
                in_pieces = self._renders_in_pieces(face)
            if (speech.continues or held) and not in_pieces:
                held.append(speech)  # this face needs the whole sentence's audio at once
                if speech.continues:
                    continue
                speech, held = join_speech(held), []
            self._check_buffer(face, speech.frames)
            rate = self.render_rate(face)
            start = self.presenter.schedule(turn.id, speech.frames, rate, follows=follows)
            await self._render(face, speech.pcm16k, start, speech, turn)
            follows = speech.continues

    def _renders_in_pieces(self, face: Face) -> bool:
        """Whether a sentence may be shown piece by piece on ``face``: its frames must depend
        only on their own audio (Wav2Lip's mel window reaches into the next piece), and it
        must render faster than real time, since a piece follows on with no pause to wait."""
        if not getattr(face, "renders_in_pieces", False):
            return False
        if not self.clock.realtime:
            return True  # no deadlines: nothing can be late
        rate = self.render_rate(face)
        return rate.samples == 0 or rate.planning_fps() / SAFETY >= self.fps

    def _check_buffer(self, face: Face, frames: int) -> None:
        """Say once per backend when a speech needs more frames queued ahead than the
        presenter holds: the face would wait for room and the voice break up."""
        need = self.render_rate(face).buffered_frames(frames, self.fps)
        room, name = self.presenter.clips.max_frames, _backend(face)
        if need > room and name not in self._said_full:
            self._said_full.add(name)
            log.warning(
                "a %.1f s speech needs %d frames queued ahead on the %s face, but "
                "[face] buffer_s holds %d: raise buffer_s to %.0f or more",
                frames / self.fps,
                need,
                name,
                room,
                need / self.fps + 1,
            )

    async def _render(
        self,
        face: Face,
        pcm16k: np.ndarray,
        start: int,
        speech: Speech | None = None,
        turn: Turn | None = None,
    ) -> None:
        """Render ``pcm16k`` for frame indices from ``start`` (``speech``'s clips to the
        presenter when ``turn`` is given), timing the face alone for its render rate."""
        spf, rate = self.presenter.samples_per_frame, self.render_rate(face)
        frames = pcm16k.size // samples_per_frame(self.fps, FACE_RATE)
        shown = 0
        render = face.render(pcm16k, start, speech.visemes if speech else None)
        asked = self.clock.now()  # the presenter's time: what the schedule is made in
        async for batch in render:
            took, n = self.clock.now() - asked, batch.shape[0]
            if shown == 0:
                rate.observe_first(n, took)
            else:
                rate.observe_batch(n, took)
            if turn is not None and speech is not None:
                pcm = speech.pcm48k[shown * spf : (shown + n) * spf]
                last = shown + n >= frames and not speech.continues
                clip = Clip(turn.id, batch, pcm, speech.sentence.index, start + shown, last)
                await self.presenter.push(clip)
            shown += n
            asked = self.clock.now()
        if shown != frames:
            raise RuntimeError(f"face rendered {shown} frames for {frames}")


def _skipped_by(interrupter: ChatMessage | None) -> bool:
    """Whether a turn was cut off by the operator's ``!skip`` or ``!stop``."""
    if interrupter is None or interrupter.kind != Kind.COMMAND:
        return False
    return interrupter.text.strip().split(" ", 1)[0] in ("!skip", "!stop")


def _backend(face: Face) -> str:
    """The name a face's render rate is kept under: its engine's, else its class's."""
    engine = getattr(face, "engine", None)
    return getattr(engine, "name", None) or type(face).__name__


async def _without_phonemes(stream):
    async for pcm in stream:
        yield pcm, None


async def _one(text: str):
    yield text
