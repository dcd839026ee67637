"""The daemon drives OBS (the obs-websocket v5 test double) as the host changes state."""

import asyncio
import json

import pytest

pytest.importorskip("obsws_python")

from streambot.app import App
from tests.obs_double import ObsDouble


def test_scenes_and_caption_follow_the_host(fast_config, tmp_path, monkeypatch):
    monkeypatch.setenv("OBS_WEBSOCKET_PASSWORD", "hunter2-obs")

    async def scenario():
        double = ObsDouble.with_streambot_scenes(password="hunter2-obs")
        await double.start()
        replay = tmp_path / "chat.jsonl"
        replay.write_text(json.dumps({"at": 0.5, "user": "ann", "text": "how much is the lamp?"}))
        fast_config.chat.local.replay = str(replay)
        fast_config.stream.realtime = True  # OBS reacts in wall-clock time
        fast_config.obs.enabled = True
        fast_config.obs.port = double.port
        fast_config.obs.timeout_s = 1.0
        app = App(fast_config)
        run = asyncio.create_task(app.run(6.0))
        seen = []
        for _ in range(60):
            await asyncio.sleep(0.1)
            settings = double.inputs["streambot caption"]["settings"]
            seen.append((double.current_scene, dict(settings)))
        await run
        await double.stop()
        return seen

    seen = asyncio.run(scenario())
    scenes = [scene for scene, _ in seen]
    assert "streambot talking" in scenes and scenes[-1] in ("streambot idle", "streambot brb")
    captions = [settings.get("text") for scene, settings in seen if scene == "streambot talking"]
    assert any(c and "how much is the lamp?" in c for c in captions)
