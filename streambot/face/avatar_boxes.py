"""Where the face is in an avatar's frames: Haar detection (the cascade that ships inside
OpenCV, no weights downloaded), a given box checked, and Wav2Lip's padding, smoothing and crops.
Boxes use Wav2Lip's (y1, y2, x1, x2) crop convention: ``frame[y1:y2, x1:x2]`` is the face.
"""

from __future__ import annotations

import math
import os
from functools import cache

import numpy as np

from streambot.face.avatar_source import AvatarError

try:
    import cv2
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError("avatar preparation needs OpenCV: pip install 'streambot[wav2lip]'") from exc

CASCADE = "haarcascade_frontalface_default.xml"
# Haar detection runs on a copy at most this many pixels on its longer side: faster, and on big
# frames the cascade finds spurious "faces" larger than the real one, which "largest face" picks.
DETECT_MAX_SIDE = 640

Rect = tuple[int, int, int, int]


# ---------------------------------------------------------------------------- face detection


@cache
def cascade() -> cv2.CascadeClassifier:
    try:
        from cv2.data import haarcascades
    except ImportError:  # a build without its data folder: the check below says so
        haarcascades = ""
    classifier = cv2.CascadeClassifier(os.path.join(haarcascades, CASCADE))
    if classifier.empty():  # OpenCV 5 no longer ships the Haar cascades
        raise AvatarError(
            f"OpenCV {cv2.__version__} has no {CASCADE}: install 'opencv-python-headless<5' "
            "or pass a face box"
        )
    return classifier


def detect_face(image: np.ndarray) -> Rect | None:
    """The largest frontal face in an RGB image as (x, y, w, h) in its pixels, or None."""
    h, w = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    found = cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))
    if len(found) == 0:
        return None
    x, y, fw, fh = max(found, key=lambda r: int(r[2]) * int(r[3]))
    x1, y1 = int(x / scale), int(y / scale)
    x2, y2 = min(w, math.ceil((x + fw) / scale)), min(h, math.ceil((y + fh) / scale))
    return x1, y1, x2 - x1, y2 - y1


def parse_face_box(face_box: object) -> Rect:
    """A caller's (x, y, w, h) as ints, or AvatarError if it is not four whole numbers."""
    try:
        values = [float(v) for v in face_box]  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise AvatarError(f"bad face box {face_box!r}: expected four numbers x, y, w, h") from None
    if len(values) != 4 or any(not v.is_integer() for v in values):
        raise AvatarError(f"bad face box {face_box!r}: expected four whole numbers x, y, w, h")
    x, y, w, h = (int(v) for v in values)
    if w <= 0 or h <= 0:
        raise AvatarError(f"bad face box {face_box!r}: width and height must be positive")
    return x, y, w, h


def scale_rect(rect: Rect | None, sx: float, sy: float, width: int, height: int) -> Rect | None:
    if rect is None or (sx, sy) == (1.0, 1.0):
        return rect
    x, y, w, h = rect
    x1, y1 = math.floor(x * sx), math.floor(y * sy)
    x2, y2 = min(width, math.ceil((x + w) * sx)), min(height, math.ceil((y + h) * sy))
    return (x1, y1, x2 - x1, y2 - y1)


def check_inside(rect: Rect, width: int, height: int) -> None:
    x, y, w, h = rect
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise AvatarError(
            f"bad face box {rect}: it leaves the {width}x{height} image "
            f"(x, y >= 0, x + w <= {width}, y + h <= {height})"
        )


# --------------------------------------------------------------------- Wav2Lip box handling


def pad_box(rect: Rect, pads: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
    """Wav2Lip's padding of an (x, y, w, h) face: (y1, y2, x1, x2) clipped to the frame.

    ``pads`` is (top, bottom, left, right); the default 10 px at the bottom keeps the chin in.
    """
    x, y, w, h = rect
    top, bottom, left, right = pads
    return np.array(
        [max(0, y - top), min(height, y + h + bottom), max(0, x - left), min(width, x + w + right)],
        dtype=np.float64,
    )


def smooth_boxes(boxes: np.ndarray, window: int) -> np.ndarray:
    """Mean over a sliding window of boxes, as the official ``get_smoothened_boxes``.

    Box i becomes the mean of boxes[i:i+T]; the last T-1 boxes, which have no full window ahead,
    use the last T. Like the original, it works in place, so those tail windows already see
    smoothed boxes. Unlike it, T shrinks to the sequence length for sequences shorter than T.
    """
    out = np.asarray(boxes, dtype=np.float64).copy()
    t = max(1, min(window, len(out)))
    for i in range(len(out)):
        chunk = out[i : i + t] if i + t <= len(out) else out[len(out) - t :]
        out[i] = chunk.mean(axis=0)
    return out


def int_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Float (y1, y2, x1, x2) rows rounded to int32 inside the frame, never empty."""
    b = np.rint(boxes).astype(np.int64)
    b[:, 0] = np.clip(b[:, 0], 0, height - 1)
    b[:, 1] = np.clip(b[:, 1], b[:, 0] + 1, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - 1)
    b[:, 3] = np.clip(b[:, 3], b[:, 2] + 1, width)
    return b.astype(np.int32)


def crop_faces(frames: np.ndarray, boxes: np.ndarray, img_size: int) -> np.ndarray:
    faces = np.empty((len(frames), img_size, img_size, 3), np.uint8)
    for i, (frame, (y1, y2, x1, x2)) in enumerate(zip(frames, boxes, strict=True)):
        # Default (bilinear) interpolation, exactly what the official inference code feeds in.
        faces[i] = cv2.resize(frame[y1:y2, x1:x2], (img_size, img_size))
    return faces
