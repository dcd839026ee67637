"""Network streaming: one muxed H.264 + AAC stream through PyAV, timestamps from the presenter.

The container follows the URL's scheme:

* ``udp://host:port`` and ``srt://host:port``: MPEG-TS, e.g. into OBS's Media Source. UDP goes
  out in 1316-byte datagrams (7 TS packets of 188 bytes) from a small socket buffer.
* ``rtmp://`` and ``rtmps://``: FLV, straight to a platform's ingest (the last path segment is
  the stream key: it is masked in every message this sink produces).
* ``file:`` or a plain path: MPEG-TS into a file, the same code path (benchmarks, debugging).

The stream is low latency: libx264 with ``tune=zerolatency``, no B-frames, a keyframe every
``gop_seconds`` (fixed GOP, no scene-cut keyframes) and capped at ``video_bitrate``; AAC 48 kHz
mono at ``audio_bitrate``. Video pts = frame index (time base 1/fps) and audio pts = index *
samples_per_frame (time base 1/sample_rate), exactly as the presenter stamps them, so audio and
video stay in sync however the encoder or the network is doing; no wall clock is involved.

A network error while writing (the RTMP server went away) raises :class:`StreamDisconnected`
from :meth:`StreamSink.write`; the fanout then drops the sink with that reason. UDP has no
connection: nobody listening is not an error, the datagrams are just sent.
"""

from __future__ import annotations

import contextlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import numpy as np
from av.error import FFmpegError, ProtocolNotFoundError

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat
from streambot.stage.sinks.mux import AvEncoder
from streambot.timing import OUTPUT_RATE

UDP_PACKET_SIZE = 1316  # 7 x 188-byte TS packets: what OBS / VLC / ffmpeg expect over UDP
UDP_BUFFER_SIZE = 65_536  # a small send buffer: datagrams leave promptly, no burst backlog

_FORMATS = {"udp": "mpegts", "srt": "mpegts", "rtmp": "flv", "rtmps": "flv", "file": "mpegts"}
_SECRET_KEYS = {"passphrase", "streamid", "key", "password", "pass", "token", "secret"}


class StreamDisconnected(ConnectionError):
    """The stream's connection failed while writing (the message has no credentials)."""


def mask_url(url: str) -> str:
    """``url`` safe to print: an RTMP stream key (the last path segment), a password in the
    authority and secret query values (SRT passphrase / streamid) become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"***@{host}"
    path = parts.path
    if parts.scheme.lower() in ("rtmp", "rtmps") and "/" in path:
        head, tail = path.rsplit("/", 1)
        path = f"{head}/***" if tail else path
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{k}=***" if k.lower() in _SECRET_KEYS else (f"{k}={v}" if v else k) for k, v in pairs
        )
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment))


def _bits(rate: str | int) -> int:
    """``"2500k"`` -> 2_500_000 (k and M suffixes, or a plain number of bits per second)."""
    if isinstance(rate, int):
        return rate
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", rate)
    if not match:
        raise ValueError(f"bad bitrate {rate!r}: use e.g. '2500k' or '6M'")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def _with_udp_options(url: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("pkt_size", str(UDP_PACKET_SIZE))
    query.setdefault("buffer_size", str(UDP_BUFFER_SIZE))
    return urlunsplit(parts._replace(query=urlencode(query)))


class StreamSink:
    name = "stream"
    live = True

    def __init__(
        self,
        url: str,
        *,
        video_bitrate: str | int = "2500k",
        audio_bitrate: str | int = "128k",
        gop_seconds: float = 1.0,
        preset: str = "veryfast",
    ) -> None:
        self.url = url
        scheme = urlsplit(url).scheme.lower() if "://" in url or url.startswith("file:") else ""
        self.scheme = scheme or "file"
        if self.scheme not in _FORMATS:
            raise ValueError(
                f"unsupported stream URL {mask_url(url)}: use udp://, srt://, rtmp:// or rtmps://"
            )
        self.container_format = _FORMATS[self.scheme]
        self._video_bitrate = _bits(video_bitrate)
        self._audio_bitrate = _bits(audio_bitrate)
        if gop_seconds <= 0:
            raise ValueError("gop_seconds must be positive")
        self._gop_seconds, self._preset = gop_seconds, preset
        self._container = None

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def _reason(self, exc: BaseException) -> str:
        """An exception's message with the URL (and so any stream key) masked."""
        text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        for secret in {self.url, self._open_url}:
            text = text.replace(secret, self.masked_url)
        return text

    def open(self, fmt: StreamFormat) -> None:
        self._open_url = _with_udp_options(self.url) if self.scheme == "udp" else self.url
        container_options = {}
        if self.container_format == "flv":
            container_options["flvflags"] = "no_duration_filesize"  # a live stream cannot seek
        if self.scheme != "file":
            container_options["flush_packets"] = "1"  # push each packet out, don't batch
        try:
            container = av.open(
                self._open_url,
                mode="w",
                format=self.container_format,
                container_options=container_options,
            )
        except (OSError, FFmpegError, ValueError) as exc:
            raise SinkUnavailable(
                f"cannot stream to {self.masked_url}: {self._reason(exc)}"
            ) from None
        keyint = max(1, round(self._gop_seconds * fmt.fps))
        encoder = AvEncoder(container, fmt, audio_rate=OUTPUT_RATE)
        video, audio = encoder.video, encoder.audio
        video.bit_rate = self._video_bitrate
        video.options = {
            "preset": self._preset,
            "tune": "zerolatency",
            "g": str(keyint),
            "keyint_min": str(keyint),
            "sc_threshold": "0",  # keyframes only every keyint: what ingest servers want
            "bf": "0",
            "maxrate": str(self._video_bitrate),
            "bufsize": str(self._video_bitrate),  # one second of VBV: near-constant bitrate
        }
        audio.bit_rate = self._audio_bitrate
        self._container, self._encoder = container, encoder
        try:
            # Connect and write the header now, so an unreachable server or a protocol this
            # FFmpeg lacks (srt) shows up here as SinkUnavailable, not at the first frame.
            container.start_encoding()
        except ProtocolNotFoundError:
            self._abandon()
            raise SinkUnavailable(
                f"cannot stream to {self.masked_url}: this PyAV/FFmpeg build has no "
                f"{self.scheme}:// protocol (PyAV wheels ship without libsrt); stream over "
                "udp:// or rtmp:// instead, or install PyAV built against an FFmpeg with "
                f"{self.scheme} support"
            ) from None
        except (OSError, FFmpegError) as exc:
            self._abandon()
            raise SinkUnavailable(
                f"cannot stream to {self.masked_url}: {self._reason(exc)}"
            ) from None

    def _abandon(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(OSError, FFmpegError):
                container.close()

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        if self._container is None:
            raise StreamDisconnected(f"stream to {self.masked_url} is not open")
        try:
            self._encoder.encode(index, frame, pcm)
        except (OSError, FFmpegError) as exc:
            reason = self._reason(exc)
            self._abandon()
            raise StreamDisconnected(f"stream to {self.masked_url} lost: {reason}") from None

    def close(self) -> None:
        if self._container is None:
            return
        try:
            self._encoder.flush()
        except (OSError, FFmpegError):
            pass  # the connection is gone; nothing left to flush to
        finally:
            self._abandon()
