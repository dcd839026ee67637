"""The network stream sink, end to end over loopback: UDP MPEG-TS into a PyAV receiver, RTMP into
FFmpeg's own RTMP server (listen mode), and SRT's clear refusal where FFmpeg lacks libsrt."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streambot.stage.sinks.base import SinkUnavailable, StreamFormat
from streambot.stage.sinks.stream import StreamDisconnected, StreamSink, mask_url
from streambot.timing import DEFAULT_FPS, OUTPUT_RATE

FMT = StreamFormat(320, 180, DEFAULT_FPS, OUTPUT_RATE)
SPF = FMT.samples_per_frame
BURST_EVERY = 25  # a 1 kHz tone burst on every 25th frame (once a second)
BITS = 8  # the frame counter, as a 4 x 2 grid of black / white blocks
BLOCK_W, BLOCK_H = FMT.width // 4, FMT.height // 2


def marked_frame(index: int) -> np.ndarray:
    """Frame ``index``: its counter (mod 256) as 8 big black/white blocks, tinted per index."""
    frame = np.zeros((FMT.height, FMT.width, 3), np.uint8)
    for bit in range(BITS):
        row, col = divmod(bit, 4)
        value = 230 if (index >> bit) & 1 else 25
        frame[row * BLOCK_H : (row + 1) * BLOCK_H, col * BLOCK_W : (col + 1) * BLOCK_W] = value
    frame[..., 2] = np.where(frame[..., 0] > 128, 230, 25 + (index * 3) % 60).astype(np.uint8)
    return frame


def read_counter(frame: np.ndarray) -> int:
    index = 0
    for bit in range(BITS):
        row, col = divmod(bit, 4)
        block = frame[
            row * BLOCK_H + 10 : (row + 1) * BLOCK_H - 10,
            col * BLOCK_W + 10 : (col + 1) * BLOCK_W - 10,
            0,
        ]
        index |= int(block.mean() > 128) << bit
    return index


def marked_pcm(index: int) -> np.ndarray:
    if index % BURST_EVERY:
        return np.zeros(SPF, np.float32)
    t = np.arange(SPF) / FMT.sample_rate
    return (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def tone_onsets(times: np.ndarray, samples: np.ndarray, threshold: float = 0.1) -> list[float]:
    """Times where the signal rises above ``threshold`` after at least 0.2 s of quiet."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    onsets, last = [], -np.inf
    for i in loud:
        if times[i] - last > 0.2:
            onsets.append(float(times[i]))
        last = times[i]
    return onsets


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_udp_bound(port: int, timeout: float = 5.0) -> None:
    """Until something listens on 127.0.0.1:``port`` (UDP), read from /proc, race free."""
    proc = Path("/proc/net/udp")
    if not proc.exists():
        time.sleep(0.5)
        return
    needle = f":{port:04X} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.read_text():
            return
        time.sleep(0.01)
    raise AssertionError(f"the receiver never bound udp port {port}")


def test_udp_mpegts_carries_matching_frames_and_synced_tone_bursts():
    port = free_port()
    got: dict = {"video": [], "audio": [], "error": None}

    def receive():
        url = f"udp://127.0.0.1:{port}?timeout=1500000&fifo_size=100000&overrun_nonfatal=1"
        try:
            with av.open(
                url,
                format="mpegts",
                options={"probesize": "500000", "analyzeduration": "1000000"},
            ) as c:
                video, audio = c.streams.video[0], c.streams.audio[0]
                got["video_codec"] = video.codec_context.name
                got["rate"] = video.average_rate or video.guessed_rate
                got["audio_codec"] = audio.codec_context.name
                got["audio_rate"] = audio.codec_context.sample_rate
                got["channels"] = audio.codec_context.layout.nb_channels
                try:
                    for packet in c.demux(video, audio):
                        for frame in packet.decode():
                            key = "video" if isinstance(frame, av.VideoFrame) else "audio"
                            got[key].append(decoded(frame))
                except (av.FFmpegError, OSError):
                    pass  # the read timed out: the sender is done
                for stream in (video, audio):
                    for frame in stream.codec_context.decode(None):
                        key = "video" if isinstance(frame, av.VideoFrame) else "audio"
                        got[key].append(decoded(frame))
        except Exception as exc:
            got["error"] = exc

    def decoded(frame):
        t = float(frame.pts * frame.time_base)
        if isinstance(frame, av.VideoFrame):
            return t, frame.to_ndarray(format="rgb24")
        return t, frame.to_ndarray().reshape(-1).astype(np.float32)

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    wait_udp_bound(port)

    sink = StreamSink(f"udp://127.0.0.1:{port}", preset="ultrafast")
    sink.open(FMT)
    start = time.monotonic()
    n = 3 * FMT.fps
    for k in range(n):  # paced at real time, as the presenter would
        sink.write(k, marked_frame(k), marked_pcm(k))
        time.sleep(max(0.0, start + (k + 1) / FMT.fps - time.monotonic()))
    sink.close()
    receiver.join(15)
    assert not receiver.is_alive()
    assert got["error"] is None, got["error"]

    assert got["video_codec"] == "h264" and got["rate"] == 25
    assert got["audio_codec"] == "aac" and got["audio_rate"] == OUTPUT_RATE and got["channels"] == 1
    assert len(got["video"]) >= n - 3, f"only {len(got['video'])} of {n} frames arrived"

    video_time: dict[int, float] = {}
    for t, image in got["video"]:
        k = read_counter(image)
        error = np.abs(image.astype(np.int16) - marked_frame(k).astype(np.int16)).mean()
        assert error < 12, f"frame {k} decoded too far from what was sent ({error:.1f})"
        video_time[k] = t
    ks = sorted(video_time)
    assert ks[0] <= 2 and ks[-1] >= n - 3
    t0 = video_time[ks[0]] - ks[0] / FMT.fps
    for k in ks:  # video pts are the presenter's index, exactly
        assert abs(video_time[k] - t0 - k / FMT.fps) < 1e-3

    times = np.concatenate([t + np.arange(len(pcm)) / FMT.sample_rate for t, pcm in got["audio"]])
    samples = np.concatenate([pcm for _, pcm in got["audio"]])
    onsets = tone_onsets(times, samples)
    markers = [k for k in range(0, n, BURST_EVERY) if k in video_time]
    assert len(onsets) == len(markers) == n // BURST_EVERY
    for k, onset in zip(markers, onsets, strict=True):
        assert abs(onset - video_time[k]) <= 1 / FMT.fps, (k, onset, video_time[k])


