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
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streambot.backoff import Backoff
from streambot.events import ChatMessage, Kind
from streambot.resample import StreamResampler

log = logging.getLogger(__name__)

# What Whisper and Silero VAD expect: the input side, not the timing contract (timing.py);
# it equals timing.FACE_RATE only by coincidence, so it is not derived from it.
SAMPLE_RATE = 16_000
RETRY_CAP_S = 60.0  # the longest wait before reopening a dropped input
_PORTAUDIO_FIX = (
    "install the PortAudio library: `sudo apt install libportaudio2` (Debian/Ubuntu), "
    "`sudo dnf install portaudio` (Fedora) or `brew install portaudio` (macOS)"
)
_CONVERT_HINT = (
    "convert one with `ct2-transformers-converter --model openai/whisper-small "
    "--output_dir models/whisper-small --copy_files tokenizer.json preprocessor_config.json "
    "--quantization int8`"
)


class MicError(RuntimeError):
    """A configuration problem (model, file): not retried."""


class MicUnavailable(RuntimeError):
    """The audio input cannot be opened or stopped delivering; the source retries."""


class AudioSource(Protocol):
    """Mono float32 audio in chunks. ``sample_rate`` is set before the first chunk is yielded."""

    name: str
    sample_rate: int | None

    def chunks(self) -> AsyncIterator[np.ndarray]:
        """Yield 1-D float32 chunks; raise MicUnavailable when the input is (temporarily) gone."""
        ...


# --------------------------------------------------------------------------- audio sources


def _import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # the module imports, but PortAudio itself is missing
        raise MicUnavailable(f"no PortAudio library ({exc}); {_PORTAUDIO_FIX}") from exc
    except ImportError as exc:
        raise MicUnavailable(
            "the sounddevice package is missing: pip install 'streambot[chat]'"
        ) from exc
    return sounddevice


def list_input_devices() -> list[str]:
    """``"index: name (rate Hz)"`` for every input device PortAudio sees."""
    sd = _import_sounddevice()
    return [
        f"{i}: {d['name']} ({d['default_samplerate']:.0f} Hz)"
        for i, d in enumerate(sd.query_devices())
        if d["max_input_channels"] > 0
    ]


class SoundDeviceSource:
    """A sound card input through sounddevice/PortAudio, at the device's default rate."""

    name = "sounddevice"

    def __init__(
        self,
        device: str | int | None = None,
        sample_rate: int | None = None,
        block_ms: int = 100,
        max_queue_s: float = 10.0,
        stall_s: float = 3.0,
    ) -> None:
        self.device = device
        self._rate = sample_rate
        self._block_ms = block_ms
        self._max_blocks = max(1, int(max_queue_s * 1000 / block_ms))
        self._stall_s = stall_s
        self.sample_rate: int | None = None
        self.dropped_blocks = 0  # blocks lost because the consumer fell behind

    def _probe(self) -> tuple[Any, int]:
        sd = _import_sounddevice()
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as exc:
            try:
                devices = list_input_devices()
            except Exception:  # pragma: no cover - PortAudio half-broken
                devices = []
            choices = "; ".join(devices) if devices else "none found (plug one in, or pass "
            choices += "" if devices else "/dev/snd or the PulseAudio socket into the container)"
            raise MicUnavailable(
                f"no audio input device {self.device!r} ({exc}); set chat.mic.device to one of: "
                f"{choices}"
            ) from exc
        return sd, int(self._rate or info["default_samplerate"])

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        sd, rate = self._probe()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=self._max_blocks)

        def offer(block: np.ndarray) -> None:
            try:
                queue.put_nowait(block)
            except asyncio.QueueFull:
                self.dropped_blocks += 1

        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            # PortAudio's thread: hand over a copy, never block; RuntimeError: the loop closed
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(offer, indata[:, 0].astype(np.float32, copy=True))

        try:
            stream = sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=rate,
                dtype="float32",
                blocksize=max(1, rate * self._block_ms // 1000),
                callback=callback,
            )
            stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise MicUnavailable(
                f"cannot open audio input {self.device!r} at {rate} Hz ({exc}); pick another "
                f"chat.mic.device or sample rate"
            ) from exc
        self.sample_rate = rate
        log.info("mic: capturing %r at %d Hz", self.device, rate)
        try:
            while True:
                try:
                    block = await asyncio.wait_for(queue.get(), timeout=self._stall_s)
                except TimeoutError:
                    raise MicUnavailable(
                        f"no audio from input {self.device!r} for {self._stall_s:.0f} s "
                        f"(active={stream.active}); device unplugged?"
                    ) from None
                yield block
        finally:
            stream.close(ignore_errors=True)


