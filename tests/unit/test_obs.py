"""ObsController (obsws-python) against a loopback obs-websocket v5 double (the real protocol)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from pydantic import SecretStr

pytest.importorskip("obsws_python")

from streambot.stage.obs import ObsController, ObsUnavailable
from streambot.stage.obs_scenes import (
    IMAGE_KIND,
    MEDIA_KIND,
    TEXT_KIND_LINUX,
    TEXT_KIND_WINDOWS,
    ObsScenes,
    media_settings,
)
from tests.obs_double import ObsDouble, auth_string

PASSWORD = "hunter2-obs-PASSWORD-zz9"
SCENES = ObsScenes.from_config()
URL = "srt://127.0.0.1:9000?mode=listener"


def controller(double: ObsDouble, password: str | None = PASSWORD, **kwargs) -> ObsController:
    kwargs.setdefault("timeout", 1.0)
    return ObsController(
        port=double.port,
        password=SecretStr(password) if password is not None else None,
        backoff_initial=0.05,
        backoff_max=0.2,
        health_interval=0.2,
        **kwargs,
    )


async def eventually(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def double():
    async with ObsDouble(password=PASSWORD) as d:
        yield d


def test_auth_string_matches_the_protocol_example() -> None:
    # obs-websocket protocol.md: base64(sha256(base64(sha256(password + salt)) + challenge))
    import base64
    import hashlib

    secret = base64.b64encode(hashlib.sha256(b"pw" + b"salt").digest())
    expected = base64.b64encode(hashlib.sha256(secret + b"chal").digest()).decode()
    assert auth_string("pw", "salt", "chal") == expected


async def test_auth_ok_and_password_never_logged(double, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    obs = controller(double)
    await obs.start()
    try:
        assert await obs.wait_connected(5)
        assert obs.connected and double.identified == 1
        assert obs.platform == "debian"
        assert await obs.set_state("talking", caption="hi")
    finally:
        await obs.stop()
    assert not obs.connected
    assert "connected to OBS" in caplog.text
    assert PASSWORD not in caplog.text
    assert all(PASSWORD not in repr(r.args) for r in caplog.records)
    # obsws-python prints the password in its INFO "Connecting with parameters" line
    assert logging.getLogger("obsws_python").getEffectiveLevel() > logging.WARNING


async def test_wrong_password_logs_reason_and_keeps_retrying(double, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    obs = controller(double, password="not-the-PASSWORD-123")
    await obs.start()
    try:
        await eventually(lambda: double.auth_failures >= 3)
        assert not obs.connected
        assert "authentication failed" in obs.last_error
        # state changes while unauthenticated never raise
        assert await obs.set_state("brb", caption="back soon") is False
    finally:
        await obs.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "authentication failed: OBS rejected the password" in r.getMessage() for r in warnings
    )
    assert len(warnings) == 1  # repeats of the same reason go to DEBUG
    assert "not-the-PASSWORD-123" not in caplog.text
    assert all("not-the-PASSWORD-123" not in repr(r.args) for r in caplog.records)


async def test_missing_password_is_explained(double) -> None:
    obs = controller(double, password=None)
    report = await obs.setup(URL)
    assert not report.ok
    assert "requires a password" in report.errors[0]
    checks = await obs.check()
    assert checks == [("obs connection", False, checks[0][2])]


async def test_setup_creates_everything_once(double) -> None:
    obs = controller(double)
    try:
        report = await obs.setup(URL, product_image="/tmp/p.png")
        assert report.ok, report.errors
        assert double.scenes == list(SCENES.all_scenes)
        assert double.inputs[SCENES.caption]["kind"] == TEXT_KIND_LINUX
        assert double.inputs[SCENES.product] == {
            "kind": IMAGE_KIND,
            "settings": {"file": "/tmp/p.png"},
        }
        assert double.inputs[SCENES.stream] == {"kind": MEDIA_KIND, "settings": media_settings(URL)}
        assert double.inputs[SCENES.stream]["settings"]["input_format"] == "mpegts"
        assert double.scene_items == {
            SCENES.idle: [SCENES.stream],
            SCENES.talking: [SCENES.stream, SCENES.caption],
            SCENES.showcase: [SCENES.stream, SCENES.product, SCENES.caption],
            SCENES.brb: [SCENES.caption],
        }
        created = len(double.requests_of("CreateScene")) + len(double.requests_of("CreateInput"))
        assert created == 7

        again = await obs.setup("srt://127.0.0.1:9001")
        assert again.ok and not again.created
        assert len(double.requests_of("CreateScene")) == 4
        assert len(double.requests_of("CreateInput")) == 3
        assert len(double.requests_of("CreateSceneItem")) == 4
        assert double.inputs[SCENES.stream]["settings"]["input"] == "srt://127.0.0.1:9001"
        assert all(ok for _, ok, _ in await obs.check())
    finally:
        await obs.stop()


async def test_setup_on_windows_uses_gdiplus_text() -> None:
    async with ObsDouble(platform="windows") as d:
        obs = controller(d, password=None)
        try:
            assert (await obs.setup(URL)).ok
            assert d.inputs[SCENES.caption]["kind"] == TEXT_KIND_WINDOWS
        finally:
            await obs.stop()


async def test_set_state_switches_scene_caption_and_product(double) -> None:
    obs = controller(double)
    await obs.start()
    try:
        assert await obs.wait_connected(5)
        assert (await obs.setup(URL)).ok
        assert await obs.set_state("talking", caption="你好，欢迎来到直播间")
        assert double.current_scene == SCENES.talking
        assert double.inputs[SCENES.caption]["settings"]["text"] == "你好，欢迎来到直播间"
        assert await obs.set_state("showcase", product_image="/tmp/mug.png")
        assert double.current_scene == SCENES.showcase
        assert double.inputs[SCENES.product]["settings"]["file"] == "/tmp/mug.png"
        assert double.inputs[SCENES.caption]["settings"]["text"] == "你好，欢迎来到直播间"
        n = len(double.requests_of("SetInputSettings"))
        assert await obs.set_state("idle")  # unchanged caption / product are not re-sent
        assert double.current_scene == SCENES.idle
        assert len(double.requests_of("SetInputSettings")) == n
        png = await obs.screenshot()
        assert png is not None and png.startswith(b"\x89PNG")
        assert double.requests_of("GetSourceScreenshot")[-1]["sourceName"] == SCENES.idle
        assert await obs.screenshot("no such source") is None
        with pytest.raises(ValueError):
            await obs.set_state("dancing")  # type: ignore[arg-type]
    finally:
        await obs.stop()


async def test_stalled_request_times_out_without_blocking_the_loop(double) -> None:
    obs = controller(double, timeout=0.5)
    await obs.start()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    try:
        assert await obs.wait_connected(5)
        assert (await obs.setup(URL)).ok
        double.stall = True
        started = time.monotonic()
        assert await obs.set_state("talking", caption="stalled") is False
        elapsed = time.monotonic() - started
        assert 0.4 < elapsed < 2.0
        assert ticks >= 20  # the loop kept running while the request waited
        assert obs.desired == {"caption": "stalled", "scene": SCENES.talking}
        double.stall = False
        # the stalled connection was dropped (a late answer would desync it); reconnected,
        # and the remembered state applied
        await eventually(lambda: double.current_scene == SCENES.talking)
        assert double.inputs[SCENES.caption]["settings"]["text"] == "stalled"
        assert double.connections >= 2
    finally:
        tick_task.cancel()
        await obs.stop()


async def test_obs_down_remembers_state_and_reapplies_after_restart(double, caplog) -> None:
    caplog.set_level(logging.INFO)
    obs = controller(double)
    await obs.start()
    try:
        assert await obs.wait_connected(5)
        assert (await obs.setup(URL)).ok
        assert await obs.set_state("idle", caption="")
        await double.stop()
        # while down: no exception, the state is remembered
        assert (
            await obs.set_state("showcase", caption="back in a sec", product_image="/tmp/a.png")
            is False
        )
        assert await obs.set_state("brb") is False
        await eventually(lambda: not obs.connected)
        assert obs.desired == {
            "product": "/tmp/a.png",
            "caption": "back in a sec",
            "scene": SCENES.brb,
        }
        await asyncio.sleep(0.3)  # a few failed reconnects
        # OBS restarted (same port, state kept by the double like a saved scene collection)
        double.current_scene = SCENES.idle
        started = time.monotonic()
        await double.start()
        await eventually(lambda: double.current_scene == SCENES.brb, timeout=5)
        assert time.monotonic() - started < 3
        assert obs.connected and obs.reconnects >= 1
        assert double.inputs[SCENES.caption]["settings"]["text"] == "back in a sec"
        assert double.inputs[SCENES.product]["settings"]["file"] == "/tmp/a.png"
        assert "OBS connection lost" in caplog.text or "unavailable" in caplog.text
    finally:
        await obs.stop()


async def test_check_reports_missing_items(double) -> None:
    obs = controller(double)
    try:
        double.scenes.append(SCENES.idle)
        double.scene_items[SCENES.idle] = []
        double.inputs[SCENES.caption] = {"kind": "text_gdiplus_v2", "settings": {}}
        results = {name: (ok, detail) for name, ok, detail in await obs.check()}
        assert results["obs connection"][0]
        assert results["obs-websocket version"] == (True, "obs-websocket 5.1.0, OBS 29.0.2")
        assert results[f"scene {SCENES.idle!r}"][0]
        for name in (SCENES.talking, SCENES.showcase, SCENES.brb):
            assert results[f"scene {name!r}"] == (False, "missing (run obs setup)")
        assert results[f"source {SCENES.stream!r}"] == (False, "missing (run obs setup)")
        assert results[f"source {SCENES.product!r}"][0] is False
        caption_ok, caption_detail = results[f"source {SCENES.caption!r}"]
        assert not caption_ok and "expected text_ft2_source_v2" in caption_detail
        report = await obs.setup(URL)
        assert any("exists with kind text_gdiplus_v2" in e for e in report.errors)
    finally:
        await obs.stop()


async def test_old_websocket_version_and_down_obs_in_check() -> None:
    async with ObsDouble(websocket_version="4.9.1") as d:
        obs = controller(d, password=None)
        try:
            results = {name: (ok, detail) for name, ok, detail in await obs.check()}
            ok, detail = results["obs-websocket version"]
            assert not ok and "need obs-websocket 5" in detail
        finally:
            await obs.stop()
        port = d.port
    obs = ObsController(port=port, timeout=0.5)
    [(name, ok, detail)] = await obs.check()
    assert name == "obs connection" and not ok and "connection refused" in detail


async def test_media_source_is_pointed_back_at_the_stream_after_a_crash(double) -> None:
    """An OBS that crashed can come back with an older scene collection whose Media Source
    plays another URL; the controller points it at the stream again, and leaves a correct
    one alone (changing its settings would restart playback)."""
    obs = controller(double, stream_url=URL)
    await obs.start()
    try:
        assert await obs.wait_connected(5)
        assert (await obs.setup(URL)).ok
        await obs.set_state("idle")
        sets_after_setup = len(double.requests_of("SetInputSettings"))
        await double.stop()
        await eventually(lambda: not obs.connected)
        # The crashed OBS lost the last save: its Media Source plays last week's URL.
        double.inputs[SCENES.stream]["settings"]["input"] = "udp://127.0.0.1:1234"
        await double.start()
        await eventually(lambda: double.inputs[SCENES.stream]["settings"]["input"] == URL)
        assert len(double.requests_of("SetInputSettings")) == sets_after_setup + 1
        results = {name: (ok, detail) for name, ok, detail in await obs.check()}
        assert results[f"source {SCENES.stream!r} input"] == (True, URL)

        await double.stop()
        await eventually(lambda: not obs.connected)
        await double.start()  # this time it kept the right URL
        await eventually(lambda: obs.connected)
        await asyncio.sleep(0.3)
        assert len(double.requests_of("SetInputSettings")) == sets_after_setup + 1
    finally:
        await obs.stop()


async def test_check_names_a_media_source_playing_the_wrong_url(double) -> None:
    obs = controller(double, stream_url=URL)
    try:
        assert (await obs.setup("udp://127.0.0.1:1234")).ok
        results = {name: (ok, detail) for name, ok, detail in await obs.check()}
        ok, detail = results[f"source {SCENES.stream!r} input"]
        assert not ok and detail == f"plays udp://127.0.0.1:1234, expected {URL} (run obs setup)"
    finally:
        await obs.stop()


async def test_director_delays_changes_by_the_pictures_lag_and_keeps_their_order(double) -> None:
    from streambot.catalog import Catalog
    from streambot.stage.director import StageDirector
    from streambot.turn import Turn

    obs = controller(double)
    assert (await obs.setup(URL)).ok
    director = StageDirector(obs, Catalog.load(), picture_delay_s=0.4)
    await director.start()
    try:
        await eventually(lambda: double.current_scene == SCENES.brb)  # at once: no picture yet
        director.on_air()
        turn = Turn(id=1, kind="pitch", message=None, topic="thermo")
        started = time.monotonic()
        director.turn_started(turn)
        await asyncio.sleep(0.25)
        assert double.current_scene == SCENES.brb  # still waiting for the picture
        await eventually(lambda: double.current_scene == SCENES.talking, timeout=3)
        director.turn_ended(turn)
        assert time.monotonic() - started >= 0.4
        await eventually(lambda: double.current_scene == SCENES.idle, timeout=3)
        switched = [d["sceneName"] for d in double.requests_of("SetCurrentProgramScene")]
        assert switched[-3:] == [SCENES.idle, SCENES.talking, SCENES.idle]
        captions = [
            d["inputSettings"]["text"]
            for d in double.requests_of("SetInputSettings")
            if d["inputName"] == SCENES.caption
        ]
        assert "SnowPeak Thermo Bottle" in captions
    finally:
        await director.stop()
    assert double.current_scene == SCENES.brb


def test_picture_delay_is_the_media_sources_lag_only_when_it_plays_the_stream() -> None:
    from streambot.config import Config
    from streambot.stage.director import picture_delay

    config = Config()
    assert picture_delay(config) == 0.0  # no stream sink: a virtual camera shows frames at once
    config.sinks.stream.enabled = True
    assert picture_delay(config) == pytest.approx(20 / 25 + 0.2)
    config.stream.fps = 50
    assert picture_delay(config) == pytest.approx(20 / 50 + 0.2)
    config.obs.stream_url = "srt://relay:9000"  # OBS plays something else: lag unknown
    assert picture_delay(config) == 0.0
    config.obs.picture_delay_s = 0.35
    assert picture_delay(config) == 0.35


async def test_stop_ends_the_loop_even_when_a_cancel_is_lost(double) -> None:
    """Python 3.11's wait_for can swallow a cancel that lands as its inner call finishes (a
    reconnect attempt failing at that instant); stop() must still end the loop, not hang."""
    obs = controller(double)
    attempts = swallowed = 0

    async def connect_that_loses_one_cancel() -> None:
        nonlocal attempts, swallowed
        attempts += 1
        try:
            await asyncio.sleep(30)  # a connect attempt in progress when stop() comes
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed += 1  # what 3.11's wait_for does: the failure surfaces, not the cancel
            raise ObsUnavailable("authentication failed") from None

    obs._connect = connect_that_loses_one_cancel
    await obs.start()
    await eventually(lambda: attempts == 1)
    loop_task = obs._task
    stopping = asyncio.create_task(obs.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)  # not wait_for: it has the same flaw
    if not done:  # before the fix: stop() waited on a loop that was never going to end
        loop_task.cancel()
        await asyncio.wait({stopping}, timeout=5)
    assert done and swallowed == 1 and loop_task.done()
