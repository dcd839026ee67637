"""The daemon when its voice fails: a TTS server that answers NaN (an overflowing fp16
vocoder), any voice engine that makes unplayable audio, and a TTS server that is down, as
/healthz, /metrics and the panel show it."""

from __future__ import annotations

import asyncio
import json
import logging

import numpy as np

import streambot.app as app_module
from streambot.app import App
from streambot.panel.state import panel_state
from streambot.record import Record
from streambot.stage.presenter import Presenter
from tests.tts_double import SpeechServer


class ListeningPresenter(Presenter):
    """The daemon's presenter, noting whether each frame's audio it sends on is finite."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.finite: list[bool] = []

    async def _next_frame(self, stop):
        frame, pcm, turn_id = await super()._next_frame(stop)
        if turn_id is not None:
            self.finite.append(bool(np.isfinite(pcm).all()))
        return frame, pcm, turn_id


def watch_face(app: App) -> list[bool]:
    """Whether each audio the face is asked to render is finite."""
    finite, render = [], app.face.render

    def watched(pcm16k, start_index, visemes=None):
        finite.append(bool(np.isfinite(pcm16k).all()))
        return render(pcm16k, start_index, visemes)

    app.face.render = watched
    return finite


def chat(fast_config, tmp_path, *rows: dict) -> None:
    replay = tmp_path / "chat.jsonl"
    replay.write_text("".join(json.dumps(row) + "\n" for row in rows))
    fast_config.chat.local.replay = str(replay)


def use_server(fast_config, srv: SpeechServer) -> None:
    fast_config.voice.backend = "http"
    fast_config.voice.http.base_url = srv.base_url
    fast_config.voice.http.voice = "my-clone"


def outcomes(fast_config) -> list[tuple[str, str]]:
    with Record.open(fast_config.store.path) as record:
        return [(t.kind, t.outcome) for t in record.turns()]


def test_a_tts_server_answering_nan_is_said_by_the_local_voice_and_no_nan_reaches_the_stream(
    fast_config, tmp_path, monkeypatch
):
    monkeypatch.setattr(app_module, "Presenter", ListeningPresenter)
    chat(fast_config, tmp_path, {"at": 0.2, "user": "ann", "text": "how much is the lamp?"})

    async def scenario() -> tuple[App, list[bool]]:
        srv = SpeechServer(float_wav=True, gain=float("nan"))  # a float WAV of NaN
        await srv.start()
        use_server(fast_config, srv)
        fast_config.voice.http.response_format = "wav"
        app = App(fast_config)
        face = watch_face(app)
        await app.run(6.0)
        await srv.stop()
        return app, face

    app, face = asyncio.run(scenario())
    assert ("answer", "played") in outcomes(fast_config)
    voice = app.voice
    assert voice.requests >= 1 and voice.fallbacks == voice.requests  # espeak said each one
    assert voice.circuit.failures >= 1
    heard = app.presenter.finite
    assert face and all(face) and heard and all(heard)


class OverflowingVoice:
    """espeak-ng, except that a sentence about the lamp comes out as NaN: a voice engine that
    overflowed (the rule at the host holds for every voice, not only a TTS server)."""

    def __init__(self, voice) -> None:
        self.voice, self.sample_rate = voice, voice.sample_rate

    async def speak(self, text: str, lang: str | None = None):
        async for pcm in self.voice.speak(text, lang):
            yield np.full_like(pcm, np.nan) if "lamp" in text else pcm


def test_a_sentence_any_voice_makes_unplayable_is_a_logged_failure_and_the_turn_goes_on(
    fast_config, tmp_path, caplog
):
    say = "!say The grinder is here. The lamp is bright. The kettle is next."
    chat(fast_config, tmp_path, {"at": 0.2, "user": "op", "text": say, "kind": "command"})
    caplog.set_level(logging.WARNING)

    async def scenario() -> tuple[App, list[bool]]:
        app = App(fast_config)
        app.voice = OverflowingVoice(app.voice)
        face = watch_face(app)
        await app.run(6.0)
        return app, face

    app, face = asyncio.run(scenario())
    assert outcomes(fast_config) == [("say", "played")]
    with Record.open(fast_config.store.path) as record:
        spoken = [s.text for s in sorted(record.sentences(), key=lambda s: s.index)]
    assert spoken == ["The grinder is here.", "The kettle is next."]
    assert face and all(face)
    assert "unplayable" in caplog.text and "not finite" in caplog.text
    assert app.health()["voice"]["unplayable"] == 1
    assert "streambot_voice_unplayable_total 1.0" in app.metrics.render().decode()


def test_a_tts_server_that_is_down_makes_healthz_not_ok_and_shows_in_metrics_and_the_panel(
    fast_config, tmp_path
):
    chat(fast_config, tmp_path, {"at": 0.2, "user": "ann", "text": "how much is the lamp?"})
    fast_config.voice.http.retry.retries = 0
    fast_config.voice.http.retry.failure_threshold = 1
    fast_config.voice.http.retry.open_seconds = 300.0  # stays open while the test looks

    async def scenario() -> tuple[dict, str, dict, dict]:
        srv = SpeechServer(fail_next=[503] * 50)
        await srv.start()
        use_server(fast_config, srv)
        app = App(fast_config)
        run = asyncio.create_task(app.run(600.0))
        while app.voice.circuit.state != "open" or app.presenter is None:
            assert not run.done()
            await asyncio.sleep(0.01)
        down, metrics, panel = app.health(), app.metrics.render().decode(), panel_state(app.show)
        app.voice.circuit.record(success=True)  # the server answers again
        up = app.health()
        app.stop.set()
        await asyncio.wait_for(run, 30.0)
        await srv.stop()
        return down, metrics, panel, up

    down, metrics, panel, up = asyncio.run(scenario())
    voice = down["voice"]
    assert not down["ok"] and up["ok"]  # the voice alone made the difference
    assert voice["state"] == "down" and voice["breaker"] == "open"
    assert voice["requests"] == 1 and voice["fallbacks"] >= 1 and voice["failures"] == 1
    assert voice["broken_off"] == 0
    assert 'streambot_voice_breaker{state="open"} 1.0' in metrics
    assert "streambot_voice_up 0.0" in metrics and "streambot_voice_requests_total 1.0" in metrics
    assert "streambot_voice_fallbacks_total" in metrics
    assert panel["health"]["voice"] == voice
