"""What a video avatar costs on disk and in memory: the stored layout (each frame once, loop
order in loop.npy, frames memory-mapped) against the old one (the ping-pong loop expanded on
disk and read whole into RAM), for one 1080p video, in one run.

    python bench/avatar_memory.py                 # 10 s of 1920x1080 at 25 fps
    python bench/avatar_memory.py --seconds 4

It then times preparing the same video for a 1280x720 stream: the full size and then the
shown size (what ``prepare_for_output`` did to learn the source's size) against the shown size
only (it now reads the size from one decoded frame).

Memory is read from /proc/self/status in a fresh process per layout after one full pass of the
idle loop: RssAnon is private memory that nothing else can reclaim; RssFile is page cache the
OS shares between processes and drops under pressure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from streambot.timing import DEFAULT_FPS


def write_video(path: Path, frames: int, fps: int) -> None:
    """The astronaut, scaled to 1080 rows on a 1920-wide canvas, drifting 2 px per frame."""
    import cv2
    from skimage.data import astronaut

    face = cv2.resize(astronaut(), (1080, 1080), interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        for i in range(frames):
            canvas = np.full((1080, 1920, 3), 90, np.uint8)
            x = 300 + 2 * i
            canvas[:, x : x + 1080] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def folder_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def play_once(folder: str, layout: str) -> None:
    """Child process: load the avatar the way ``layout`` says, show every loop position once
    (a copy per frame, as the paste-back does), print RssAnon and RssFile in MiB."""
    from streambot.face.avatar import load_avatar

    avatar = load_avatar(Path(folder))
    if layout == "old":  # what format 1 did: the expanded loop, read whole into memory
        frames = np.stack([np.asarray(avatar.frames[i]) for i in avatar.loop])
        order = np.arange(len(frames))
        del avatar
    else:
        frames, order = avatar.frames, avatar.loop
    checksum = 0
    for i in order:
        checksum += int(frames[i].copy()[540, 960, 0])
    print(status_kib("RssAnon") / 1024, status_kib("RssFile") / 1024, checksum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=DEFAULT_FPS)
    parser.add_argument("--play", nargs=2, metavar=("FOLDER", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.play:
        play_once(*args.play)
        return

    from streambot.face.avatar import prepare_avatar

    frames = round(args.seconds * args.fps)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        video = work / "host.mp4"
        write_video(video, frames, args.fps)
        started = time.perf_counter()
        avatar = prepare_avatar(video, work / "cache", fps=args.fps, max_frames=frames)
        prepared_s = time.perf_counter() - started
        stored = folder_bytes(avatar.folder)
        n, loop = len(avatar.frames), len(avatar.loop)
        old_disk = (
            stored + avatar.frames.nbytes * (loop - n) / n + avatar.faces.nbytes * (loop - n) / n
        )
        folder = str(avatar.folder)
        del avatar
        rows = {}
        for layout in ("old", "mapped"):
            out = subprocess.run(
                [sys.executable, __file__, "--play", folder, layout],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            rows[layout] = (float(out[0]), float(out[1]))
        stream_rows = prepare_for_stream(video, work, args.fps, frames)
    print(f"video: {frames} frames 1920x1080 at {args.fps} fps, prepared in {prepared_s:.1f} s")
    print(f"loop: {n} stored frames, {loop} positions (ping-pong)")
    print(f"disk: old layout {old_disk / 2**30:.2f} GiB, stored now {stored / 2**30:.2f} GiB")
    for layout, (anon, file) in rows.items():
        print(f"{layout:>6}: RssAnon {anon:7.0f} MiB   RssFile {file:7.0f} MiB")
    print("for a 1280x720 stream (each in an empty cache):")
    for name, (seconds, size) in stream_rows.items():
        print(f"  {name}: {seconds:5.1f} s, {size / 2**30:.2f} GiB on disk")


def prepare_for_stream(video: Path, work: Path, fps: int, frames: int) -> dict:
    """Preparing for a 1280x720 stream: the full size first and then the shown size, as
    ``prepare_for_output`` used to (to learn the source's size), against the shown size only."""
    from streambot.face.avatar import prepare_avatar
    from streambot.face.wav2lip import prepare_for_output

    rows = {}
    started = time.perf_counter()
    prepare_avatar(video, work / "two", fps=fps, max_frames=frames)
    prepare_avatar(video, work / "two", fps=fps, max_frames=frames, resize_to=(1280, 720))
    rows["full size, then 1280x720"] = (time.perf_counter() - started, folder_bytes(work / "two"))
    started = time.perf_counter()
    prepare_for_output(video, work / "one", 1280, 720, fps=fps, max_frames=frames)
    rows["1280x720 only (now)     "] = (time.perf_counter() - started, folder_bytes(work / "one"))
    return rows


if __name__ == "__main__":
    main()
