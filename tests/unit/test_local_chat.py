import asyncio
import json

import aiohttp
from pydantic import SecretStr

from streambot.chat.local import HttpChatSource, ReplayChatSource, parse_stdin_line
from streambot.clock import VirtualClock
from streambot.events import Decision, Kind


async def start(source: HttpChatSource):
    """Run the source with a pump that "stores" each message (gives it an id) and settles
    its receipt, as the app's pump does after the store write."""
    received = []

    async def pump():
        async for msg in source.messages():
            received.append(msg)
            msg.id = len(received)
            if msg.receipt is not None:
                msg.receipt.set_result(Decision(not msg.malformed, msg.malformed or "ok"))

    task = asyncio.create_task(pump())
    await asyncio.wait_for(source.ready.wait(), 5)
    return task, received


JSON = {"Content-Type": "application/json"}


async def test_http_post_chat_and_bad_bodies():
    source = HttpChatSource("127.0.0.1", 0, max_body_bytes=4096)
    task, received = await start(source)
    url = f"http://127.0.0.1:{source.port}/chat"
    async with aiohttp.ClientSession() as http:
        ok = await http.post(url, json={"user": "ann", "text": "how much?", "kind": "superchat"})
        assert ok.status == 202
        bad = await http.post(url, data=b"\xff\xfe not json", headers=JSON)
        assert bad.status == 400 and "not UTF-8 JSON" in (await bad.json())["error"]
        no_user = await http.post(url, json={"text": "hi"})
        assert no_user.status == 400 and "'user'" in (await no_user.json())["error"]
        huge = await http.post(url, data=b"x" * 10_000, headers=JSON)
        assert huge.status == 413
    await asyncio.sleep(0.05)
    task.cancel()
    assert received[0].user == "ann" and received[0].kind == Kind.SUPERCHAT
    assert received[1].malformed and received[2].malformed  # stored with a reason, not lost
    assert len(received) == 3


async def test_http_token_is_required_when_configured():
    source = HttpChatSource("127.0.0.1", 0, token=SecretStr("tok-123456"))
    task, received = await start(source)
    url = f"http://127.0.0.1:{source.port}/chat"
    body = {"user": "ann", "text": "hi"}
    async with aiohttp.ClientSession() as http:
        assert (await http.post(url, json=body)).status == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await http.post(url, json=body, headers=wrong)).status == 401
        right = {"Authorization": "Bearer tok-123456"}
        non_ascii = {"Authorization": "Bearer tök-123456".encode().decode("latin-1")}
        assert (await http.post(url, json=body, headers=non_ascii)).status == 401
        assert (await http.post(url, json=body, headers=right)).status == 202
    await asyncio.sleep(0.05)
    task.cancel()
    assert len(received) == 1


async def test_replay_follows_offsets_on_the_pipeline_clock(tmp_path):
    path = tmp_path / "chat.jsonl"
    lines = [
        json.dumps({"at": 0.0, "user": "a", "text": "one"}).encode(),
        b"\x00\xff\xfe garbage",
        json.dumps({"at": 2.5, "user": "b", "text": "two"}).encode(),
    ]
    path.write_bytes(b"\n".join(lines))
    clock = VirtualClock()
    got = []

    async def pump():
        async for msg in ReplayChatSource(path, clock).messages():
            got.append((clock.now(), msg))

    task = asyncio.create_task(pump())
    await asyncio.sleep(0)  # the replay starts at stream time 0
    for step in range(1, 40):
        await clock.advance_to(step / 10)
    await task
    assert [m.text for _, m in got if not m.malformed] == ["one", "two"]
    assert got[1][1].malformed == "replay line 2: not UTF-8 JSON"
    assert abs(got[2][0] - 2.5) < 1e-9


def test_stdin_lines():
    assert (parse_stdin_line("ann: how much?").user, parse_stdin_line("ann: how much?").text) == (
        "ann",
        "how much?",
    )
    assert parse_stdin_line("just talking here").user == "operator"
    assert parse_stdin_line('{"user": "x", "text": "y"}').text == "y"
    assert parse_stdin_line("{broken").malformed


async def test_chat_refuses_a_dns_rebinding_page_and_answers_this_computers_names():
    source = HttpChatSource("127.0.0.1", 0)
    task, received = await start(source)
    url = f"http://127.0.0.1:{source.port}/chat"
    rebound = {
        "Host": f"rebind.attacker.test:{source.port}",
        "Origin": f"http://rebind.attacker.test:{source.port}",
    }
    async with aiohttp.ClientSession() as http:
        refused = await http.post(url, json={"user": "page", "text": "hi"}, headers=rebound)
        assert refused.status == 421
        for host in ("127.evil.example", f"127.0.0.1.nip.io:{source.port}"):
            odd = await http.post(url, json={"user": "page", "text": "hi"}, headers={"Host": host})
            assert odd.status == 421, host
        for name in ("127.0.0.1", "localhost", "[::1]"):
            host = f"{name}:{source.port}"
            ok = await http.post(url, json={"user": "ann", "text": "hi"}, headers={"Host": host})
            assert ok.status == 202, host
    await asyncio.sleep(0.05)
    task.cancel()
    assert [m.user for m in received] == ["ann", "ann", "ann"]  # the page's never reached it
