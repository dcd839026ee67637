"""Producing a turn: brain text -> sentences -> speech -> face -> presenter, streamed.

Three small tasks joined by bounded queues: the brain's text is split into sentences, each
sentence is voiced, and its speech is drawn by the face into the presenter while later
sentences are still being written and voiced. A `Production` is one turn's run of them, with
the presenter's word on how it was shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from streambot.brain.base import Brain
from streambot.events import Sentence, Speech, TurnEnd
from streambot.sentences import SentenceSplitter
from streambot.stage.face_driver import FaceDriver
from streambot.stage.presenter import Presenter
from streambot.tasks import first_of
from streambot.turn import Outcome, Turn, TurnKind
from streambot.voice.base import (
    AlignedVoice,
    SoundGuard,
    StreamingVoice,
    Voice,
    pieces_of,
    to_speech,
)
from streambot.voice.pieces import SpeechAssembler

log = logging.getLogger(__name__)
_END = object()
FADE_WAIT_S = 1.0  # how long an interrupted turn's faded frame may take to reach the sinks


@dataclass
class Production:
    """One turn being produced and shown: ``shown`` resolves to how the presenter showed it
    (played, interrupted, shutdown); ``task`` returns True when a stage failed."""

    turn: Turn
    shown: asyncio.Future[Outcome]
    task: asyncio.Task[bool]
    presenter: Presenter
    begun: asyncio.Event  # set by the task's first step: from then on it pushes the TurnEnd

    async def stop(self) -> None:
        """Cut the turn off: its audio fades at the next frame, the stages stop."""
        self.presenter.interrupt(self.turn.id)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if not self.begun.is_set():
            # cancelled before its first step, so it never pushed its end: without it the
            # presenter would wait for the turn's frames forever (on a virtual clock, all does)
            await self.presenter.push(TurnEnd(self.turn.id))
        await first_of(self.shown, asyncio.sleep(FADE_WAIT_S))

    async def finish(self) -> Outcome:
        """The outcome once every stage is done and the presenter has shown the turn."""
        failed = False
        with contextlib.suppress(asyncio.CancelledError):
            failed = await self.task
        played = await self.shown
        return Outcome.FAILED if failed else played


class TurnProducer:
    def __init__(
        self,
        brain: Brain,
        voice: Voice,
        faces: FaceDriver,
        presenter: Presenter,
        *,
        max_reply_chars: int,
        reword_script: bool = True,
    ) -> None:
        """``reword_script``: let the brain reword the sales script's lines (else they are
        said as authored)."""
        self.brain, self.voice, self.faces, self.presenter = brain, voice, faces, presenter
        self.max_reply_chars, self.reword_script = max_reply_chars, reword_script
        self.fps = presenter.fps
        self.sound = SoundGuard()  # no unplayable audio from any voice reaches the face

    def start(self, turn: Turn) -> Production:
        self.faces.reset()
        shown = self.presenter.begin_turn(turn)
        begun = asyncio.Event()
        task = asyncio.create_task(self._produce(turn, begun), name=f"turn-{turn.id}")
        return Production(turn, shown, task, self.presenter, begun)

    async def _produce(self, turn: Turn, begun: asyncio.Event) -> bool:
        """Run brain -> voice -> face for one turn; always ends with TurnEnd. True on failure."""
        begun.set()
        sentences: asyncio.Queue = asyncio.Queue(maxsize=4)
        speeches: asyncio.Queue = asyncio.Queue(maxsize=2)
        tasks = [
            asyncio.create_task(self._think(turn, sentences)),
            asyncio.create_task(self._speak(turn, sentences, speeches)),
            asyncio.create_task(self.faces.show(turn, _drain(speeches))),
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

    def _text(self, turn: Turn) -> AsyncIterator[str]:
        """What the turn says: given words as they are, else what the brain writes."""
        if turn.kind == TurnKind.SAY:
            return _one(turn.topic or "")
        if turn.kind == TurnKind.THANKS and turn.message is not None:
            return _one(turn.message.text)
        if turn.kind == TurnKind.SCRIPT and not self.reword_script and turn.script is not None:
            return _one(turn.script.text)
        return self.brain.reply(turn)

    async def _think(self, turn: Turn, out: asyncio.Queue) -> None:
        splitter = SentenceSplitter()
        limit = self.max_reply_chars

        async def sentence(text: str) -> None:
            index = len(turn.sentences)
            turn.sentences[index] = text
            await out.put(Sentence(turn.id, index, text, turn.lang))

        async for delta in self._text(turn):
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
        async for sentence in _drain(inbox):
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


async def _drain(queue: asyncio.Queue) -> AsyncIterator:
    """A queue's items up to the end marker."""
    while (item := await queue.get()) is not _END:
        yield item


async def _without_phonemes(stream):
    async for pcm in stream:
        yield pcm, None


async def _one(text: str):
    yield text
