"""The demo, end to end: about 24 s of stream time into an mp4, then check what a viewer gets."""

import logging

import av
import numpy as np
import pytest

from streambot.app import App
from streambot.cli import demo_config
from streambot.config import MouthFaceConfig
from streambot.face.mouth import MouthFace
from streambot.record import Record
from streambot.timing import OUTPUT_RATE, samples_per_frame

pytestmark = pytest.mark.slow
SECONDS = 25
QUESTIONS = {
    "hi everyone!": "Hi alice",
    "How much is the AeroBrew coffee grinder?": "$89.99",
    "保温杯多少钱？": "24.50美元",
    "Is the LumaDesk lamp in stock?": "sold out",
    "耳机几天发货？": "2到3天发货",
    "What's special about the thermo bottle?": "12 hours",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.mp4"
    config = demo_config(out, fast=True)
    config.sinks.file.preset = "ultrafast"
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Collect(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        import asyncio

        report = asyncio.run(App(config).run(SECONDS))
    finally:
        logging.getLogger().removeHandler(handler)
    return out, config, report, records


def decode(path):
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        info = {
            "rate": v.average_rate,
            "frames": v.frames,
            "v_dur": float(v.duration * v.time_base),
            "a_dur": float(a.duration * a.time_base),
        }
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        chunks = [f.to_ndarray()[0] for f in c.decode(audio=0)]
    return info, frames, np.concatenate(chunks)


def test_stream_is_25fps_with_audio_and_video_of_equal_length(demo):
    out, _, report, _ = demo
    info, frames, audio = decode(out)
    assert info["rate"] == 25 and info["frames"] == SECONDS * 25 == len(frames)
    assert abs(info["v_dur"] - SECONDS) < 1e-6
    assert abs(info["a_dur"] - info["v_dur"]) <= 1 / 25
    assert abs(audio.size / OUTPUT_RATE - SECONDS) <= 1 / 25 + 1024 / OUTPUT_RATE  # AAC priming
    assert report.late_frames == 0


def test_mouth_moves_with_loud_speech_and_rests_in_silence(demo):
    out, config, _, _ = demo
    _, frames, audio = decode(out)
    face = MouthFace(MouthFaceConfig(), config.stream.width, config.stream.height, 25)
    region = face.mouth_box.slices()
    rest = face.idle(0)[region].astype(np.float32)
    motion = np.array([np.abs(f[region].astype(np.float32) - rest).mean() for f in frames])
    n = len(frames)
    # AAC adds 1024 samples of priming at the start; align audio with the frames' pts.
    spf = samples_per_frame(25)
    audio = audio[1024 : 1024 + n * spf] if audio.size >= 1024 + n * spf else audio
    rms = np.sqrt(np.mean(audio[: n * spf].reshape(n, spf) ** 2, axis=1))
    speaking = rms > 0.05
    # "Silence" is a settled pause: this frame and the 6 before it are quiet (the mouth takes a
    # few frames to close after the last syllable, as lips do).
    quiet = rms < 1e-3
    silent = np.array([quiet[max(0, i - 6) : i + 1].all() for i in range(n)])
    assert speaking.sum() > 100 and silent.sum() > 20
    assert np.corrcoef(motion, rms)[0, 1] > 0.5
    # In silence the mouth is at rest: every silent frame differs from the drawn rest pose by
    # the same small amount (H.264 + yuv420 rounding), far less than an open mouth does.
    assert np.median(motion[speaking]) > 4 * np.median(motion[silent])
    assert np.percentile(motion[silent], 95) - np.percentile(motion[silent], 5) < 1.0


def test_every_scripted_question_has_a_stored_reply(demo):
    _, config, _, _ = demo
    with Record.open(config.store.path) as record:
        messages, turns, sentences = record.messages(), record.turns(), record.sentences()
    for question, expected in QUESTIONS.items():
        asked = {m.id: m for m in messages if m.text == question}
        answers = [t for t in turns if t.message_id in asked]
        assert answers, f"no turn for {question!r}"
        turn = answers[0]
        assert (asked[turn.message_id].status, turn.outcome) == ("answered", "played"), question
        assert expected in (turn.reply or ""), (question, turn.reply)
        assert any(s.turn_id in {t.id for t in answers} for s in sentences)


def test_abuse_was_handled_as_designed_with_stored_reasons(demo):
    _, config, _, records = demo
    with Record.open(config.store.path) as record:
        messages = record.messages()

    def reasons(user: str, source: str | None = None) -> list[str | None]:
        return [m.reason for m in messages if m.user == user and source in (None, m.source)]

    flood = reasons("floodbot")
    assert len(flood) == 16 and all(r and not r.startswith("question") for r in flood)
    assert sum(r.startswith("duplicate") for r in flood) == 7
    assert sum(r.startswith("rate limited") for r in flood) >= 5
    assert reasons("eve") == ["prompt injection attempt"]
    [big] = [m for m in messages if m.user == "bigmouth"]
    assert (big.reason or "").startswith("too long: 100000")
    assert big.text_length == 100_000 and len(big.text) <= 2000
    assert reasons("?", source="replay") == ["malformed: replay line 22: not UTF-8 JSON"]
    assert (reasons("glitch")[0] or "").startswith("binary junk")
    assert [m for m in messages if m.status not in ("answered", "rejected")] == []
    assert not [r for r in records if r.levelno >= logging.ERROR], "something crashed"