def test_udp_without_a_receiver_keeps_sending_and_a_late_receiver_gets_the_stream():
    port = free_port()
    sink = StreamSink(f"udp://127.0.0.1:{port}", preset="ultrafast")
    sink.open(FMT)
    for k in range(20):  # nobody listening: no error
        sink.write(k, marked_frame(k), marked_pcm(k))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", port))
        receiver.settimeout(5)
        for k in range(20, 80):
            sink.write(k, marked_frame(k), marked_pcm(k))
        sink.close()  # flushes what the encoder holds
        datagram = receiver.recv(65536)
    assert len(datagram) % 188 == 0 and datagram[0] == 0x47  # MPEG-TS packets, still sent


def test_rtmp_reaches_a_listening_server_and_a_vanished_server_raises_from_write():
    port = free_port(socket.SOCK_STREAM)
    url = f"rtmp://127.0.0.1:{port}/live/sekrit-key"
    got: dict = {"frames": [], "error": None, "listening": threading.Event()}

    def serve():  # FFmpeg's RTMP server: takes one publisher, then hangs up after 25 frames
        try:
            with av.open(
                url, mode="r", format="flv", options={"listen": "1", "timeout": "10"}
            ) as c:
                got["codecs"] = sorted(s.codec_context.name for s in c.streams)
                for frame in c.decode(video=0):
                    got["frames"].append(read_counter(frame.to_ndarray(format="rgb24")))
                    if len(got["frames"]) >= 25:
                        break
        except Exception as exc:
            got["error"] = exc

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    deadline = time.monotonic() + 5
    sink = StreamSink(url, preset="ultrafast")
    while True:  # until the server's socket listens
        try:
            sink.open(FMT)
            break
        except SinkUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)

    with pytest.raises(StreamDisconnected) as lost:
        for k in range(2000):
            sink.write(k, marked_frame(k), marked_pcm(k))
            time.sleep(0.005)
    server.join(10)
    assert got["error"] is None, got["error"]
    assert got["codecs"] == ["aac", "h264"]
    assert got["frames"][:25] == list(range(25))
    assert "sekrit-key" not in str(lost.value) and "/live/***" in str(lost.value)
    sink.close()  # after a failure: a no-op, no raise


def test_unreachable_rtmp_is_unavailable_quickly_with_the_key_masked():
    url = f"rtmp://127.0.0.1:{free_port(socket.SOCK_STREAM)}/app/live_123456_abcdef"
    start = time.monotonic()
    with pytest.raises(SinkUnavailable) as exc:
        StreamSink(url).open(FMT)
    assert time.monotonic() - start < 3
    assert "live_123456_abcdef" not in str(exc.value)
    assert "/app/***" in str(exc.value)


def test_srt_streams_or_says_clearly_why_not():
    url = f"srt://127.0.0.1:{free_port()}?passphrase=topsecret1234"
    with pytest.raises(SinkUnavailable) as exc:  # nobody listens there, or no libsrt
        StreamSink(url).open(FMT)
    message = str(exc.value)
    assert "topsecret1234" not in message
    if "no srt:// protocol" in message:
        assert "udp://" in message and "rtmp://" in message


def test_mask_url_hides_keys_and_passwords():
    assert mask_url("rtmp://a.rtmp.youtube.com/live2/abcd-efgh") == (
        "rtmp://a.rtmp.youtube.com/live2/***"
    )
    assert mask_url("rtmps://user:pw@host/app/key?x=1") == "rtmps://user:***@host/app/***?x=1"
    assert mask_url("udp://127.0.0.1:1234?pkt_size=1316") == "udp://127.0.0.1:1234?pkt_size=1316"
    assert "s3cr3t" not in mask_url("srt://h:9000?passphrase=s3cr3t&latency=200")


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError, match="udp://"):
        StreamSink("http://example.com/x")
