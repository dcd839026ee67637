"""ctypes binding to the espeak-ng shared library shipped in the ``espeakng-loader`` wheel.

Written by hand because no maintained Python binding exposes both the synthesis callback and
the phoneme events we need, and the wheel gives us the library without a system package.
espeak-ng keeps global state and is not thread-safe: every call goes through one lock.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_INITIALIZE_PHONEME_EVENTS = 0x0001
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_PHONEME = 7
EE_OK = 0
ESPEAK_PHONEMES_IPA = 0x02


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class PhonemeEvent:
    """An espeak phoneme mnemonic and the output sample at which it starts."""

    sample: int
    phoneme: str


@dataclass(frozen=True)
class Synthesis:
    pcm: np.ndarray  # int16 mono at EspeakLibrary.sample_rate
    phonemes: list[PhonemeEvent]


class EspeakError(RuntimeError):
    pass


class EspeakLibrary:
    """The process-wide espeak-ng instance (the library itself is a singleton)."""

    _instance: EspeakLibrary | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> EspeakLibrary:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - core dependency
            raise EspeakError("espeak-ng is missing: pip install espeakng-loader") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._events: list[PhonemeEvent] = []
        self._samples_so_far = 0
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            espeakng_loader.get_data_path().encode(),
            ESPEAK_INITIALIZE_PHONEME_EVENTS,
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate})")
        self.sample_rate = int(rate)
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: ctypes won't
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            # Copy the bytes out: np.ctypeslib.as_array would make (and ctypes keep forever) a
            # new array type for every distinct chunk length, a slow leak in a 24/7 process.
            chunk = np.frombuffer(ctypes.string_at(wav, num_samples * 2), np.int16)
            self._chunks.append(chunk)
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("ascii", "replace")
                self._events.append(PhonemeEvent(sample=int(ev.sample), phoneme=name))
            i += 1
        return 0  # 0 = continue synthesis

    def _set_voice(self, voice: str) -> None:
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise EspeakError(f"espeak-ng has no voice named {voice!r}")
            self._voice = voice

    def text_to_phonemes(self, text: str, voice: str) -> list[tuple[str, str]]:
        """IPA phonemes clause by clause, each with the text that clause consumed.

        espeak-ng advances the text pointer one clause per call; the consumed text (which may
        include the first character of the next clause) tells which punctuation ended it.
        """
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data)
        base = ctypes.addressof(buf)
        pointer = ctypes.c_void_p(base)
        clauses: list[tuple[str, str]] = []
        with self._lock:
            self._set_voice(voice)
            while pointer.value:
                start = pointer.value - base
                result = self._lib.espeak_TextToPhonemes(
                    ctypes.byref(pointer), ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA
                )
                end = (pointer.value - base) if pointer.value else len(data) - 1
                consumed = data[start:end].decode("utf-8", "replace")
                clauses.append(((result or b"").decode("utf-8", "replace"), consumed))
        return clauses

    def synth(self, text: str, voice: str, words_per_minute: int = 165) -> Synthesis:
        data = text.encode("utf-8") + b"\0"
        with self._lock:
            self._set_voice(voice)
            self._lib.espeak_SetParameter(1, int(words_per_minute), 0)  # espeakRATE, absolute
            self._chunks, self._events = [], []
            buf = ctypes.create_string_buffer(data)
            err = self._lib.espeak_Synth(
                buf, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None
            )
            if err != EE_OK:
                raise EspeakError(f"espeak_Synth failed with code {err}")
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return Synthesis(pcm=pcm, phonemes=list(self._events))
