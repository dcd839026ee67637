"""Distillation data for Wav2Lip from what the user already has: the prepared avatar and the
configured voice speaking the stream's own sentences (catalog answers and pitches).

Each sample is one video frame: the mel window of that frame's audio and the avatar crop of a
loop position, stacked the way ``Wav2LipFace.model_inputs`` stacks them at run time. The last
fifth of the sentences is held out for the fidelity figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from streambot.brain.catalog import CatalogAnswerer
from streambot.catalog import Catalog
from streambot.face.avatar import PreparedAvatar
from streambot.face.mel import mel_windows, melspectrogram
from streambot.resample import resample
from streambot.timing import FACE_RATE, samples_per_frame
from streambot.voice.base import Voice


def catalog_sentences(catalog: Catalog, langs: Sequence[str] = ("en", "zh")) -> list[str]:
    """What the host says on this stream: each product's pitch and its price, stock and
    shipping answers, in each language."""
    answerer = CatalogAnswerer(catalog)
    sentences = []
    for product in catalog.product:
        for lang in langs:
            sentences.append(answerer.pitch(product.id, lang))
            name = product.name_zh if lang == "zh" else product.name
            for question in (
                ("多少钱", "还有货吗", "几天发货")
                if lang == "zh"
                else ("how much is the {}?", "is the {} in stock?", "how fast does the {} ship?")
            ):
                text = f"{name}{question}" if lang == "zh" else question.format(name)
                sentences.append(answerer.answer(text, None, lang))
    return sentences


async def _speak(voice: Voice, sentences: Sequence[str]) -> list[np.ndarray]:
    spoken = []
    for sentence in sentences:
        parts = [pcm async for pcm in voice.speak(sentence)]
        spoken.append(np.concatenate(parts) if parts else np.zeros(0, np.float32))
    return spoken


@dataclass
class FrameSet:
    """Model inputs for many frames: mel (N, 1, 80, 16) and face (N, 6, S, S), float32."""

    mel: np.ndarray
    face: np.ndarray

    def __len__(self) -> int:
        return len(self.mel)

    def batches(self, batch: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Random batches, forever."""
        rng = np.random.default_rng(seed)
        while True:
            pick = rng.choice(len(self), size=min(batch, len(self)), replace=False)
            yield torch.from_numpy(self.mel[pick]), torch.from_numpy(self.face[pick])

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.mel[:n]), torch.from_numpy(self.face[:n])


def face_inputs(avatar: PreparedAvatar, loop_positions: Sequence[int]) -> np.ndarray:
    """(N, 6, S, S): the masked crop, then the reference crop, BGR in [0, 1]."""
    indices = [int(avatar.loop[p % len(avatar.loop)]) for p in loop_positions]
    faces = np.asarray(avatar.faces[indices])[..., ::-1]  # RGB -> BGR (the training data's)
    masked = faces.copy()
    masked[:, faces.shape[1] // 2 :] = 0
    stacked = np.concatenate([masked, faces], axis=3).astype(np.float32) / 255.0
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2))


def frame_sets(
    avatar: PreparedAvatar, voice: Voice, sentences: Sequence[str], fps: int
) -> tuple[FrameSet, FrameSet]:
    """(training frames, held-out frames) from ``voice`` speaking ``sentences``."""
    if not sentences:
        raise ValueError("no sentences to speak")
    spoken = asyncio.run(_speak(voice, sentences))
    held = max(1, len(sentences) // 5)
    sets = []
    position = 0
    for group in (spoken[:-held] or spoken, spoken[-held:]):
        mels = []
        for pcm in group:
            pcm16k = resample(pcm, voice.sample_rate, FACE_RATE)
            frames = len(pcm16k) // samples_per_frame(fps, FACE_RATE)
            if frames:
                mels.append(mel_windows(melspectrogram(pcm16k), frames, fps))
        mel = np.concatenate(mels).astype(np.float32)[:, None]
        positions = range(position, position + len(mel))
        position += len(mel)
        sets.append(FrameSet(mel, face_inputs(avatar, positions)))
    return sets[0], sets[1]