def _decode_pcm(frames: bytes, width: int, channels: int) -> np.ndarray:
    raw = np.frombuffer(frames, dtype=np.uint8)
    if width == 1:
        pcm = (raw.astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        pcm = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = raw.reshape(-1, 3).astype(np.int32)
        val = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8  # sign-extend via the top byte
        pcm = (val >> 8).astype(np.float32) / 8388608.0
    else:
        pcm = np.frombuffer(frames, dtype="<i4").astype(np.float32) / 2147483648.0
    if channels > 1:
        pcm = pcm.reshape(-1, channels).mean(axis=1)
    return pcm.astype(np.float32, copy=False)


class FileAudioSource:
    """A PCM WAV file streamed in chunks; ``realtime`` paces it like a live microphone."""

    name = "file"

    def __init__(self, path: str | Path, realtime: bool = False, chunk_ms: int = 100) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self._chunk_ms = chunk_ms
        self.sample_rate: int | None = None

    def _open(self) -> wave.Wave_read:
        try:
            return wave.open(str(self.path), "rb")
        except FileNotFoundError as exc:
            raise MicError(f"audio file not found: {self.path}") from exc
        except (wave.Error, EOFError) as exc:
            raise MicError(
                f"{self.path} is not a PCM WAV file ({exc}); convert it with "
                f"`ffmpeg -i IN -ac 1 -c:a pcm_s16le OUT.wav`"
            ) from exc

    async def chunks(self) -> AsyncIterator[np.ndarray]:
        with self._open() as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            if width not in (1, 2, 3, 4):
                raise MicError(f"{self.path}: unsupported sample width {width} bytes")
            self.sample_rate = rate
            per_chunk = max(1, rate * self._chunk_ms // 1000)
            start, sent = time.perf_counter(), 0
            while frames := wav.readframes(per_chunk):
                pcm = _decode_pcm(frames, width, channels)
                sent += pcm.size
                if self.realtime:  # a chunk exists once its last sample was "recorded"
                    await asyncio.sleep(max(0.0, start + sent / rate - time.perf_counter()))
                else:
                    await asyncio.sleep(0)
                yield pcm


# --------------------------------------------------------------------------- resampling


# --------------------------------------------------------------------------- VAD segmenting


@dataclass(frozen=True)
class Utterance:
    start_s: float  # seconds since the audio source opened (16 kHz sample clock)
    end_s: float
    pcm: np.ndarray  # float32 mono at 16 kHz
    cut: str  # "silence" | "max_length" | "end" (the audio ended or dropped)


class VadSegmenter:
    """Cuts a 16 kHz stream into utterances with faster-whisper's bundled Silero VAD.

    The VAD is re-run over a rolling buffer every ``hop_s``; a speech span followed by
    ``min_silence_ms`` of silence is an utterance, and one still open at ``max_segment_s`` is cut
    there. The buffer never holds more than about ``max_segment_s`` plus a second.
    """

    def __init__(
        self,
        min_silence_ms: int = 500,
        max_segment_s: float = 15.0,
        threshold: float = 0.5,
        speech_pad_ms: int = 150,
        min_speech_ms: int = 200,
        hop_s: float = 0.25,
    ) -> None:
        from faster_whisper.vad import VadOptions  # the ONNX model ships inside the wheel

        pad = min(speech_pad_ms, min_silence_ms // 2)
        self._opts = VadOptions(
            threshold=threshold,
            min_speech_duration_ms=min_speech_ms,
            min_silence_duration_ms=min_silence_ms,
            speech_pad_ms=pad,
        )
        self._max = int(max_segment_s * SAMPLE_RATE)
        self._hop = max(512, int(hop_s * SAMPLE_RATE))
        # audio kept when nothing is open: the next utterance's padding and a not yet reported
        # (shorter than min_speech) onset
        self._keep = int((pad + min_speech_ms) / 1000 * SAMPLE_RATE) + self._hop + 1024
        self.cap = self._max + int(min_silence_ms / 1000 * SAMPLE_RATE) + self._keep + self._hop
        self._buf = np.zeros(0, dtype=np.float32)
        self._offset = 0  # stream sample index of _buf[0]
        self._pending = 0

    def push(self, pcm: np.ndarray) -> list[Utterance]:
        self._buf = np.concatenate([self._buf, np.asarray(pcm, dtype=np.float32)])
        self._pending += len(pcm)
        if self._pending < self._hop:
            return []
        self._pending = 0
        return self._scan(final=False)

    def finish(self, tail: np.ndarray | None = None) -> list[Utterance]:
        """The stream ended: report what is left, open speech included."""
        if tail is not None and tail.size:
            self._buf = np.concatenate([self._buf, np.asarray(tail, dtype=np.float32)])
        out = self._scan(final=True) if self._buf.size else []
        self._offset += self._buf.size
        self._buf = np.zeros(0, dtype=np.float32)
        self._pending = 0
        return out

    def _utterance(self, start: int, end: int, cut: str) -> Utterance:
        return Utterance(
            (self._offset + start) / SAMPLE_RATE,
            (self._offset + end) / SAMPLE_RATE,
            self._buf[start:end].copy(),
            cut,
        )

    def _scan(self, final: bool) -> list[Utterance]:
        from faster_whisper.vad import get_speech_timestamps

        size = self._buf.size
        spans = get_speech_timestamps(self._buf, self._opts, sampling_rate=SAMPLE_RATE)
        out: list[Utterance] = []
        consumed = 0
        open_span = False
        for span in spans:
            start, end = int(span["start"]), int(span["end"])
            if end < size or final:  # followed by enough silence (or nothing more comes)
                out.append(self._utterance(start, end, "silence" if end < size else "end"))
                consumed = end
            elif size - start >= self._max:
                out.append(self._utterance(start, size, "max_length"))
                consumed = size
            else:
                consumed, open_span = start, True
            if end >= size:
                break
        if not open_span:
            consumed = max(consumed, size - self._keep)
        consumed = max(consumed, size - self.cap)  # hard bound, whatever the VAD said
        self._buf = self._buf[consumed:]
        self._offset += consumed
        return out


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
