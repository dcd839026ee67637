"""The operator's panel against a running daemon: who may use it, what it shows, and that
each action takes effect (checked in the store) and is logged with who did it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator
from importlib import resources

import aiohttp
import pytest

from streambot.app import App
from streambot.panel import server
from streambot.panel.server import Panel
from streambot.record import Record

TOKEN = "panel-secret-4f9a"
REBIND = "rebind.attacker.test"
JSON = {"Content-Type": "application/json"}


def catalog_copy(tmp_path) -> str:
    path = tmp_path / "catalog.toml"
    shutil.copy(resources.files("streambot.assets").joinpath("catalog.toml"), path)
    stat = path.stat()  # written a minute ago: a settled file, no editor saving it
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 60 * 10**9))
    return str(path)


def panel_config(config, tmp_path):
    config.stream.realtime = True  # the panel is watched in wall-clock time
    config.panel.enabled, config.panel.port = True, 0
    config.brain.catalog.path = catalog_copy(tmp_path)
    config.triage.idle_pitch_after_s = 3600  # nothing said unless asked
    return config


async def started(app: App, seconds: float | None) -> asyncio.Task:
    run = asyncio.create_task(app.run(seconds))
    for _ in range(200):
        if app.panel is not None and app.panel.port:
            return run
        await asyncio.sleep(0.02)
    raise AssertionError("the panel did not start")


async def post(session, app, action, body, **kwargs):
    url = f"http://127.0.0.1:{app.panel.port}/api/{action}"
    async with session.post(url, json=body, **kwargs) as resp:
        return resp.status, await resp.json()


def test_token_origin_and_content_type_rules(fast_config, tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMBOT_PANEL_TOKEN", TOKEN)
    config = panel_config(fast_config, tmp_path)

    async def scenario():
        app = App(config, panel=Panel)
        run = await started(app, 4.0)
        base = f"http://127.0.0.1:{app.panel.port}"
        # a jar that keeps cookies of an IP address, as browsers do
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(base + "/") as r:
                assert r.status == 401
            async with s.get(base + "/?token=wrong") as r:
                assert r.status == 401
            async with s.get(base + f"/?token={TOKEN}") as r:  # opens the page: sets a cookie
                assert r.status == 200 and "streambot" in await r.text()
            async with s.get(base + "/static/panel.js") as r:  # the cookie now does
                assert r.status == 200
            status, _ = await post(s, app, "skip", {}, headers={"Origin": "https://evil.example"})
            assert status == 403
            async with s.post(
                base + "/api/skip", data="{}", headers={"Content-Type": "text/plain"}
            ) as r:
                assert r.status == 415
            status, answer = await post(s, app, "skip", {})
            assert status == 200, answer
        async with aiohttp.ClientSession() as fresh:  # no cookie, wrong bearer
            status, _ = await post(fresh, app, "skip", {}, headers={"Authorization": "Bearer x"})
            assert status == 401
        await run

    asyncio.run(scenario())


async def until(check, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_actions_take_effect_and_are_logged(fast_config, tmp_path):
    from streambot.events import ChatMessage

    config = panel_config(fast_config, tmp_path)
    config.triage.banned_words = ["buy followers"]

    async def scenario():
        app = App(config, panel=Panel)
        run = await started(app, None)
        async with aiohttp.ClientSession() as s:
            status, answer = await post(s, app, "say", {"text": "Welcome, everyone, to the show!"})
            assert status == 200, answer
            status, answer = await post(s, app, "say", {"text": "buy followers here"})
            assert status == 400 and "banned" in answer["error"]
            await until(lambda: app.host.current is not None)  # the say turn is on air
            status, answer = await post(s, app, "skip", {})
            assert status == 200 and "skipped" in answer["done"]
            status, answer = await post(
                s, app, "product", {"id": "lumadesk", "price": 39.5, "stock": 3}
            )
            assert status == 200, answer
            status, answer = await post(s, app, "product", {"id": "lumadesk", "price": -1})
            assert status == 400 and "price" in answer["error"]
            question = ChatMessage("local", "ann", "how much is the lamp?")
            app.ingest.accept(question)
            await until(lambda: app.host.turns_played >= 2 and app.host.current is None)
            status, _ = await post(s, app, "takeover", {"on": True})
            assert status == 200 and app.host.taken_over
            status, _ = await post(s, app, "pitch", {"product": "thermo"})
            await asyncio.sleep(1.0)
            assert app.host.current is None  # taken over: nothing said, the pitch waits
            status, _ = await post(s, app, "takeover", {"on": False})
            assert not app.host.taken_over
            await until(lambda: app.host.current is not None)  # handed back: the pitch
            async with s.get(f"http://127.0.0.1:{app.panel.port}/events") as r:
                first = await r.content.readuntil(b"\n\n")
                assert first.startswith(b"event: state")
                state = json.loads(first.split(b"data: ", 1)[1])
                lamp = next(p for p in state["products"] if p["id"] == "lumadesk")
                assert (lamp["price"], lamp["stock"]) == (39.5, 3)
                assert state["now"]["kind"] == "pitch"
        app.request_stop()
        await run
        return app

    asyncio.run(scenario())
    edited = (tmp_path / "catalog.toml").read_text(encoding="utf-8")
    assert "price = 39.5" in edited and "stock = 3" in edited  # written back to the file
    assert "#" in edited  # tomlkit kept the file's comments
    with Record.open(config.store.path) as record:
        turns = [(t.kind, t.outcome, t.reply) for t in record.turns()]
    assert turns[0][:2] == ("say", "interrupted")  # skipped on air
    assert turns[1][0] == "answer" and "$39.50" in turns[1][2]  # the edited price, at once
    assert turns[2][0] == "pitch" and "Thermo" in turns[2][2]
    done = actions(config)
    assert [a[1] for a in done] == [
        "say",
        "say",
        "skip",
        "product",
        "product",
        "takeover",
        "pitch",
        "takeover",
    ]
    assert all(who == "operator" for who, _, _ in done)
    assert done[1][2].startswith("refused") and done[4][2].startswith("refused")


def test_queue_first_and_drop(fast_config, tmp_path):
    from streambot.events import ChatMessage

    config = panel_config(fast_config, tmp_path)

    async def scenario():
        app = App(config, panel=Panel)
        run = await started(app, 3.0)
        await post_hold(app)
        msgs = [
            ChatMessage("local", f"viewer{i}", f"question {i} about the lamp?") for i in range(3)
        ]
        for msg in msgs:
            app.ingest.accept(msg)
        async with aiohttp.ClientSession() as s:
            status, _ = await post(s, app, "first", {"id": msgs[2].id})
            assert status == 200
            assert app.inbox.peek()[0] is msgs[2]
            status, _ = await post(s, app, "drop", {"id": msgs[1].id})
            assert status == 200 and msgs[1] not in app.inbox.queued()
            status, _ = await post(s, app, "drop", {"id": 99999})
            assert status == 404
            await post(s, app, "takeover", {"on": False})
        await run
        return app, msgs

    async def post_hold(app):
        app.host.take_over()  # nothing answered while the queue is arranged

    _, msgs = asyncio.run(scenario())
    with Record.open(config.store.path) as record:
        status = record.message(msgs[1].id).status
        reason = record.decisions(msgs[1].id)[-1].reason
    assert status == "dropped" and "panel" in reason


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20"])
def test_a_panel_beyond_this_computer_needs_a_token(fast_config, host):
    from streambot.config import ConfigError

    fast_config.panel.enabled, fast_config.panel.host = True, host
    with pytest.raises(ConfigError, match="STREAMBOT_PANEL_TOKEN"):
        App(fast_config, panel=Panel)


def test_a_panel_beyond_this_computer_refuses_to_start_with_a_short_token(fast_config, monkeypatch):
    from streambot.config import ConfigError

    monkeypatch.setenv("STREAMBOT_PANEL_TOKEN", "pass-1234")
    fast_config.panel.enabled, fast_config.panel.host = True, "0.0.0.0"
    with pytest.raises(ConfigError, match=r"panel\.host.*STREAMBOT_PANEL_TOKEN.*16 characters"):
        App(fast_config, panel=Panel)


async def stopped(app: App, run: asyncio.Task) -> None:
    app.request_stop()
    await run


@contextlib.asynccontextmanager
async def serving(config) -> AsyncIterator[App]:
    """The daemon running with its panel up, stopped on the way out."""
    app = App(config, panel=Panel)
    run = await started(app, None)
    try:
        yield app
    finally:
        await stopped(app, run)


def actions(config) -> list[tuple[str, str, str]]:
    """(who, action, result) of each operator action, in order."""
    with Record.open(config.store.path) as record:
        return [(a.who, a.action, a.result) for a in record.actions()]


def test_a_dns_rebinding_page_is_refused_and_this_computers_names_are_answered(
    fast_config, tmp_path
):
    config = panel_config(fast_config, tmp_path)
    before = (tmp_path / "catalog.toml").read_text(encoding="utf-8")

    async def scenario():
        async with serving(config) as app:
            port = app.panel.port
            base = f"http://127.0.0.1:{port}"
            rebound = {"Host": f"{REBIND}:{port}", "Origin": f"http://{REBIND}:{port}"}
            async with aiohttp.ClientSession() as s:
                for action, body in (
                    ("product", {"id": "thermo", "price": 0.5}),
                    ("say", {"text": "hello from a web page"}),
                ):
                    status, _ = await post(s, app, action, body, headers=rebound)
                    assert status == 421, action
                for path in ("/", "/events", "/preview.jpg", "/static/panel.js"):
                    async with s.get(base + path, headers=rebound) as r:
                        assert r.status == 421, path
                for host in ("127.evil.example", f"127.0.0.1.nip.io:{port}"):
                    async with s.get(base + "/", headers={"Host": host}) as r:
                        assert r.status == 421, host
                for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
                    async with s.get(base + "/", headers={"Host": host}) as r:
                        assert r.status == 200, host

    asyncio.run(scenario())
    assert (tmp_path / "catalog.toml").read_text(encoding="utf-8") == before  # no price 0.5
    assert actions(config) == []  # nothing was done, so nothing is logged as the operator's


def test_the_token_opens_a_session_cookie_and_leaves_the_address_bar(
    fast_config, tmp_path, monkeypatch
):
    monkeypatch.setenv("STREAMBOT_PANEL_TOKEN", TOKEN)
    config = panel_config(fast_config, tmp_path)

    async def scenario():
        async with serving(config) as app:
            base = f"http://127.0.0.1:{app.panel.port}"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                async with s.get(base + f"/?token={TOKEN}", allow_redirects=False) as r:
                    assert r.status == 303 and r.headers["Location"] == "/"
                    assert r.headers["Referrer-Policy"] == "no-referrer"
                    cookie = r.cookies[server.COOKIE]
                    assert cookie.value and TOKEN not in cookie.value
                    assert cookie["httponly"] and cookie["samesite"] == "Strict"
                async with s.get(base + "/") as r:  # the session opens the page
                    assert r.status == 200 and r.headers["Referrer-Policy"] == "no-referrer"
                status, answer = await post(s, app, "skip", {})
                assert status == 200, answer
            async with aiohttp.ClientSession() as fresh:
                token_as_cookie = {"Cookie": f"{server.COOKIE}={TOKEN}"}
                async with fresh.get(base + "/", headers=token_as_cookie) as r:
                    assert r.status == 401 and r.headers["Referrer-Policy"] == "no-referrer"
                async with fresh.get(base + f"/events?token={TOKEN}") as r:
                    assert r.status == 401  # only the page's own address takes the token
                bearer = {"Authorization": f"Bearer {TOKEN}"}
                status, _ = await post(fresh, app, "skip", {}, headers=bearer)
                assert status == 200  # a script's bearer token still works

    asyncio.run(scenario())


def test_a_stock_of_1e309_is_a_clear_400_and_logged_as_refused(fast_config, tmp_path):
    config = panel_config(fast_config, tmp_path)

    async def scenario():
        async with serving(config) as app:
            url = f"http://127.0.0.1:{app.panel.port}/api/product"
            async with aiohttp.ClientSession() as s:
                body = b'{"id": "thermo", "stock": 1e309}'
                async with s.post(url, data=body, headers=JSON) as r:
                    assert r.status == 400
                    assert "stock must be a finite number" in (await r.json())["error"]

    asyncio.run(scenario())
    [(who, action, result)] = actions(config)
    assert (who, action) == ("operator", "product") and result.startswith("refused: ")
    assert "finite" in result


def test_open_event_streams_are_capped(fast_config, tmp_path, monkeypatch):
    monkeypatch.setattr(server, "MAX_STREAMS", 2)
    config = panel_config(fast_config, tmp_path)

    async def scenario():
        async with serving(config) as app:
            url = f"http://127.0.0.1:{app.panel.port}/events"
            async with aiohttp.ClientSession() as s:
                first, second = await s.get(url), await s.get(url)
                for stream in (first, second):
                    assert stream.status == 200
                    await stream.content.readuntil(b"\n\n")  # served: it holds a place
                async with s.get(url) as third:
                    assert third.status == 503 and third.headers["Retry-After"]
                first.close()  # a page closed: its place is free again
                for _ in range(200):
                    again = await s.get(url)
                    if again.status == 200:
                        break
                    again.close()
                    await asyncio.sleep(0.05)
                assert again.status == 200
                again.close()
                second.close()

    asyncio.run(scenario())


def test_refused_panel_requests_are_summed_up_not_logged_one_by_one(fast_config, tmp_path, caplog):
    config = panel_config(fast_config, tmp_path)

    async def scenario():
        async with serving(config) as app:
            base = f"http://127.0.0.1:{app.panel.port}"
            async with aiohttp.ClientSession() as s:
                for _ in range(20):
                    status, _ = await post(
                        s, app, "skip", {}, headers={"Origin": "https://evil.example"}
                    )
                    assert status == 403
                    async with s.get(base + "/", headers={"Host": REBIND}) as r:
                        assert r.status == 421

    with caplog.at_level(logging.INFO, logger="streambot.panel.server"):
        asyncio.run(scenario())
    records = [r for r in caplog.records if r.name == "streambot.panel.server"]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 2  # the first of each 10 s window has a line of its own
    summed = [re.search(r"refused (\d+) more", r.getMessage()) for r in records]
    assert len(warnings) + sum(int(m[1]) for m in summed if m) == 40  # the rest, counted


def test_viewer_text_on_the_panel_is_one_line_of_visible_characters(fast_config, tmp_path):
    from streambot.events import ChatMessage
    from streambot.panel.state import panel_state

    config = panel_config(fast_config, tmp_path)
    app = App(config, panel=Panel)
    app.ingest.accept(ChatMessage("local", "ann", "how much\nis the \u202elamp\u2066?\u2069"))
    [row] = panel_state(app.show)["queue"]
    assert row["text"] == "how much is the lamp?"
    assert all(d["text"] == "how much is the lamp?" for d in panel_state(app.show)["decisions"])
