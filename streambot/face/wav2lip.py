"""The Wav2Lip face: a batched, streaming lip-sync renderer over a prepared avatar.

For each video frame the model sees the avatar's face crop twice, channel-stacked the way the
official checkpoints were trained: first the crop with its lower half blacked out (the mouth
to be drawn), then the untouched crop as the identity reference, both BGR in [0, 1]; plus the
16-frame mel window of that frame's audio. The predicted 96x96 face is resized back into the
crop box and blended with a feathered mask that is zero at the box edges, so no seam shows and
no pixel outside the box changes. Exactly one frame comes out per 640 samples of 16 kHz audio.

Batches are small first (the first frames reach the presenter sooner) and larger after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Unpack

import numpy as np

from streambot.face.avatar import AvatarOptions, PreparedAvatar
from streambot.face.mel import mel_windows, melspectrogram
from streambot.runtime.base import Engine
from streambot.timing import FACE_RATE, samples_per_frame


def _cv2() -> ModuleType:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "the Wav2Lip face needs OpenCV: pip install 'streambot[wav2lip]'"
        ) from exc
    return cv2


def feather_mask(size: int = 96, margin: int = 6, blur: float = 4.0) -> np.ndarray:
    """(size, size, 1) float32 weights for the prediction: ~1 over the lower face, 0 at the
    crop's edges (so the paste-back is seamless) and above the nose (Wav2Lip only redraws the
    lower half; keeping the eyes from the source avoids flicker there)."""
    cv2 = _cv2()
    mask = np.zeros((size, size), np.float32)
    mask[size * 2 // 5 : size - margin, margin : size - margin] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), blur)
    # Blurring spreads weight towards the edges: force the outermost rows/cols to exactly 0.
    edge = max(1, margin // 3)
    mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = 0, 0, 0, 0
    return mask[..., None]


@dataclass(frozen=True)
class Placement:
    """Where the avatar frame goes in the output frame: scaled by ``scale``, then offset."""

    scale: float
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def fit(cls, src_w: int, src_h: int, out_w: int, out_h: int) -> Placement:
        scale = min(out_w / src_w, out_h / src_h)
        w, h = round(src_w * scale), round(src_h * scale)
        return cls(scale, (out_w - w) // 2, (out_h - h) // 2, w, h)


class Wav2LipFace:
    def __init__(
        self,
        engine: Engine,
        avatar: PreparedAvatar,
        width: int,
        height: int,
        fps: int,
        first_batch: int = 4,
        batch: int = 16,
    ) -> None:
        self.engine, self.avatar = engine, avatar
        self.width, self.height, self.fps = width, height, fps
        self.samples_per_frame = samples_per_frame(fps, FACE_RATE)
        self.first_batch, self.batch = first_batch, batch
        self.img_size = avatar.faces.shape[1]
        self._mask = feather_mask(self.img_size)
        src_h, src_w = avatar.frames.shape[1:3]
        self.placement = Placement.fit(src_w, src_h, width, height)
        # The canvas around a letterboxed avatar: the avatar's mean edge colour.
        first = avatar.frames[0]
        edge = np.concatenate([first[0], first[-1], first[:, 0], first[:, -1]])
        self._background = edge.mean(axis=0).astype(np.uint8)
        self._canvas = np.empty((height, width, 3), np.uint8)
        self._canvas[:] = self._background

    def reset(self) -> None:
        pass  # stateless between turns: every clip's mel is computed from its own audio

    def loop_index(self, index: int) -> int:
        """The stored frame shown at idle-loop position ``index``."""
        loop = self.avatar.loop
        return int(loop[index % len(loop)])

    def place(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The avatar-resolution frame letterboxed into the output frame (into ``out`` if
        given). Avatars prepared at the placed size (see `prepare_for_output`) need no
        resampling here, only two copies."""
        p = self.placement
        if out is None:
            if (p.w, p.h, p.x, p.y) == (self.width, self.height, 0, 0) and frame.shape[:2] == (
                p.h,
                p.w,
            ):
                return frame
            out = np.empty((self.height, self.width, 3), np.uint8)
        if (p.x, p.y, p.w, p.h) != (0, 0, self.width, self.height):
            out[:] = self._canvas
        if frame.shape[:2] != (p.h, p.w):
            cv2 = _cv2()
            frame = cv2.resize(frame, (p.w, p.h), interpolation=cv2.INTER_AREA)
        out[p.y : p.y + p.h, p.x : p.x + p.w] = frame
        return out

    def idle(self, index: int) -> np.ndarray:
        return self.place(self.avatar.frames[self.loop_index(index)])

    # -- model inputs and outputs -----------------------------------------------------------
    def model_inputs(self, mels: np.ndarray, loop_indices: Sequence[int]) -> dict[str, np.ndarray]:
        """mel (B, 1, 80, 16) and face (B, 6, S, S): masked crop then reference, BGR, [0, 1]."""
        faces = self.avatar.faces[list(loop_indices)][..., ::-1]  # RGB -> BGR (cv2 training)
        masked = faces.copy()
        masked[:, self.img_size // 2 :] = 0
        stacked = np.concatenate([masked, faces], axis=3).astype(np.float32) / 255.0
        return {
            "mel": mels[:, None].astype(np.float32),
            "face": np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)),
        }

    def paste(self, loop_index: int, predicted_bgr: np.ndarray) -> np.ndarray:
        """Blend one predicted face (3, S, S) BGR in [0, 1] into a copy of the avatar frame."""
        cv2 = _cv2()
        frame = self.avatar.frames[loop_index].copy()
        y1, y2, x1, x2 = (int(v) for v in self.avatar.boxes[loop_index])
        face = (predicted_bgr.transpose(1, 2, 0)[..., ::-1] * 255.0).astype(np.float32)
        size = (x2 - x1, y2 - y1)
        face = cv2.resize(face, size)
        mask = cv2.resize(self._mask, size)[..., None]
        crop = frame[y1:y2, x1:x2].astype(np.float32)
        frame[y1:y2, x1:x2] = np.clip(mask * face + (1.0 - mask) * crop + 0.5, 0, 255).astype(
            np.uint8
        )
        return frame

    def render_batch(self, mels: np.ndarray, start_index: int) -> np.ndarray:
        """Blocking: model + paste-back for len(mels) consecutive frames from ``start_index``."""
        indices = [self.loop_index(start_index + i) for i in range(len(mels))]
        predicted = self.engine.run(self.model_inputs(mels, indices))["frame"]
        out = np.empty((len(mels), self.height, self.width, 3), np.uint8)
        for i, (loop_index, face) in enumerate(zip(indices, predicted, strict=True)):
            self.place(self.paste(loop_index, face), out[i])
        return out

    async def render(
        self, pcm16k: np.ndarray, start_index: int, visemes: Sequence[str] | None = None
    ) -> AsyncIterator[np.ndarray]:
        """Yield batches of frames: len(pcm16k) / 640 frames in all (visemes are not needed:
        the model reads the mouth shape from the audio itself)."""
        if pcm16k.size % self.samples_per_frame:
            raise ValueError(
                f"speech must be whole frames of {self.samples_per_frame} samples, "
                f"got {pcm16k.size}"
            )
        n_frames = pcm16k.size // self.samples_per_frame
        mels = await asyncio.to_thread(
            lambda: mel_windows(melspectrogram(pcm16k), n_frames, self.fps)
        )
        first = 0
        while first < n_frames:
            size = self.first_batch if first == 0 else self.batch
            chunk = mels[first : first + size]
            yield await asyncio.to_thread(self.render_batch, chunk, start_index + first)
            first += len(chunk)


def prepare_for_output(
    source: str | Path, cache_root: Path, width: int, height: int, **options: Unpack[AvatarOptions]
) -> PreparedAvatar:
    """Prepare (or load from the cache) an avatar at the size it is shown in a ``width`` x
    ``height`` stream, so no frame is resampled while live. Only that size is prepared: the
    source's size comes from one decoded frame."""
    from streambot.face.avatar import prepare_avatar
    from streambot.face.avatar_source import source_size

    src_w, src_h = source_size(source)
    fit = Placement.fit(src_w, src_h, width, height)
    if (fit.w, fit.h) == (src_w, src_h):
        return prepare_avatar(source, cache_root, **options)
    return prepare_avatar(source, cache_root, resize_to=(fit.w, fit.h), **options)
