import numpy as np
import pytest

from streambot.config import EspeakVoiceConfig, MouthFaceConfig
from streambot.events import Sentence
from streambot.face.mouth import MouthFace
from streambot.visemes import (
    CLOSED,
    LIP_TEETH,
    OPEN,
    REST,
    ROUND,
    SPREAD,
    frame_visemes,
    viseme_of,
)
from streambot.voice.base import to_speech
from streambot.voice.espeak import EspeakVoice
from tests.conftest import tone


@pytest.mark.parametrize(
    ("phoneme", "viseme"),
    [
        ("m", CLOSED),
        ("b", CLOSED),
        ("p", CLOSED),
        ("f", LIP_TEETH),
        ("v", LIP_TEETH),
        ("'u:", ROUND),
        ("w", ROUND),
        ("'oU", ROUND),
        ("'i@", SPREAD),
        ("'a", OPEN),
        ("'aI", OPEN),
        ("_:", REST),
        ("_|", REST),
        ("uo", ROUND),
        ("'Au", OPEN),
    ],
)
def test_phoneme_to_viseme(phoneme, viseme):
    assert viseme_of(phoneme) == viseme


def test_frame_visemes_take_the_phoneme_at_each_frame_middle():
    events = [(0.0, "_"), (0.05, "m"), (0.13, "'a"), (0.30, "_:")]
    assert (
        frame_visemes(events, 10, 25)
        == [REST, CLOSED, CLOSED, OPEN, OPEN] + [OPEN] * 2 + [REST] * 3
    )


def test_espeak_alignment_closes_lips_on_m_and_b():
    voice = EspeakVoice(EspeakVoiceConfig())
    pcm, events = voice.synth_aligned("Mama bought a map.")
    speech = to_speech(pcm, voice.sample_rate, Sentence(1, 0, "x", "en"), 25, events)
    assert speech.visemes is not None and len(speech.visemes) == speech.frames
    assert speech.visemes.count(CLOSED) >= 3 and OPEN in speech.visemes
    assert events[0][0] >= 0 and events[-1][0] <= pcm.size / voice.sample_rate + 0.05


async def test_lips_close_on_a_loud_bilabial():
    face = MouthFace(MouthFaceConfig(), 320, 180, 25)
    pcm = tone(0.8)  # 20 loud frames
    visemes = [OPEN] * 10 + [CLOSED] * 4 + [OPEN] * 6
    loud = face.openings(pcm)
    face.reset()
    shaped = face.openings(pcm, visemes)
    assert loud[11:14].min() > 0.8  # loudness alone keeps the mouth open
    assert shaped[11:14].max() < 0.15  # the viseme closes it
    assert shaped[17:].min() > 0.6  # and it opens again after
    frames = np.concatenate([b async for b in face.render(pcm, 0, visemes)])
    assert frames.shape[0] == 20
