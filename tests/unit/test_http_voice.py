"""The TTS-server voice against a loopback OpenAI-compatible speech server: streamed and
whole responses, PCM and WAV, errors the way OpenAI answers them, slow and broken servers,
the local voice standing in and the server taken back once it answers again."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from pydantic import SecretStr

from streambot.config import EspeakVoiceConfig
from streambot.voice.audio_stream import AudioFormatError, PcmStream, WavStream
from streambot.voice.espeak import EspeakVoice
from streambot.voice.http_speech import HttpSpeechVoice
from tests.tts_double import SpeechServer, tone, wav_header

KEY = "sk-test-tts-0123456789abcdef"


@pytest.fixture
async def server():
    srv = SpeechServer(key=KEY)
    await srv.start()
    yield srv
    await srv.stop()


def voice_for(server: SpeechServer, **kwargs) -> HttpSpeechVoice:
    options = dict(first_byte_timeout=1.0, idle_timeout=0.5, backoff_base=0.01,
                   backoff_max=0.02, open_seconds=0.3)  # fmt: skip
    options.update(kwargs)
    fallback = EspeakVoice(EspeakVoiceConfig())
    return HttpSpeechVoice(server.base_url, "tts-1", "my-clone", SecretStr(KEY), fallback,
                           **options)  # fmt: skip


async def pieces(voice, text="Hello there.", lang="en"):
    return [p async for p in voice.speak_pieces(text, lang)]


def joined(got) -> np.ndarray:
    return np.concatenate([p.pcm for p in got])


def expected(server: SpeechServer) -> np.ndarray:
    return tone(server.seconds, server.rate).astype(np.float32) / 32768.0


async def test_streamed_pcm_arrives_piece_by_piece_and_decodes_exactly(server):
    server.gate = asyncio.Event()  # the server holds the rest until the client has a piece
    voice = voice_for(server)
    stream = voice.speak_pieces("The bottle is $24.50 today.", "en")
    first = await asyncio.wait_for(anext(stream), 2.0)  # arrives while the server waits
    assert first.rate == 24_000 and not first.ends and first.pcm.size > 0
    server.gate.set()
    rest = [p async for p in stream]
    got = [first, *rest]
    assert got[-1].ends and not any(p.ends for p in got[:-1])
    assert np.array_equal(joined(got), expected(server))  # odd chunk edges included
    body = server.requests[0]
    assert body == {"model": "tts-1", "input": "The bottle is 24 dollars and 50 cents today.",
                    "voice": "my-clone", "response_format": "pcm"}  # fmt: skip
    assert voice.fallbacks == 0 and voice.circuit.state == "closed"
    await voice.close()


@pytest.mark.parametrize("mode", ["stream", "whole"])
async def test_wav_streamed_with_unknown_length_or_sent_whole(server, mode):
    server.mode, server.rate = mode, 22_050
    voice = voice_for(server, response_format="wav")
    got = await pieces(voice)
    assert {p.rate for p in got} == {22_050}
    assert np.array_equal(joined(got), expected(server))
    assert server.requests[0]["response_format"] == "wav"
    await voice.close()


async def test_chinese_text_is_sent_as_written(server):
    voice = voice_for(server)
    await pieces(voice, "保温杯今天只要24.50美元。", "zh")
    assert server.requests[0]["input"] == "保温杯今天只要24.50美元。"
    await voice.close()


async def test_a_server_error_is_retried_and_then_the_server_speaks(server):
    server.fail_next = [503]
    voice = voice_for(server)
    got = await pieces(voice)
    assert len(server.requests) == 2 and np.array_equal(joined(got), expected(server))
    assert voice.fallbacks == 0 and voice.circuit.failures == 0
    await voice.close()


async def test_a_bad_key_is_not_retried_the_local_voice_speaks_and_the_key_stays_secret(
    server, caplog
):
    caplog.set_level(logging.INFO)
    voice = voice_for(server)
    voice._api_key = SecretStr("sk-wrong-key-should-not-appear")
    got = await pieces(voice)
    assert len(server.requests) == 0  # refused at the door, before the body was read
    assert voice.fallbacks == 1 and got[-1].ends
    assert got[0].rate == voice.fallback.sample_rate and joined(got).size > 0  # espeak spoke
    assert "Incorrect API key" in caplog.text and "HTTP 401" in caplog.text
    assert "sk-wrong-key" not in caplog.text
    await voice.close()


async def test_a_rate_limit_is_retried_but_a_bad_request_is_not(server):
    server.fail_next = [429, 400]
    voice = voice_for(server, retries=3)
    got = await pieces(voice)
    assert len(server.requests) == 2  # 429 retried, 400 not
    assert voice.fallbacks == 1 and got[0].rate == voice.fallback.sample_rate
    await voice.close()


async def test_slow_first_byte_falls_back_opens_the_circuit_and_comes_back(server):
    server.first_byte_delay_s = 0.6
    voice = voice_for(server, first_byte_timeout=0.2, retries=0, failure_threshold=2)
    for _ in range(2):
        got = await pieces(voice)
        assert got[0].rate == voice.fallback.sample_rate  # the local voice spoke
    assert voice.circuit.state == "open"
    asked = len(server.requests)
    await pieces(voice)  # open: the server is not even asked
    assert len(server.requests) == asked and voice.fallbacks == 3
    server.first_byte_delay_s = 0.0  # the server recovers
    await asyncio.sleep(0.35)  # past open_seconds: one trial
    got = await pieces(voice)
    assert got[0].rate == 24_000 and voice.circuit.state == "closed"
    assert np.array_equal(joined(got), expected(server))
    await voice.close()


async def test_a_server_that_breaks_off_mid_sentence_ends_that_sentence(server):
    server.mode = "break"
    voice = voice_for(server)
    got = await pieces(voice)
    audio = joined(got)
    assert got[-1].ends and 0 < audio.size < expected(server).size
    assert np.array_equal(audio, expected(server)[: audio.size])  # what came, unchanged
    assert voice.broken_off == 1 and voice.fallbacks == 0  # not said twice
    await voice.close()


async def test_a_stall_mid_sentence_is_a_break_not_a_hang(server):
    server.chunk_delay_s = 0.8
    voice = voice_for(server, idle_timeout=0.2)
    got = await asyncio.wait_for(pieces(voice), 3.0)
    assert got[-1].ends and voice.broken_off == 1
    await voice.close()


async def test_a_200_with_a_json_body_is_not_audio(server):
    server.mode = "json200"
    voice = voice_for(server, retries=0)
    got = await pieces(voice)
    assert voice.fallbacks == 1 and got[0].rate == voice.fallback.sample_rate
    await voice.close()


async def test_an_unreachable_server_falls_back():
    fallback = EspeakVoice(EspeakVoiceConfig())
    voice = HttpSpeechVoice("http://127.0.0.1:9/v1", "tts-1", "x", None, fallback,
                            retries=0, first_byte_timeout=0.5)  # fmt: skip
    got = [p async for p in voice.speak_pieces("Hello.", "en")]
    assert voice.fallbacks == 1 and got and got[-1].ends
    whole = [pcm async for pcm in voice.speak("Hello.", "en")]
    assert len(whole) == 1 and whole[0].size > 0
    await voice.close()


def test_pcm_and_wav_decoders_take_any_chunking():
    samples = tone(0.05, 16_000)
    data = samples.tobytes()
    pcm = PcmStream(16_000)
    out = np.concatenate([pcm.feed(data[i : i + 3]) for i in range(0, len(data), 3)])
    assert np.array_equal(out, samples.astype(np.float32) / 32768.0)
    wav = WavStream()
    raw = wav_header(16_000, len(data)) + data + b"trailing junk"  # data size is honoured
    out = np.concatenate([wav.feed(raw[i : i + 5]) for i in range(0, len(raw), 5)])
    assert wav.rate == 16_000 and np.array_equal(out, samples.astype(np.float32) / 32768.0)
    with pytest.raises(AudioFormatError, match="not a WAV"):
        WavStream().feed(b"ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00")  # an mp3 by mistake


def test_the_daemon_speaks_through_the_server_and_keeps_the_key_in_the_environment(
    fast_config, tmp_path, monkeypatch
):
    import json
    import sqlite3

    from streambot.app import App

    monkeypatch.setenv("STREAMBOT_TTS_API_KEY", KEY)

    async def scenario() -> tuple[SpeechServer, App]:
        srv = SpeechServer(key=KEY, seconds=1.0)
        await srv.start()
        replay = tmp_path / "chat.jsonl"
        replay.write_text(json.dumps({"at": 0.2, "user": "ann", "text": "how much is the lamp?"}))
        fast_config.chat.local.replay = str(replay)
        fast_config.voice.backend = "http"
        fast_config.voice.http.base_url = srv.base_url
        fast_config.voice.http.voice = "my-clone"
        app = App(fast_config)
        assert isinstance(app.voice, HttpSpeechVoice)
        await app.run(6.0)
        await srv.stop()
        return srv, app

    srv, app = asyncio.run(scenario())
    assert srv.requests and all(r["voice"] == "my-clone" for r in srv.requests)
    assert app.voice.fallbacks == 0
    db = sqlite3.connect(fast_config.store.path)
    assert db.execute("SELECT outcome FROM turns WHERE kind = 'answer'").fetchone()[0] == "played"
    assert app.voice.session.closed  # closed at shutdown
