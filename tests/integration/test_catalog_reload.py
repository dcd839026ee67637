"""A seller edits the catalog mid-stream: the next answers use the new figures and names."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from importlib import resources

import pytest

import streambot.app
from streambot.app import App
from streambot.record import Record


# 2 s: the app's background read; an hour: none in the run, so only the reads of triage (each
# message) and the brain (each turn) can pick the edit up.
@pytest.mark.parametrize("poll_s", [2.0, 3600.0], ids=["poll", "per-turn-check"])
def test_an_edited_catalog_is_used_by_the_brain_and_triage_without_a_restart(
    fast_config, tmp_path, caplog, monkeypatch, poll_s
):
    monkeypatch.setattr(streambot.app, "CATALOG_POLL_S", poll_s)
    caplog.set_level(logging.INFO, logger="streambot.catalog")
    bundled = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    assert "price = 24.50" in bundled
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(bundled)
    replay = tmp_path / "chat.jsonl"
    rows = [
        {"at": 1.0, "user": "ann", "text": "how much is the thermo bottle?"},
        {"at": 14.0, "user": "bob", "text": "how much is the thermo bottle?"},
        {"at": 22.0, "user": "cat", "text": "hydroflask"},  # only a product name: the new alias
    ]
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    fast_config.brain.catalog.path = str(catalog)
    fast_config.chat.local.replay = str(replay)
    fast_config.triage.idle_pitch_after_s = 3600

    async def scenario():
        app = App(fast_config)
        run = asyncio.create_task(app.run(30.0))
        # Wake on the stream clock itself: a wall-clock poll can wake after the virtual clock
        # has already run past bob's question on a busy machine.
        await app.clock.sleep_until(6.0)  # ann has had her answer
        edited = bundled.replace("price = 24.50", "price = 19.99").replace(
            'aliases = ["thermo bottle",', 'aliases = ["hydroflask", "thermo bottle",'
        )
        catalog.write_text(edited)
        stat = catalog.stat()
        os.utime(catalog, (stat.st_atime, stat.st_mtime + 5))  # a visible mtime change
        await run

    asyncio.run(scenario())
    with Record.open(fast_config.store.path) as record:
        replies = {
            t.user: t.reply or "" for t in record.turns() if t.outcome == "played" and t.user
        }
    assert "24.50" in replies["ann"]
    assert "19.99" in replies["bob"] and "24.50" not in replies["bob"]
    assert "cat" in replies, "a question naming the product by its new alias was not answered"
    assert "catalog reloaded" in caplog.text
