"""Piper VITS voices (``.onnx`` + ``.onnx.json``) run with ONNX Runtime, streamed per sentence.

Phonemes come from espeak-ng in IPA the way Piper makes them: clause by clause in the voice's
``espeak.voice``, the clause's punctuation kept as a phoneme (with a space after , : ;),
language-switch flags dropped, and every phoneme decomposed (NFD) into code points. Ids are
BOS, PAD, then each phoneme's id followed by PAD, then EOS. Each sentence is one model call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import unicodedata
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streambot.runtime.onnx_engine import run_dense
from streambot.voice.espeak_lib import EspeakLibrary
from streambot.voice.normalize import normalize_text

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger(__name__)
BOS, EOS, PAD = "^", "$", "_"
_TERMINATORS = {".": ".", "?": "?", "!": "!", ",": ",", ":": ":", ";": ";", "—": ";", "–": ";"}
_SENTENCE_END = {".", "?", "!"}
_LANG_FLAG = re.compile(r"\([^)]+\)")


class VoiceError(RuntimeError):
    """A voice cannot be loaded or run; the message names the file and the problem."""


@dataclass(frozen=True)
class PiperSettings:
    noise_scale: float | None = None  # None: the voice's own default from its .onnx.json
    length_scale: float | None = None
    noise_w: float | None = None
    speaker_id: int | None = None


def _terminator(consumed: str, last: bool) -> str:
    """The punctuation that ended a clause, from the text espeak-ng consumed for it."""
    body = consumed if last else consumed[:-1]  # all but the last include the next character
    body = body.rstrip().rstrip("\"')]}”’")
    if last and (body.endswith("...") or body.endswith("…")):
        return ""  # a trailing ellipsis ends nothing: espeak treats it as an open clause
    return _TERMINATORS.get(body[-1], "") if body else ""


def phonemize(text: str, espeak_voice: str) -> list[list[str]]:
    """Text to phonemes, one list of code points per sentence."""
    clauses = EspeakLibrary.get().text_to_phonemes(text, espeak_voice)
    sentences: list[list[str]] = []
    current: list[str] = []
    for i, (phonemes, consumed) in enumerate(clauses):
        phonemes = _LANG_FLAG.sub("", phonemes)
        end = _terminator(consumed, i == len(clauses) - 1)
        phonemes += end
        if end in (",", ":", ";"):
            phonemes += " "
        current.extend(unicodedata.normalize("NFD", phonemes))
        if end in _SENTENCE_END:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return [s for s in sentences if s]


def voice_session(
    path: Path, threads: int = 0, what: str = "the model"
) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session for a voice model, VoiceError naming the file if not.

    Its threads sleep between calls instead of spinning: a voice alternates between sessions
    (encoder, decoder) and with the face on the same cores, and a session spinning after its
    call takes the cores from the next one (measured: the first audio of a sentence 154 ms
    with spinning, 101 ms without, bench/voice.py)."""
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except ImportError as exc:
        raise VoiceError("Piper voices need ONNX Runtime: pip install onnxruntime") from exc
    except Exception as exc:  # onnxruntime raises its own exception types
        raise VoiceError(f"{path}: cannot load {what} ({exc})") from exc


class PiperVoice:
    def __init__(
        self,
        model: str | Path,
        config: str | Path | None = None,
        settings: PiperSettings | None = None,
        threads: int = 0,
    ) -> None:
        self.model_path = Path(model)
        config_path = Path(config) if config else Path(f"{self.model_path}.json")
        for path in (self.model_path, config_path):
            if not path.is_file():
                raise VoiceError(f"Piper voice file not found: {path}")
        try:
            self.voice_config = json.loads(config_path.read_text(encoding="utf-8"))
            self.sample_rate = int(self.voice_config["audio"]["sample_rate"])
            self.espeak_voice = self.voice_config["espeak"]["voice"]
            self.id_map: dict[str, list[int]] = self.voice_config["phoneme_id_map"]
            inference = self.voice_config.get("inference", {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VoiceError(f"{config_path}: not a Piper voice config ({exc})") from exc
        s = settings or PiperSettings()
        self.noise_scale = (
            inference.get("noise_scale", 0.667) if s.noise_scale is None else s.noise_scale
        )
        self.length_scale = (
            inference.get("length_scale", 1.0) if s.length_scale is None else s.length_scale
        )
        self.noise_w = inference.get("noise_w", 0.8) if s.noise_w is None else s.noise_w
        self.num_speakers = int(self.voice_config.get("num_speakers", 1))
        self.speaker_id = s.speaker_id
        if self.num_speakers > 1 and self.speaker_id is None:
            self.speaker_id = 0
        if self.speaker_id is not None and not 0 <= self.speaker_id < self.num_speakers:
            raise VoiceError(
                f"speaker id {self.speaker_id} out of range: the voice has {self.num_speakers}"
            )
        self.session = voice_session(self.model_path, threads)
        espeak = EspeakLibrary.get()
        try:
            espeak.text_to_phonemes("", self.espeak_voice)
        except RuntimeError as exc:
            raise VoiceError(str(exc)) from exc

    # -- text to ids ------------------------------------------------------------------------
    def phonemize(self, text: str) -> list[list[str]]:
        return phonemize(normalize_text(text), self.espeak_voice)

    def phonemes_to_ids(self, phonemes: list[str]) -> list[int]:
        ids = [*self.id_map[BOS], *self.id_map[PAD]]
        for phoneme in phonemes:
            mapped = self.id_map.get(phoneme)
            if mapped is None:
                log.debug("phoneme %r is not in the voice's map; skipped", phoneme)
                continue
            ids += [*mapped, *self.id_map[PAD]]
        return ids + self.id_map[EOS]

    # -- ids to audio -----------------------------------------------------------------------
    def model_inputs(self, ids: list[int]) -> dict[str, np.ndarray]:
        feed = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([self.noise_scale, self.length_scale, self.noise_w], np.float32),
        }
        if self.speaker_id is not None:
            feed["sid"] = np.array([self.speaker_id], dtype=np.int64)
        return feed

    def ids_to_audio(self, ids: list[int]) -> np.ndarray:
        audio = run_dense(self.session, self.model_inputs(ids))[0]
        return np.clip(audio.reshape(-1), -1.0, 1.0).astype(np.float32)

    def synthesize(self, text: str) -> list[np.ndarray]:
        """Blocking: one float32 array per sentence at ``sample_rate``."""
        return [self.ids_to_audio(self.phonemes_to_ids(s)) for s in self.phonemize(text)]

    async def speak(self, text: str, lang: str | None = None) -> AsyncGenerator[np.ndarray, None]:
        for sentence in await asyncio.to_thread(self.phonemize, text):
            ids = self.phonemes_to_ids(sentence)
            yield await asyncio.to_thread(self.ids_to_audio, ids)
