"""The co-host's microphone as a chat source: capture, cut utterances with VAD, transcribe.

Audio comes from an :class:`AudioSource` (a sound card through PortAudio, or a WAV file),
is resampled to 16 kHz, cut into utterances by the Silero VAD that ships inside faster-whisper
(an utterance ends after ``vad_min_silence_ms`` of silence, or at ``max_segment_s``), and each
utterance is transcribed by a local faster-whisper (CTranslate2) model in a worker thread.
Non-empty transcripts become ``ChatMessage(source="mic", kind=Kind.VOICE)``.

Nothing here downloads anything: ``chat.mic.model`` must be a local CTranslate2 Whisper folder
with its ``tokenizer.json`` (faster-whisper would otherwise fetch one from the Hub), e.g.::

    ct2-transformers-converter --model openai/whisper-small --output_dir models/whisper-small \\
        --copy_files tokenizer.json preprocessor_config.json --quantization int8

A missing sound card or PortAudio library is logged and retried, never fatal to the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from streambot.backoff import Backoff
from streambot.chat.audio_input import (
    RETRY_CAP_S,
    AudioSource,
    MicError,
    MicUnavailable,
    SoundDeviceSource,
)
from streambot.chat.vad import SAMPLE_RATE, Utterance, VadSegmenter
from streambot.events import ChatMessage, Kind
from streambot.resample import StreamResampler

log = logging.getLogger(__name__)

_CONVERT_HINT = (
    "convert one with `ct2-transformers-converter --model openai/whisper-small "
    "--output_dir models/whisper-small --copy_files tokenizer.json preprocessor_config.json "
    "--quantization int8`"
)

# --------------------------------------------------------------------------- the chat source


def check_model_dir(model_path: str | Path | None) -> Path:
    """The model folder, or a MicError naming ``chat.mic.model`` and how to fix it."""
    if not model_path or not str(model_path).strip():
        raise MicError(
            f"chat.mic.model is not set: point it at a local faster-whisper "
            f"(CTranslate2) Whisper model folder; {_CONVERT_HINT}"
        )
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise MicError(
            f"chat.mic.model: {path} does not exist or is not a folder; it must be "
            f"a local CTranslate2 Whisper model (nothing is downloaded); "
            f"{_CONVERT_HINT}"
        )
    missing = [n for n in ("model.bin", "tokenizer.json") if not (path / n).is_file()]
    if missing:
        raise MicError(
            f"chat.mic.model: {path} lacks {', '.join(missing)}; {_CONVERT_HINT} "
            f"(without tokenizer.json faster-whisper would try the Hugging Face Hub)"
        )
    return path


class MicChatSource:
    """The co-host's voice as chat: ``ChatMessage(source="mic", kind=Kind.VOICE)``."""

    name = "mic"

    def __init__(
        self,
        model_path: str,
        *,
        device: str | int | None = None,
        sample_rate: int | None = None,
        language: str | None = None,
        user: str = "cohost",
        compute_type: str = "int8",
        vad_min_silence_ms: int = 500,
        max_segment_s: float = 15.0,
        audio_source: AudioSource | None = None,
        model_device: str = "auto",
        transcribe_options: dict[str, Any] | None = None,
        retry_s: float = 5.0,
        max_pending: int = 4,
    ) -> None:
        self.model_path = check_model_dir(model_path)
        self.audio: AudioSource = audio_source or SoundDeviceSource(device, sample_rate)
        self.language = language or None
        self.user = user
        self._compute_type = compute_type
        self._model_device = model_device
        self._min_silence_ms = vad_min_silence_ms
        self._max_segment_s = max_segment_s
        self._retry_s = retry_s
        self._max_pending = max_pending
        self._options: dict[str, Any] = {
            "beam_size": 5,
            "condition_on_previous_text": False,  # utterances are independent chat lines
            "without_timestamps": True,
            "vad_filter": False,  # already cut by our VAD
            **(transcribe_options or {}),
        }
        self.model: Any = None  # the faster_whisper.WhisperModel, once loaded

    def load_model(self) -> Any:
        """Load (once) the Whisper model; blocking, so call it from a worker thread."""
        if self.model is not None:
            return self.model
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MicError("faster-whisper is missing: pip install 'streambot[chat]'") from exc
        device = self._model_device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        try:
            self.model = WhisperModel(
                str(self.model_path), device=device, compute_type=self._compute_type
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise MicError(
                f"chat.mic.model: cannot load {self.model_path} as a CTranslate2 Whisper model "
                f"on {device} ({exc})"
            ) from exc
        log.info("mic: whisper model %s on %s (%s)", self.model_path, device, self._compute_type)
        return self.model

    def _transcribe(self, utterance: Utterance) -> tuple[str, str | None]:
        segments, info = self.model.transcribe(
            utterance.pcm, language=self.language, **self._options
        )
        text = "".join(segment.text for segment in segments).strip()  # consumes the generator
        return text, getattr(info, "language", None)

    async def utterances(self) -> AsyncIterator[Utterance]:
        """Capture and cut, reopening the input when it drops; ends when the audio ends."""
        # The first wait is about retry_s (jittered), even a retry_s above the usual cap.
        backoff = Backoff(self._retry_s, max(RETRY_CAP_S, self._retry_s))
        while True:
            segmenter = VadSegmenter(self._min_silence_ms, self._max_segment_s)
            resampler: StreamResampler | None = None
            try:
                async for chunk in self.audio.chunks():
                    backoff.reset()
                    rate = int(self.audio.sample_rate or SAMPLE_RATE)
                    if resampler is None or resampler.src_rate != rate:
                        resampler = StreamResampler(rate, SAMPLE_RATE)
                    pcm = resampler.push(chunk)
                    for utterance in await asyncio.to_thread(segmenter.push, pcm):
                        yield utterance
            except MicUnavailable as exc:
                tail = resampler.flush() if resampler else None
                for utterance in await asyncio.to_thread(segmenter.finish, tail):
                    yield utterance
                delay = backoff.next_delay()
                log.warning("mic: %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            tail = resampler.flush() if resampler else None
            for utterance in await asyncio.to_thread(segmenter.finish, tail):
                yield utterance
            return

    async def messages(self) -> AsyncIterator[ChatMessage]:
        await asyncio.to_thread(self.load_model)
        queue: asyncio.Queue[Utterance | BaseException | None] = asyncio.Queue(
            maxsize=self._max_pending
        )

        async def pump() -> None:
            try:
                async for utterance in self.utterances():
                    await queue.put(utterance)  # backpressure: a live input drops blocks instead
            except Exception as exc:
                await queue.put(exc)
                return
            await queue.put(None)

        capture = asyncio.create_task(pump(), name="mic-capture")
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                text, language = await asyncio.to_thread(self._transcribe, item)
                if not text:
                    continue
                yield ChatMessage(
                    self.name,
                    self.user,
                    text,
                    Kind.VOICE,
                    meta={
                        "start_s": item.start_s,
                        "end_s": item.end_s,
                        "cut": item.cut,
                        "language": language,
                    },
                )
        finally:
            capture.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await capture
