"""A/V offset of the stream sink over a long run: does audio stay within one frame of video?

Streams N minutes of presenter-stamped frames through ``StreamSink`` (the same code path as a
udp:// or srt:// stream: MPEG-TS muxing, x264 zerolatency, AAC), but into a temporary .ts file
as fast as the encoder goes instead of a real-time network socket. Every frame is a test card
carrying its index (streambot/stage/testcard.py); every second (frame k * fps) the audio has a
1 kHz tone burst. The .ts is then decoded and, for every second k, the pts of the video frame
carrying index k * fps is compared with the time of the burst's onset in the decoded audio.

    python bench/av_offset.py                 # 10 minutes of stream time
    python bench/av_offset.py --minutes 1 --keep /tmp/run.ts
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from streambot.stage.sinks.base import StreamFormat
from streambot.stage.sinks.stream import StreamSink
from streambot.stage.testcard import draw_test_card, read_test_card
from streambot.timing import DEFAULT_FPS, OUTPUT_RATE


def marked_pcm(fmt: StreamFormat, index: int) -> np.ndarray:
    spf = fmt.samples_per_frame
    if index % fmt.fps:
        return np.zeros(spf, np.float32)
    t = np.arange(spf) / fmt.sample_rate
    return (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)


def stream(fmt: StreamFormat, frames: int, path: Path, preset: str) -> float:
    sink = StreamSink(str(path), preset=preset)
    sink.open(fmt)
    start = time.perf_counter()
    for k in range(frames):
        sink.write(k, draw_test_card(k, fmt.width, fmt.height), marked_pcm(fmt, k))
    sink.close()
    return time.perf_counter() - start


def analyse(fmt: StreamFormat, path: Path) -> tuple[dict[int, float], list[float]]:
    """Video pts per decoded index, and tone onsets (s) in the decoded audio."""
    video_time: dict[int, float] = {}
    onsets: list[float] = []
    last_loud = -np.inf
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0], c.streams.audio[0]):
            t = float(frame.pts * frame.time_base)
            if isinstance(frame, av.VideoFrame):
                index = read_test_card(frame.to_ndarray(format="rgb24"))
                if index is not None:  # an unreadable marker just leaves its second out
                    video_time[index] = t
                continue
            pcm = frame.to_ndarray().reshape(-1)
            for i in np.flatnonzero(np.abs(pcm) > 0.1):
                ti = t + i / frame.sample_rate
                if ti - last_loud > 0.2:
                    onsets.append(ti)
                last_loud = ti
    return video_time, onsets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="stream time (default 10)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=180)
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--keep", type=Path, help="write the .ts here and keep it")
    return parser


def _stream_and_analyse(
    fmt: StreamFormat, frames: int, keep: Path | None, preset: str
) -> tuple[dict[int, float], list[float]]:
    """Mux the marked stream (to `keep` or a temporary file), print its cost, and analyse it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / "av_offset.ts"
        elapsed = stream(fmt, frames, path, preset)
        stream_s = frames / fmt.fps
        print(
            f"# muxed {frames} frames ({stream_s:.0f} s of stream) in {elapsed:.1f} s "
            f"({stream_s / elapsed:.1f}x real time), {path.stat().st_size / 1e6:.1f} MB"
        )
        return analyse(fmt, path)


def _match_markers(
    fmt: StreamFormat, seconds: int, video_time: dict[int, float], onsets: list[float]
) -> tuple[list[tuple[int, float]], int]:
    """Pair each second's marker frame with its tone onset: ((second, offset ms)...), missing."""
    t0 = video_time.get(0, 0.0)
    offsets: list[tuple[int, float]] = []  # (second k, audio onset - video pts) in ms
    missing = 0
    for k in range(seconds):
        vt = video_time.get(k * fmt.fps)
        # the onset nearest the expected time (onsets are once a second, so no ambiguity)
        expected = t0 + k
        near = [o for o in onsets if abs(o - expected) < 0.5]
        if vt is None or not near:
            missing += 1
            continue
        offsets.append((k, (near[0] - vt) * 1000))
    return offsets, missing


def _minute_table(seconds: int, offsets: list[tuple[int, float]]) -> None:
    print()
    print("| minute | markers | mean offset ms | min ms | max ms | max |offset| ms |")
    print("|-------:|--------:|---------------:|-------:|-------:|---------------:|")
    for minute in range(int(np.ceil(seconds / 60))):
        vals = np.array([o for k, o in offsets if k // 60 == minute])
        if vals.size == 0:
            continue
        print(
            f"| {minute:6d} | {vals.size:7d} | {vals.mean():14.2f} | {vals.min():6.2f} "
            f"| {vals.max():6.2f} | {np.abs(vals).max():14.2f} |"
        )


def main() -> int:
    args = _parser().parse_args()

    fmt = StreamFormat(args.width, args.height, args.fps, OUTPUT_RATE)
    frames = round(args.minutes * 60 * fmt.fps)
    print("$", shlex.join([Path(sys.executable).name, *sys.argv]))
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"PyAV {av.__version__}, {fmt.width}x{fmt.height} @ {fmt.fps} fps, preset {args.preset}"
    )
    video_time, onsets = _stream_and_analyse(fmt, frames, args.keep, args.preset)

    seconds = frames // fmt.fps
    offsets, missing = _match_markers(fmt, seconds, video_time, onsets)

    frame_ms = 1000 / fmt.fps
    _minute_table(seconds, offsets)
    all_vals = np.array([o for _, o in offsets])
    worst = float(np.abs(all_vals).max()) if all_vals.size else float("inf")
    print()
    print(
        f"markers: {len(offsets)} of {seconds} matched ({missing} missing), "
        f"{len(video_time)} of {frames} video frames decoded, {len(onsets)} tone onsets"
    )
    print(
        f"max |A/V offset| = {worst:.2f} ms, drift first->last minute = "
        f"{(all_vals[-60:].mean() - all_vals[:60].mean()) if all_vals.size else 0:.3f} ms; "
        f"within one frame ({frame_ms:.0f} ms): {'YES' if worst <= frame_ms else 'NO'}"
    )
    return 0 if worst <= frame_ms and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
