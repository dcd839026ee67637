"""The TTS-server voice against a loopback OpenAI-compatible speech server: streamed and
whole responses, PCM and WAV, errors the way OpenAI answers them, slow and broken servers,
the local voice standing in and the server taken back once it answers again."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from pydantic import SecretStr

from streambot.config import EspeakVoiceConfig, HttpVoiceConfig
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
    options = dict(
        first_byte_timeout=1.0,
        idle_timeout=0.5,
        backoff_base=0.01,
        backoff_max=0.02,
        open_seconds=0.3,
    )
    options.update(kwargs)
    fallback = EspeakVoice(EspeakVoiceConfig())
    return HttpSpeechVoice(
        server.base_url, "tts-1", "my-clone", SecretStr(KEY), fallback, **options
    )


async def pieces(voice, text="Hello there.", lang="en"):
    return [p async for p in voice.speak_pieces(text, lang)]


def joined(got) -> np.ndarray:
    return np.concatenate([p.pcm for p in got])


def expected(server: SpeechServer) -> np.ndarray:
    return tone(server.seconds, server.rate).astype(np.float32) / 32768.0


async def test_streamed_pcm_arrives_piece_by_piece_and_decodes_exactly(server):
    server.gate = asyncio.Event()  # the server holds the rest until the client has a piece
    voice = voice_for(server, response_format="pcm")
    stream = voice.speak_pieces("The bottle is $24.50 today.", "en")
    first = await asyncio.wait_for(anext(stream), 2.0)  # arrives while the server waits
    assert first.rate == 24_000 and not first.ends and first.pcm.size > 0
    server.gate.set()
    rest = [p async for p in stream]
    got = [first, *rest]
    assert got[-1].ends and not any(p.ends for p in got[:-1])
    assert np.array_equal(joined(got), expected(server))  # odd chunk edges included
    body = server.requests[0]
    assert body == {
        "model": "tts-1",
        "input": "The bottle is 24 dollars and 50 cents today.",
        "voice": "my-clone",
        "response_format": "pcm",
    }
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
    voice = HttpSpeechVoice(
        "http://127.0.0.1:9/v1", "tts-1", "x", None, fallback, retries=0, first_byte_timeout=0.5
    )
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

    from streambot.app import App
    from streambot.record import Record

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
    with Record.open(fast_config.store.path) as record:
        assert next(t.outcome for t in record.turns() if t.kind == "answer") == "played"
    assert app.voice.session.closed  # closed at shutdown


@pytest.mark.parametrize("gain", [float("nan"), 1000.0], ids=["nan", "far-beyond-full-scale"])
async def test_a_float_wav_of_nan_or_overflow_is_a_failure_and_the_local_voice_speaks(server, gain):
    server.float_wav, server.gain = True, gain  # what an overflowing fp16 vocoder writes
    voice = voice_for(server, response_format="wav")
    got = await pieces(voice)
    assert got[0].rate == voice.fallback.sample_rate and got[-1].ends  # espeak spoke
    assert np.isfinite(joined(got)).all() and joined(got).size > 0
    assert voice.fallbacks == 1 and voice.circuit.failures == 1
    assert len(server.requests) == 1  # the same text would overflow again: not retried
    await voice.close()


async def test_a_float_wav_a_little_over_full_scale_is_clipped_and_played(server):
    server.float_wav, server.gain = True, 3.0  # the tone's peaks at 1.2
    voice = voice_for(server, response_format="wav")
    audio = joined(await pieces(voice))
    assert voice.fallbacks == 0 and audio.size == expected(server).size
    assert audio.max() == 1.0 and audio.min() == -1.0
    await voice.close()


async def test_a_stream_that_never_ends_is_broken_off_at_its_texts_length_and_the_next_is_said(
    server,
):
    server.mode = "endless"  # a fast server that missed its end token: it always has data
    voice = voice_for(server, max_audio_floor=0.5, max_audio_per_char=0.01)
    longest = voice.longest_audio("Hello there.")
    got = await asyncio.wait_for(pieces(voice, "Hello there."), 10.0)
    assert got[-1].ends and {p.rate for p in got} == {24_000}
    assert joined(got).size == round(longest * 24_000)  # the sentence, cut at its bound
    assert voice.broken_off == 1 and voice.circuit.failures == 1 and voice.fallbacks == 0
    server.mode = "stream"  # the next sentence goes to the server and is said whole
    got = await asyncio.wait_for(pieces(voice, "And here is the next sentence."), 10.0)
    assert np.array_equal(joined(got), expected(server)) and voice.broken_off == 1
    await voice.close()


def test_the_audio_a_sentence_may_bring_fits_its_text_and_its_speed():
    voice = HttpSpeechVoice(
        "http://127.0.0.1:9/v1", "tts-1", "x", None, EspeakVoice(EspeakVoiceConfig())
    )
    short, long = voice.longest_audio("Hi."), voice.longest_audio("Hi there. " * 10)
    assert 3.0 < short < long
    assert voice.longest_audio("保温杯。") > voice.longest_audio("cups.")  # a syllable each
    voice.speed = 2.0
    assert voice.longest_audio("Hi.") == short / 2


async def test_a_host_that_holds_each_piece_longer_than_the_idle_timeout_breaks_nothing(server):
    server.seconds = 0.2
    voice = voice_for(server, idle_timeout=0.1)
    got = []
    async for piece in voice.speak_pieces("Hello there.", "en"):
        got.append(piece)
        await asyncio.sleep(0.15)  # backpressure: the face renders
    assert np.array_equal(joined(got), expected(server)) and voice.broken_off == 0
    await voice.close()


async def test_a_trickle_of_bytes_is_no_audio_the_first_audio_timeout_fires_and_espeak_speaks(
    server,
):
    server.chunk_bytes, server.chunk_delay_s = 2, 0.2  # one sample every 0.2 s
    voice = voice_for(server, response_format="pcm", first_byte_timeout=0.5)
    got = await asyncio.wait_for(pieces(voice), 10.0)
    assert got[0].rate == voice.fallback.sample_rate and voice.fallbacks == 1
    assert len(server.requests) == 2  # retried once, then the local voice
    await voice.close()


async def test_a_trickle_after_the_first_audio_is_a_stall_and_ends_the_sentence(server):
    server.first_chunk_ms, server.chunk_bytes, server.chunk_delay_s = 100, 2, 0.1
    voice = voice_for(server, response_format="pcm", idle_timeout=0.5)
    got = await asyncio.wait_for(pieces(voice), 10.0)
    assert got[-1].ends and voice.broken_off == 1 and voice.circuit.failures == 1
    assert joined(got).size < expected(server).size and voice.fallbacks == 0
    await voice.close()


@pytest.mark.parametrize("states_rate", ["header", "content-type"])
async def test_pcm_at_the_rate_the_server_states_is_played_at_that_rate(server, states_rate):
    server.rate, server.states_rate = 22_050, states_rate  # Piper's own rate, stated
    voice = voice_for(server, response_format="pcm")
    got = await pieces(voice)
    assert {p.rate for p in got} == {22_050}
    assert joined(got).size / 22_050 == pytest.approx(server.seconds, abs=1e-4)
    assert np.array_equal(joined(got), expected(server))
    await voice.close()


def test_wav_is_asked_for_by_default_since_it_states_its_own_rate():
    assert HttpVoiceConfig().response_format == "wav"
