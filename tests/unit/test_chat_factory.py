import logging

import pytest

from streambot.chat.factory import build_platform_sources
from streambot.config import Config


def test_platforms_that_cannot_start_are_explained_and_skipped(monkeypatch, caplog):
    for name in ("TWITCH_CLIENT_ID", "TWITCH_CLIENT_SECRET", "TWITCH_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = Config()
    config.chat.twitch.enabled = True
    config.chat.twitch.bot_user_id = config.chat.twitch.broadcaster_user_id = "123"
    config.chat.bilibili.enabled = True  # but no room id
    with caplog.at_level(logging.ERROR):
        sources = build_platform_sources(config)
    assert sources == []
    assert "chat.twitch unavailable" in caplog.text and "TWITCH_CLIENT_ID" in caplog.text
    assert "chat.bilibili.room_id is required" in caplog.text


def test_configured_platforms_are_built(monkeypatch):
    pytest.importorskip("brotli")
    config = Config()
    config.chat.bilibili.enabled = True
    config.chat.bilibili.room_id = 21_452_505
    monkeypatch.setenv("BILIBILI_COOKIE", "SESSDATA=abcdef123456")
    (source,) = build_platform_sources(config)
    assert source.name == "bilibili"
    assert "abcdef123456" not in repr(vars(source))
