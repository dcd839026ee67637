"""The daemon's POST /chat against a hostile viewer and hostile web pages: real HTTP to the
running app on 127.0.0.1, and the store read afterwards."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from streambot.app import App
from streambot.record import Record, StoredMessage, StoredTurn

JSON = {"Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def running(config):
    config.chat.local.http = True
    config.chat.local.port = 0
    app = App(config)
    task = asyncio.create_task(app.run())
    assert app.http_source is not None
    await asyncio.wait_for(app.http_source.ready.wait(), 10)
    try:
        async with aiohttp.ClientSession() as http:
            yield app, http, f"http://127.0.0.1:{app.http_source.port}/chat"
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


def messages(config) -> list[StoredMessage]:
    with Record.open(config.store.path) as record:
        return record.messages()


def turns(config, kind: str) -> list[StoredTurn]:
    with Record.open(config.store.path) as record:
        return [t for t in record.turns() if t.kind == kind]


async def test_a_lone_surrogate_is_stored_cleaned_and_chat_stays_up(fast_config):
    async with running(fast_config) as (_app, http, url):
        for _ in range(3):  # repeating it used to keep chat down for 1, 2, 4 ... seconds
            body = b'{"user": "eve\\udc00", "text": "how much is the lamp \\ud800?"}'
            reply = await http.post(url, data=body, headers=JSON)
            assert reply.status == 202
            stored_id = (await reply.json())["id"]
            [stored] = [m for m in messages(fast_config) if m.id == stored_id]
            assert (stored.user, stored.text) == ("eve\ufffd", "how much is the lamp \ufffd?")
        ok = await http.post(url, json={"user": "ann", "text": "hello"})
        assert ok.status == 202


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"user": "a", "text": "hi", "kind": ["chat"]}', "unknown kind"),
        (b'{"user": "a", "text": "hi", "kind": {"x": 1}}', "unknown kind"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"user": "a", "text": "hi", "n": ' + b"9" * 10_000 + b"}", "not UTF-8 JSON"),
    ],
)
async def test_bodies_that_gave_a_bare_500_get_a_400_and_are_stored_rejected(
    fast_config, body, reason
):
    fast_config.chat.local.max_body_bytes = 1024 * 1024
    async with running(fast_config) as (_app, http, url):
        reply = await http.post(url, data=body, headers=JSON)
        assert reply.status == 400
        answer = await reply.json()
        assert reason in answer["error"]
        [stored] = [m for m in messages(fast_config) if m.id == answer["id"]]
        assert stored.status == "rejected" and reason in (stored.reason or "")


async def test_operator_commands_need_the_token_and_web_pages_are_refused(fast_config):
    async with running(fast_config) as (_app, http, url):
        say = {"user": "op", "text": "!say the lamp is free today", "kind": "command"}
        refused = await http.post(url, json=say)
        assert refused.status == 403 and "STREAMBOT_CHAT_TOKEN" in (await refused.json())["error"]
        # a page the streamer opens: a "simple" cross-origin POST needs no CORS preflight
        page = await http.post(
            url,
            data=b'{"user": "x", "text": "hi"}',
            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"},
        )
        assert page.status == 403
        plain = await http.post(
            url, data=b'{"user": "x", "text": "hi"}', headers={"Content-Type": "text/plain"}
        )
        assert plain.status == 415
        local_page = await http.post(
            url, json={"user": "ann", "text": "hello"}, headers={"Origin": "http://localhost:3000"}
        )
        assert local_page.status == 202
        await asyncio.sleep(0.5)
    assert turns(fast_config, "say") == []  # the host never said it
    assert [m.status for m in messages(fast_config) if m.user == "op"] == ["rejected"]


async def test_with_the_token_commands_work_but_say_keeps_the_banned_word_rule(
    fast_config, monkeypatch
):
    monkeypatch.setenv("STREAMBOT_CHAT_TOKEN", "tok-abcdef-123")
    auth = {"Authorization": "Bearer tok-abcdef-123"}
    async with running(fast_config) as (_app, http, url):
        ok = {"user": "op", "text": "!say welcome everyone", "kind": "command"}
        assert (await http.post(url, json=ok, headers=auth)).status == 202
        bad = {"user": "op", "text": "!say 加 微 信 for deals", "kind": "command"}
        assert (await http.post(url, json=bad, headers=auth)).status == 202
        for _ in range(100):
            if any(t.outcome for t in turns(fast_config, "say")):
                break
            await asyncio.sleep(0.1)
    assert [t.reply for t in turns(fast_config, "say")] == ["welcome everyone"]
    assert [m.reason for m in messages(fast_config) if m.text.endswith("for deals")] == [
        "operator command: banned word"
    ]


async def test_a_token_pasted_into_chat_is_masked_in_the_store(fast_config, monkeypatch):
    monkeypatch.setenv("STREAMBOT_CHAT_TOKEN", "tok-secret-98765")
    auth = {"Authorization": "Bearer tok-secret-98765"}
    async with running(fast_config) as (_app, http, url):
        body = {"user": "op", "text": "oops my token is tok-secret-98765"}
        assert (await http.post(url, json=body, headers=auth)).status == 202
    assert [m.text for m in messages(fast_config)] == ["oops my token is ***"]


async def test_a_stalled_connection_is_closed(fast_config):
    fast_config.chat.local.idle_timeout_s = 0.5
    async with running(fast_config) as (app, _http, _url):
        reader, writer = await asyncio.open_connection("127.0.0.1", app.http_source.port)
        writer.write(b"POST /chat HTTP/1.1\r\nHost: x\r\n")  # and then nothing more
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        writer.close()


async def test_connections_over_the_cap_get_503(fast_config):
    fast_config.chat.local.max_connections = 2
    async with running(fast_config) as (app, _http, _url):
        idle = [await asyncio.open_connection("127.0.0.1", app.http_source.port) for _ in range(2)]
        await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", app.http_source.port)
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 503")
        for _, w in [*idle, (reader, writer)]:
            w.close()
