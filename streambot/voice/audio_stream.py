"""Decoding audio that arrives over the network in arbitrary chunks: raw 16-bit PCM (at the
rate the response states, ``stated_pcm``), or a WAV file read as it streams (its header first,
its data size often unknown: servers that stream write 0 or 0xFFFFFFFF there). Float samples
that are not finite or far beyond full scale are refused (``voice.base.audio_fault``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import numpy as np

from streambot.voice.base import audio_fault


class AudioFormatError(ValueError):
    """The bytes are not audio this decoder can read; the message says why."""


def stated_pcm(headers: Mapping[str, str], rate: int) -> PcmStream:
    """The decoder for a raw PCM response at the rate (and channel count) it states: an
    ``x-sample-rate`` header (Piper's HTTP server) or Content-Type parameters
    (``audio/pcm;rate=22050``, ``audio/L16; rate=22050; channels=1``); else at ``rate``.
    The samples are read as OpenAI's ``pcm``, the format asked for: 16-bit little-endian."""
    params = {}
    for part in headers.get("Content-Type", "").split(";")[1:]:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    stated = headers.get("x-sample-rate") or params.get("rate")
    channels = params.get("channels", "1")
    try:
        rate, channels_n = (int(stated) if stated else rate), int(channels)
    except ValueError:
        raise AudioFormatError(
            f"the server states a rate of {stated!r} with {channels!r} channels"
        ) from None
    if not 1000 <= rate <= 384_000 or not 1 <= channels_n <= 16:
        raise AudioFormatError(f"PCM at {rate} Hz with {channels_n} channels")
    return PcmStream(rate, channels_n)


class PcmStream:
    """Little-endian signed 16-bit mono PCM; an odd byte is kept for the next chunk."""

    def __init__(self, rate: int, channels: int = 1) -> None:
        self.rate, self.channels = rate, channels
        self._carry = b""

    def feed(self, data: bytes) -> np.ndarray:
        data = self._carry + data
        frame = 2 * self.channels
        whole = len(data) - len(data) % frame
        self._carry = data[whole:]
        samples = np.frombuffer(data[:whole], "<i2").astype(np.float32) / 32768.0
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1)
        return samples

    def finish(self) -> np.ndarray:
        """What is left at the end: nothing (a dangling odd byte is dropped)."""
        self._carry = b""
        return np.zeros(0, np.float32)


class WavStream:
    """A RIFF/WAVE stream: PCM 16-bit or IEEE float 32-bit, any channel count (mixed to
    mono). ``rate`` is known once the header has been read."""

    _HEADER_LIMIT = 64 * 1024  # a header that long is not a WAV a TTS server sends

    def __init__(self) -> None:
        self.rate: int | None = None
        self._buffer = b""
        self._data: PcmStream | FloatStream | None = None
        self._left: int | None = None  # data bytes still to come, when the header says

    def feed(self, data: bytes) -> np.ndarray:
        stream = self._data
        if stream is None:
            self._buffer += data
            if (stream := self._parse_header()) is None:
                if len(self._buffer) > self._HEADER_LIMIT:
                    raise AudioFormatError("no WAV data chunk in the first 64 KiB")
                return np.zeros(0, np.float32)
            self._data = stream
            data, self._buffer = self._buffer, b""
        if self._left is not None:
            data, self._left = data[: self._left], self._left - min(self._left, len(data))
        return stream.feed(data)

    def finish(self) -> np.ndarray:
        if self._data is None:
            if self._buffer:
                raise AudioFormatError("the response ended inside the WAV header")
            return np.zeros(0, np.float32)
        return self._data.finish()

    def _parse_header(self) -> PcmStream | FloatStream | None:
        """The stream for the data, once the header up to the data chunk has come."""
        buf = self._buffer
        if len(buf) < 12:
            return None
        if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
            raise AudioFormatError(f"not a WAV file (starts with {buf[:12]!r})")
        pos, fmt = 12, None
        while len(buf) >= pos + 8:
            chunk, size = buf[pos : pos + 4], struct.unpack("<I", buf[pos + 4 : pos + 8])[0]
            body = pos + 8
            if chunk == b"data":
                if fmt is None:
                    raise AudioFormatError("WAV data chunk before its fmt chunk")
                self._buffer = buf[body:]
                return self._start(fmt, size)
            if len(buf) < body + size:
                return None
            if chunk == b"fmt ":
                fmt = buf[body : body + size]
            pos = body + size + (size & 1)  # chunks are padded to even sizes
        return None

    def _start(self, fmt: bytes, size: int) -> PcmStream | FloatStream:
        if len(fmt) < 16:
            raise AudioFormatError("WAV fmt chunk too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
        if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag follows
            tag = struct.unpack("<H", fmt[24:26])[0]
        if channels < 1 or rate < 1000:
            raise AudioFormatError(f"WAV with {channels} channels at {rate} Hz")
        stream: PcmStream | FloatStream
        if tag == 1 and bits == 16:
            stream = PcmStream(rate, channels)
        elif tag == 3 and bits == 32:
            stream = FloatStream(channels)
        else:
            raise AudioFormatError(
                f"WAV format {tag} with {bits}-bit samples is not supported "
                "(16-bit PCM or 32-bit float)"
            )
        self.rate = rate
        self._left = None if size in (0, 0xFFFFFFFF) else size  # streamed: until the end
        return stream


class FloatStream:
    """Little-endian float32 samples (a WAV's IEEE float data)."""

    def __init__(self, channels: int = 1) -> None:
        self.channels, self._carry = channels, b""

    def feed(self, data: bytes) -> np.ndarray:
        data = self._carry + data
        frame = 4 * self.channels
        whole = len(data) - len(data) % frame
        self._carry = data[whole:]
        samples = np.frombuffer(data[:whole], "<f4").astype(np.float32)
        # before clipping, which keeps NaN and would hide an engine's overflow as loud audio
        if (fault := audio_fault(samples)) is not None:
            raise AudioFormatError(f"unplayable float samples: {fault}")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1)
        return np.clip(samples, -1.0, 1.0)

    def finish(self) -> np.ndarray:
        self._carry = b""
        return np.zeros(0, np.float32)
