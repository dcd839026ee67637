"""Reading an avatar's source: a photo (EXIF-rotated) or a short video, decoded to RGB frames
at the stream's rate; what cannot be read is an AvatarError saying why.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
from av.error import FFmpegError
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    import cv2
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError("avatar preparation needs OpenCV: pip install 'streambot[wav2lip]'") from exc

log = logging.getLogger("streambot.face.avatar")


class AvatarError(Exception):
    """The avatar cannot be prepared or loaded; the message says why and what to do."""


# ------------------------------------------------------------------------------- decoding


def resize_frame(frame: np.ndarray, resize_to: tuple[int, int] | None) -> np.ndarray:
    if resize_to is None or (frame.shape[1], frame.shape[0]) == resize_to:
        return frame
    shrinking = resize_to[0] * resize_to[1] < frame.shape[0] * frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, resize_to, interpolation=interpolation)


def read_image(path: Path) -> np.ndarray | None:
    """The file as an RGB still, or None if it is not one Pillow knows (then try it as video)."""
    try:
        with Image.open(path) as img:
            if getattr(img, "n_frames", 1) > 1:  # an animated GIF/WebP: PyAV reads its timing
                return None
            upright = ImageOps.exif_transpose(img)  # phone photos carry their rotation in EXIF
            return np.array(upright.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        return None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise AvatarError(f"cannot read avatar image {path}: {exc}") from None


def read_video(path: Path, fps: int, max_frames: int) -> list[np.ndarray]:
    """Up to ``max_frames`` RGB frames resampled to ``fps`` by their timestamps.

    Resampling keeps the idle motion at its real speed when the source has another frame rate
    (a 60 fps clip played frame by frame at 25 fps would look slowed down 2.4 times).
    """
    try:
        container = av.open(str(path))
    except (FFmpegError, OSError, ValueError) as exc:
        raise AvatarError(f"cannot read {path}: not an image or video ({exc})") from None
    out: list[np.ndarray] = []
    with container:
        if not container.streams.video:
            raise AvatarError(f"cannot read {path}: it has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        step = 1.0 / float(rate) if rate else 1.0 / fps
        eps = 1e-4
        held: av.VideoFrame | None = None  # the latest decoded frame, converted on first use
        held_rgb: np.ndarray | None = None
        t0 = t = 0.0

        def emit_until(limit: float) -> None:
            nonlocal held_rgb
            while held is not None and len(out) < max_frames and len(out) / fps < limit - eps:
                rgb = held_rgb if held_rgb is not None else held.to_ndarray(format="rgb24")
                held_rgb = rgb
                out.append(rgb)

        try:
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else i * step
                if held is None:
                    t0 = t
                emit_until(t - t0)  # the held frame covers every output time before this one
                if len(out) >= max_frames:
                    break
                held, held_rgb = frame, None
            else:
                emit_until(t - t0 + step)  # the last frame lasts one source frame
        except (FFmpegError, OSError, ValueError) as exc:
            if not out:
                raise AvatarError(f"cannot read {path}: not an image or video ({exc})") from None
            log.warning("%s: stopped at a broken frame after %d frames: %s", path, len(out), exc)
    if not out:
        raise AvatarError(f"cannot read {path}: no video frames could be decoded")
    return out


def source_size(source: str | Path) -> tuple[int, int]:
    """(width, height) of the frames an avatar source gives (upright, as preparation reads
    them), from one decoded frame: enough to choose the size to prepare it at."""
    path = Path(source)
    if not path.is_file():
        raise AvatarError(f"cannot read avatar source {path}: no such file")
    still = read_image(path)
    first = still if still is not None else read_video(path, fps=1, max_frames=1)[0]
    height, width = first.shape[:2]
    return width, height
