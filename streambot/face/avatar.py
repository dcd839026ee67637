"""Prepare a photo or a short video as a Wav2Lip avatar: idle loop, face boxes, face crops.

Wav2Lip re-draws the lower half of a face crop for each frame of speech, so before going live an
avatar needs (1) the full-resolution frames the stream loops through while idle, (2) where the
face sits in each of them, padded and smoothed the way the official ``inference.py`` does, and
(3) the face crops at the model's input size. All of it is computed once, offline (a Haar cascade
that ships inside OpenCV, no weights are downloaded), and cached on disk under a content hash.

Frames are RGB uint8 (H, W, 3) like everywhere else in streambot; OpenCV's BGR never leaks out.
Boxes use Wav2Lip's (y1, y2, x1, x2) crop convention: ``frame[y1:y2, x1:x2]`` is the face.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np

from streambot.face.avatar_boxes import (
    Rect,
    check_inside,
    crop_faces,
    detect_face,
    int_boxes,
    pad_box,
    parse_face_box,
    scale_rect,
    smooth_boxes,
)
from streambot.face.avatar_source import AvatarError, read_image, read_video, resize_frame
from streambot.progress import track
from streambot.timing import DEFAULT_FPS

try:
    import cv2
except ImportError as exc:  # an optional extra: say how to get it
    raise ImportError("avatar preparation needs OpenCV: pip install 'streambot[wav2lip]'") from exc

log = logging.getLogger("streambot.face.avatar")

# 2: each distinct frame stored once, the loop's order in loop.npy, frames memory-mapped.
FORMAT_VERSION = 2
STILL_LOOP_SECONDS = 4
BREATH_SCALE = 0.006  # the frame grows 0.6% about its centre at the top of a breath
BREATH_RISE_PX = 1.5  # and the picture rises 1.5 px: sub-pixel steps via bilinear warping
FILES = ("frames.npy", "boxes.npy", "faces.npy", "loop.npy")
META = "avatar.json"


class AvatarNotPrepared(AvatarError):
    """Asked for a cached avatar only (``cached_only``) and there is none yet."""


@dataclass
class PreparedAvatar:
    """A ready avatar: the idle loop plus, per frame, the face box and the model-sized crop."""

    # Each distinct frame once, (N, H, W, 3) uint8 RGB at full resolution. A loaded avatar maps
    # the file rather than reading it: a minute of 1080p is gigabytes, and the OS page cache
    # then holds only what is played and shares it.
    frames: np.ndarray
    boxes: np.ndarray  # (N, 4) int32 (y1, y2, x1, x2): frames[i][y1:y2, x1:x2] is the face
    faces: np.ndarray  # (N, img_size, img_size, 3) uint8 RGB crops of the boxes
    # (L,) int32 indices into frames, the idle loop in play order; it loops seamlessly from
    # L-1 to 0 (a video plays forward then backward without storing the way back).
    loop: np.ndarray
    key: str  # content hash of the source file and the preparation parameters
    fps: int
    folder: Path


# ------------------------------------------------------------------------------ the loops


def _breath(index: int, count: int) -> float:
    """0 at frame 0, 1 at mid-loop, periodic over ``count`` with zero slope at both ends."""
    return 0.5 * (1.0 - math.cos(2.0 * math.pi * index / count))


def _breathing_loop(
    image: np.ndarray, rect: Rect, count: int
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``count`` frames of a still that breathes, and the union of the face rect over them.

    Frame 0 is the image itself; each breath scales the frame slightly about its centre and lifts
    it a little, one smooth cosine cycle per loop, so the last frame leads back into the first.
    """
    h, w = image.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    x, y, fw, fh = rect
    frames = np.empty((count, h, w, 3), np.uint8)
    lo_x, lo_y, hi_x, hi_y = math.inf, math.inf, -math.inf, -math.inf
    for k in range(count):
        b = _breath(k, count)
        s = 1.0 + BREATH_SCALE * b
        dy = -BREATH_RISE_PX * b
        m = np.array([[s, 0.0, (1 - s) * cx], [0.0, s, (1 - s) * cy + dy]], np.float64)
        # Reflecting the border keeps the frame edges filled with plausible pixels as it moves.
        frames[k] = cv2.warpAffine(
            image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        lo_x, hi_x = min(lo_x, s * (x - cx) + cx), max(hi_x, s * (x + fw - cx) + cx)
        lo_y, hi_y = min(lo_y, s * (y - cy) + cy + dy), max(hi_y, s * (y + fh - cy) + cy + dy)
    return frames, (lo_x, lo_y, hi_x, hi_y)


def _ping_pong(n: int) -> np.ndarray:
    """Indices 0..n-1 then n-2..1: 2n-2 frames (n if n < 3) that loop without a jump."""
    if n < 3:
        return np.arange(n)
    return np.concatenate([np.arange(n), np.arange(n - 2, 0, -1)])


# ------------------------------------------------------------------------------- the cache


def _cache_key(path: Path, params: dict[str, object]) -> str:
    try:
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256")
    except FileNotFoundError:
        raise AvatarError(f"cannot read avatar source {path}: no such file") from None
    except OSError as exc:
        raise AvatarError(f"cannot read avatar source {path}: {exc}") from None
    digest.update(json.dumps(params, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _load_npy(folder: Path, name: str) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise AvatarError(f"{path} is missing: prepare the avatar again")
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if name == "frames.npy" else None)
    except (OSError, ValueError, EOFError) as exc:
        raise AvatarError(f"{path} is broken ({exc}): prepare the avatar again") from None


def load_avatar(folder: Path) -> PreparedAvatar:
    """Load a prepared avatar folder, checking every file; AvatarError names any bad one."""
    folder = Path(folder)
    meta_path = folder / META
    if not folder.is_dir():
        raise AvatarError(f"avatar folder {folder} does not exist")
    if not meta_path.is_file():
        raise AvatarError(f"{meta_path} is missing: the preparation is incomplete, run it again")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version, key = meta["format_version"], str(meta["key"])
        fps, count = int(meta["fps"]), int(meta["frame_count"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise AvatarError(f"{meta_path} is broken ({exc!r}): prepare the avatar again") from None
    if version != FORMAT_VERSION:
        raise AvatarError(
            f"{meta_path} has format version {version}, this streambot reads "
            f"{FORMAT_VERSION}: prepare the avatar again"
        )
    frames, boxes, faces, loop = (_load_npy(folder, name) for name in FILES)

    def bad(name: str, array: np.ndarray, expected: str) -> AvatarError:
        return AvatarError(
            f"{folder / name} holds {array.dtype} {array.shape}, expected {expected}: "
            "prepare the avatar again"
        )

    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        raise bad("frames.npy", frames, "uint8 (N, H, W, 3)")
    if len(frames) != count or count == 0:
        raise bad("frames.npy", frames, f"{count} frames as {META} says")
    if boxes.dtype != np.int32 or boxes.shape != (count, 4):
        raise bad("boxes.npy", boxes, f"int32 ({count}, 4)")
    h, w = frames.shape[1:3]
    y1, y2, x1, x2 = boxes.T
    if (y1 < 0).any() or (x1 < 0).any() or (y2 > h).any() or (x2 > w).any():
        raise AvatarError(f"{folder / 'boxes.npy'} has boxes outside the {w}x{h} frames")
    if (y2 <= y1).any() or (x2 <= x1).any():
        raise AvatarError(f"{folder / 'boxes.npy'} has empty boxes")
    if faces.dtype != np.uint8 or faces.ndim != 4 or len(faces) != count:
        raise bad("faces.npy", faces, f"uint8 ({count}, S, S, 3)")
    if faces.shape[1] != faces.shape[2] or faces.shape[3] != 3:
        raise bad("faces.npy", faces, f"uint8 ({count}, S, S, 3)")
    if loop.dtype != np.int32 or loop.ndim != 1 or len(loop) == 0:
        raise bad("loop.npy", loop, "int32 (L,)")
    if loop.min() < 0 or loop.max() >= count:
        raise AvatarError(f"{folder / 'loop.npy'} names frames outside 0..{count - 1}")
    return PreparedAvatar(frames, boxes, faces, loop, key, fps, folder)


def _save(folder: Path, avatar: PreparedAvatar, meta: dict[str, object]) -> None:
    """Write into a private temporary folder and rename it, so a folder is always complete."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        arrays = (avatar.frames, avatar.boxes, avatar.faces, avatar.loop)
        for name, array in zip(FILES, arrays, strict=True):
            np.save(tmp / name, array, allow_pickle=False)
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if folder.exists():  # a broken earlier attempt: we only get here when it failed to load
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if (folder / META).is_file():  # another process finished the same preparation first
            return
        raise AvatarError(f"cannot write the prepared avatar to {folder}: {exc}") from None


# ----------------------------------------------------------------------------- preparation


def _checked_options(
    face_box: object | None,
    pads: tuple[int, int, int, int],
    smooth_window: int,
    img_size: int,
    fps: int,
    max_frames: int,
    resize_to: tuple[int, int] | None,
) -> tuple[Rect | None, tuple[int, int, int, int], tuple[int, int] | None, dict[str, object]]:
    """The caller's face box, pads and resize_to as ints, and every parameter that shapes the
    result (part of the cache key, and kept in the meta); AvatarError/ValueError if invalid."""
    given = parse_face_box(face_box) if face_box is not None else None
    pad4 = tuple(int(p) for p in pads)
    if len(pad4) != 4 or min(pad4) < 0:
        raise ValueError(f"pads must be four non-negative ints (top, bottom, left, right): {pads}")
    if smooth_window < 1 or img_size < 8 or fps < 1 or max_frames < 1:
        raise ValueError("smooth_window, fps and max_frames must be >= 1 and img_size >= 8")
    if resize_to is not None:
        resize_to = (int(resize_to[0]), int(resize_to[1]))
        if min(resize_to) < 1:
            raise ValueError(f"resize_to must be a positive (width, height): {resize_to}")
    params = {
        "format_version": FORMAT_VERSION,
        "face_box": list(given) if given is not None else None,
        "pads": list(pad4),
        "smooth_window": smooth_window,
        "img_size": img_size,
        "fps": fps,
        "max_frames": max_frames,
        "resize_to": list(resize_to) if resize_to is not None else None,
    }
    return given, (pad4[0], pad4[1], pad4[2], pad4[3]), resize_to, params


def _load_cached(folder: Path, cached_only: bool) -> PreparedAvatar | None:
    """The avatar cached in ``folder``, or None when there is none or it is unusable."""
    if not (folder / META).is_file():
        return None
    try:
        return load_avatar(folder)
    except AvatarError as exc:
        if cached_only:
            raise
        log.warning("cached avatar unusable, preparing again: %s", exc)
        return None


def _face_rects(
    sources: list[np.ndarray], resized: tuple[int, ...], given: Rect | None, name: str
) -> list[Rect | None]:
    """The face rect (``given``, else detected) on each source frame, carried onto frames of
    shape ``resized``; AvatarError when no frame has a face."""
    src_h, src_w = sources[0].shape[:2]
    h, w = resized[:2]
    sx, sy = w / src_w, h / src_h
    if given is not None:
        check_inside(given, src_w, src_h)
        # The caller measured the box on the source; carry it onto the resized frames.
        rects: list[Rect | None] = [scale_rect(given, sx, sy, w, h)] * len(sources)
    else:
        # Detect on the source frames: a downscaled avatar can leave the face too small for
        # the cascade. Boxes are then carried onto the resized frames.
        rects = [
            scale_rect(detect_face(f), sx, sy, w, h)
            for f in track(sources, f"finding the face in {name}", len(sources))
        ]
    if all(r is None for r in rects):
        n = len(sources)
        raise AvatarError(
            f"no face found in {name} ({n} frame{'s' if n != 1 else ''} searched): "
            "use a clear, frontal, well-lit face or give the face box (x, y, w, h) yourself"
        )
    return rects


def _still_loop(
    image: np.ndarray, rect: Rect | None, count: int, pads: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, boxes, loop order) of a still breathing for ``count`` frames, one fixed box."""
    assert rect is not None  # _face_rects raised if the still's one frame had no face
    h, w = image.shape[:2]
    frames, (lx, ly, hx, hy) = _breathing_loop(image, rect, count)
    # One fixed box around the face at every phase of the breath, rather than a box that
    # follows it: the motion is a few pixels, and a moving box rounded to whole pixels would
    # jump by a pixel now and then, which shows as a jitter of the pasted mouth. A fixed box
    # keeps the crop-to-frame mapping constant, so the mouth moves exactly with the picture.
    ux, uy = math.floor(lx), math.floor(ly)
    box = pad_box((ux, uy, math.ceil(hx) - ux, math.ceil(hy) - uy), pads, w, h)
    boxes = int_boxes(np.repeat(box[None], len(frames), axis=0), w, h)
    return frames, boxes, np.arange(len(frames))


def _video_loop(
    frames_list: list[np.ndarray],
    rects: list[Rect | None],
    pads: tuple[int, int, int, int],
    smooth_window: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, smoothed boxes, ping-pong loop order) of a video's frames."""
    h, w = frames_list[0].shape[:2]
    found = [i for i, r in enumerate(rects) if r is not None]
    # Frames where the detector missed reuse the nearest detected box (earlier on a tie).
    filled = [rects[min(found, key=lambda j, i=i: (abs(j - i), j))] for i in range(len(rects))]
    padded = np.stack([pad_box(r, pads, w, h) for r in filled if r is not None])
    boxes = int_boxes(smooth_boxes(padded, smooth_window), w, h)
    return np.stack(frames_list), boxes, _ping_pong(len(frames_list))


def _metadata(
    avatar: PreparedAvatar,
    source: str,
    still: bool,
    given: Rect | None,
    rects: list[Rect | None],
    params: dict[str, object],
) -> dict[str, object]:
    """What ``avatar.json`` records about a preparation (for people; loading ignores it)."""
    y1, y2, x1, x2 = (int(v) for v in avatar.boxes[0])
    h, w = avatar.frames.shape[1:3]
    return {
        "format_version": FORMAT_VERSION,
        "source": source,
        "key": avatar.key,
        "fps": avatar.fps,
        "frame_count": len(avatar.frames),
        "loop_length": len(avatar.loop),
        "frame_size": [w, h],
        "loop": "breathing" if still else "ping-pong",
        "kind": "image" if still else "video",
        "face_box_from": "caller" if given is not None else "haar cascade",
        "detected_in": f"{sum(r is not None for r in rects)}/{len(rects)} frames",
        "box0_y1_y2_x1_x2": [y1, y2, x1, x2],
        "params": params,
    }


class AvatarOptions(TypedDict, total=False):
    """``prepare_avatar``'s options, for the functions that pass them on."""

    face_box: tuple[int, int, int, int] | None
    pads: tuple[int, int, int, int]
    smooth_window: int
    img_size: int
    fps: int
    max_frames: int
    cached_only: bool


def prepare_avatar(
    source: str | Path,
    cache_root: Path,
    *,
    face_box: tuple[int, int, int, int] | None = None,
    pads: tuple[int, int, int, int] = (0, 10, 0, 0),
    smooth_window: int = 5,
    img_size: int = 96,
    fps: int = DEFAULT_FPS,
    max_frames: int = 250,
    resize_to: tuple[int, int] | None = None,
    cached_only: bool = False,
) -> PreparedAvatar:
    """Prepare (or load from the cache) an avatar from a still image or a video.

    ``face_box`` (x, y, w, h) in the source's pixels skips detection. ``pads`` is Wav2Lip's
    (top, bottom, left, right). ``resize_to`` is (width, height) for every frame. A still
    becomes ``fps * 4`` frames of slow breathing with one fixed face box; a video becomes up to
    ``max_frames`` frames resampled to ``fps``, played forward then backward (2n - 2 frames).
    The result lives in ``cache_root / key``: same file and parameters, same folder.
    ``cached_only`` loads that folder or raises AvatarNotPrepared, never preparing.
    """
    path = Path(source)
    given, pads, resize_to, params = _checked_options(
        face_box, pads, smooth_window, img_size, fps, max_frames, resize_to
    )
    key = _cache_key(path, params)
    folder = Path(cache_root) / key
    cached = _load_cached(folder, cached_only)
    if cached is not None:
        return cached
    if cached_only:
        raise AvatarNotPrepared(f"{path.name} is not prepared in {cache_root} yet")

    started = time.perf_counter()
    still = read_image(path)
    sources = [still] if still is not None else read_video(path, fps, max_frames)
    frames_list = [resize_frame(f, resize_to) for f in sources]
    rects = _face_rects(sources, frames_list[0].shape, given, path.name)
    if still is not None:
        frames, boxes, order = _still_loop(frames_list[0], rects[0], fps * STILL_LOOP_SECONDS, pads)
    else:
        frames, boxes, order = _video_loop(frames_list, rects, pads, smooth_window)
    del frames_list, sources
    faces = crop_faces(frames, boxes, img_size)

    avatar = PreparedAvatar(frames, boxes, faces, order.astype(np.int32), key, fps, folder)
    _save(folder, avatar, _metadata(avatar, path.name, still is not None, given, rects, params))
    log.info(
        "prepared avatar %s from %s: %d frames, face box (y1, y2, x1, x2) %s, in %.2fs",
        key,
        path.name,
        len(frames),
        tuple(int(v) for v in boxes[0]),
        time.perf_counter() - started,
    )
    del avatar, frames, faces  # hand back the mapped files, not a second copy in memory
    return load_avatar(folder)
