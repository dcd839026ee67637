"""The OBS double against a real OBS: the same scenarios, the same results.

Each scenario runs against ``tests/obs_double.py`` and, where ``obs`` and ``xvfb-run`` are
installed (always in CI: ``STREAMBOT_REQUIRE_OBS``), against a real OBS 29.0.2 under Xvfb, and
asserts one expected result for both: close codes and reasons, request status codes and
comments, events, and what the product's controller reports. A double kinder than OBS would
fail here on the real side.
"""

from __future__ import annotations

import contextlib
import json
import uuid

import aiohttp
import pytest
from pydantic import SecretStr

from streambot.stage.obs import ObsController
from tests.obs_double import ObsDouble, auth_string
from tests.obs_real import RealObs

PASSWORD = RealObs.PASSWORD  # the double takes the real OBS's password
AUTH_MISSING = (
    "Your payload's data is missing an `authentication` string, however authentication is required."
)


@pytest.fixture(params=["double", pytest.param("real", marks=[pytest.mark.obs, pytest.mark.slow])])
async def obs_port(request):
    """The port of an obs-websocket server with ``PASSWORD``: the double, or a real OBS."""
    if request.param == "real":
        yield request.getfixturevalue("real_obs").port
        return
    # a fresh OBS has one scene, "Scene", on program
    async with ObsDouble(password=PASSWORD, scenes=["Scene"], current_scene="Scene") as double:
        double.scene_items["Scene"] = []
        yield double.port


def unique(name: str) -> str:
    """Names of their own per scenario: the real OBS keeps its state between them."""
    return f"{name} {uuid.uuid4().hex[:8]}"


class Session:
    """A bare obs-websocket client: exactly the frames a scenario sends, and what came back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.hello: dict = {}

    async def __aenter__(self) -> Session:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(
            f"ws://127.0.0.1:{self.port}", protocols=("obswebsocket.json",)
        )
        self.hello = json.loads((await self.ws.receive(timeout=10)).data)["d"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.close()

    def auth(self) -> str:
        challenge = self.hello["authentication"]
        return auth_string(PASSWORD, challenge["salt"], challenge["challenge"])

    async def identify(self, **extra: object) -> dict:
        await self.send(1, {"rpcVersion": 1, "authentication": self.auth(), **extra})
        return await self.next()

    async def send(self, op: int, data: dict) -> None:
        await self.ws.send_str(json.dumps({"op": op, "d": data}))

    async def next(self, timeout: float = 5.0) -> dict:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return {"closed": self.ws.close_code, "reason": msg.extra}
        return json.loads(msg.data)

    async def closed(self) -> tuple[int | None, str]:
        """Read until the server closes; (close code, reason)."""
        while True:
            msg = await self.ws.receive(timeout=10)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code, msg.extra or ""

    async def request(self, request_type: str, data: dict | None = None) -> tuple[dict, list]:
        """The response, and the events received while waiting for it."""
        message: dict = {"requestType": request_type, "requestId": uuid.uuid4().hex}
        if data is not None:
            message["requestData"] = data
        await self.send(6, message)
        events = []
        while True:
            reply = await self.next()
            if reply.get("op") == 7:
                return reply["d"], events
            events.append(reply["d"]["eventType"])

    async def events(self, seconds: float = 1.0) -> list[str]:
        seen = []
        with contextlib.suppress(TimeoutError):
            while True:
                reply = await self.next(seconds)
                if reply.get("op") == 5:
                    seen.append(reply["d"]["eventType"])
        return seen


def status(response: dict) -> tuple[int, str | None]:
    return response["requestStatus"]["code"], response["requestStatus"].get("comment")


async def test_hello_keeps_the_salt_and_changes_the_challenge(obs_port):
    async with Session(obs_port) as first, Session(obs_port) as second:
        a, b = first.hello, second.hello
    assert (a["obsWebSocketVersion"], a["rpcVersion"]) == ("5.1.0", 1)
    assert a["authentication"]["salt"] == b["authentication"]["salt"]
    assert a["authentication"]["challenge"] != b["authentication"]["challenge"]


@pytest.mark.parametrize(
    ("identify", "expected"),
    [
        ({"rpcVersion": 1}, (4009, AUTH_MISSING)),
        ({"rpcVersion": 1, "authentication": "nope"}, (4009, "Authentication failed.")),
        ({"rpcVersion": 2, "authentication": "nope"}, (4009, "Authentication failed.")),
        ({"rpcVersion": 2}, (4009, AUTH_MISSING)),
        (
            {"rpcVersion": 2, "authentication": "OK"},
            (4010, "Your requested RPC version is not supported by this server."),
        ),
        ({"authentication": "OK"}, (4003, "Your payload's data is missing an `rpcVersion`.")),
        (
            {"rpcVersion": "1", "authentication": "OK"},
            (4004, "Your `rpcVersion` is not an unsigned number."),
        ),
        (
            {"rpcVersion": 1, "authentication": "OK", "eventSubscriptions": "x"},
            (4004, "Your `eventSubscriptions` is not an unsigned number."),
        ),
    ],
)
async def test_identify_is_checked_in_obs_order_with_its_close_codes(obs_port, identify, expected):
    # (Not here: an ``authentication`` that is not a string. OBS 29.0.2 crashes on it.)
    async with Session(obs_port) as session:
        if identify.get("authentication") == "OK":
            identify = {**identify, "authentication": session.auth()}
        await session.send(1, identify)
        assert await session.closed() == expected


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            {"op": 6, "d": {"requestType": "GetVersion", "requestId": "x"}},
            (4007, "You attempted to send a non-Identify message while not identified."),
        ),
        (
            {"op": 42, "d": {}},
            (4007, "You attempted to send a non-Identify message while not identified."),
        ),
        ({"op": 1}, (4003, "Your payload is missing data (`d`).")),
    ],
)
async def test_before_identify_only_identify_is_taken(obs_port, frame, expected):
    async with Session(obs_port) as session:
        await session.ws.send_str(json.dumps(frame))
        assert await session.closed() == expected


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("identify again", (4008, "You are already Identified with the obs-websocket server.")),
        ({"op": 42, "d": {}}, (4006, "Unknown OpCode: 42")),
        (
            {"op": 6, "d": {"requestType": "GetVersion"}},
            (4003, "Your payload data is missing a `requestId`."),
        ),
        (
            {"op": 6, "d": {"requestId": "x"}},
            (4003, "Your payload's data is missing an `requestType`."),
        ),
        ({"op": 8, "d": {"requests": []}}, (4003, "Your payload data is missing a `requestId`.")),
        (
            {"op": 8, "d": {"requestId": "b", "executionType": 7, "requests": []}},
            (4005, "Your `executionType` has an invalid value."),
        ),
        (
            b'{"op": 6}',
            (4002, "Your session encoding is set to Json, but a binary message was received."),
        ),
        ("{not json", (4002, "Unable to decode Json")),
    ],
)
async def test_identified_sessions_are_closed_for_protocol_errors(obs_port, frame, expected):
    async with Session(obs_port) as session:
        assert (await session.identify(eventSubscriptions=0))["op"] == 2
        if frame == "identify again":
            await session.send(1, {"rpcVersion": 1, "authentication": session.auth()})
        elif isinstance(frame, bytes):
            await session.ws.send_bytes(frame)
        elif isinstance(frame, str):
            await session.ws.send_str(frame)
        else:
            await session.ws.send_str(json.dumps(frame))
        code, reason = await session.closed()
        assert (code, reason[: len(expected[1])]) == expected


async def test_reidentify_and_request_batches_are_answered(obs_port):
    scene = unique("batch")
    async with Session(obs_port) as session:
        await session.identify(eventSubscriptions=0)
        await session.send(3, {"eventSubscriptions": 0})
        assert await session.next() == {"op": 2, "d": {"negotiatedRpcVersion": 1}}
        await session.send(
            8,
            {
                "requestId": "b1",
                "requests": [
                    {"requestType": "CreateScene", "requestData": {"sceneName": scene}},
                    {"requestType": "Nope", "requestId": "q"},
                    {"requestType": "CreateScene", "requestData": {"sceneName": ""}},
                ],
            },
        )
        reply = await session.next()
    assert reply["op"] == 9 and reply["d"]["requestId"] == "b1"
    results = [(r["requestType"], r.get("requestId"), status(r)) for r in reply["d"]["results"]]
    assert results == [
        ("CreateScene", None, (100, None)),
        ("Nope", "q", (204, "Your request type is not valid.")),
        ("CreateScene", None, (403, "The field value of `sceneName` must not be empty.")),
    ]


async def test_requests_are_validated_and_answered_with_obs_codes(obs_port):
    scene, text, missing = unique("parity scene"), unique("parity text"), unique("nope")
    async with Session(obs_port) as session:
        await session.identify(eventSubscriptions=0)

        async def code(request_type: str, data: dict | None = None) -> tuple[int, str | None]:
            return status((await session.request(request_type, data))[0])

        got = {
            "create": await code("CreateScene", {"sceneName": scene}),
            "create again": await code("CreateScene", {"sceneName": scene}),
            "create empty": await code("CreateScene", {"sceneName": ""}),
            "create number": await code("CreateScene", {"sceneName": 5}),
            "create no field": await code("CreateScene", {}),
            "create no data": await code("CreateScene"),
            "input bad kind": await code(
                "CreateInput", {"sceneName": scene, "inputName": text, "inputKind": "nope_kind"}
            ),
            "input in missing scene": await code(
                "CreateInput",
                {"sceneName": missing, "inputName": text, "inputKind": "text_ft2_source_v2"},
            ),
            "input": await code(
                "CreateInput",
                {
                    "sceneName": scene,
                    "inputName": text,
                    "inputKind": "text_ft2_source_v2",
                    "inputSettings": {"text": "hi"},
                },
            ),
            "input again": await code(
                "CreateInput",
                {"sceneName": scene, "inputName": text, "inputKind": "text_ft2_source_v2"},
            ),
            "input named like a scene": await code(
                "CreateInput",
                {"sceneName": scene, "inputName": scene, "inputKind": "text_ft2_source_v2"},
            ),
            "program an input": await code("SetCurrentProgramScene", {"sceneName": text}),
            "program a missing scene": await code("SetCurrentProgramScene", {"sceneName": missing}),
            "settings of a scene": await code("GetInputSettings", {"inputName": scene}),
            "settings not an object": await code(
                "SetInputSettings", {"inputName": text, "inputSettings": 5}
            ),
            "items of an input": await code("GetSceneItemList", {"sceneName": text}),
            "screenshot gif": await code(
                "GetSourceScreenshot", {"sourceName": scene, "imageFormat": "gif"}
            ),
            "screenshot 1 px": await code(
                "GetSourceScreenshot", {"sourceName": scene, "imageFormat": "png", "imageWidth": 1}
            ),
            "screenshot quality 200": await code(
                "GetSourceScreenshot",
                {"sourceName": scene, "imageFormat": "png", "imageCompressionQuality": 200},
            ),
            "screenshot no format": await code("GetSourceScreenshot", {"sourceName": scene}),
            "unknown request": await code("DoTheThing"),
        }
        settings, _ = await session.request("GetInputSettings", {"inputName": text})
        items, _ = await session.request("GetSceneItemList", {"sceneName": scene})
    not_found = f"No source was found by the name of `{missing}`."
    assert got == {
        "create": (100, None),
        "create again": (601, "A source already exists by that scene name."),
        "create empty": (403, "The field value of `sceneName` must not be empty."),
        "create number": (401, "The field value of `sceneName` must be a string."),
        "create no field": (300, "Your request is missing the `sceneName` field."),
        "create no data": (301, "Your request data is missing or invalid (non-object)"),
        "input bad kind": (
            605,
            "Your specified input kind is not supported by OBS. Check that "
            "your specified kind is properly versioned and that any necessary "
            "plugins are loaded.",
        ),
        "input in missing scene": (600, not_found),
        "input": (100, None),
        "input again": (601, "A source already exists by that input name."),
        "input named like a scene": (601, "A source already exists by that input name."),
        "program an input": (602, "The specified source is not a scene."),
        "program a missing scene": (600, not_found),
        "settings of a scene": (602, "The specified source is not an input."),
        "settings not an object": (401, "The field value of `inputSettings` must be an object."),
        "items of an input": (602, "The specified source is not a scene."),
        "screenshot gif": (
            400,
            "Your specified image format is invalid or not supported by this system.",
        ),
        "screenshot 1 px": (
            402,
            "The field value of `imageWidth` is below the minimum of `8.000000`",
        ),
        "screenshot quality 200": (
            402,
            "The field value of `imageCompressionQuality` is above the maximum of `100.000000`",
        ),
        "screenshot no format": (300, "Your request is missing the `imageFormat` field."),
        "unknown request": (204, "Your request type is not valid."),
    }
    assert settings["responseData"] == {
        "inputKind": "text_ft2_source_v2",
        "inputSettings": {"text": "hi"},
    }
    (item,) = items["responseData"]["sceneItems"]
    assert (item["sourceName"], item["sceneItemId"], item["sourceType"]) == (
        text,
        1,
        "OBS_SOURCE_TYPE_INPUT",
    )


async def test_events_follow_the_subscription(obs_port):
    scene, quiet = unique("events"), unique("quiet")
    async with Session(obs_port) as session:
        await session.identify()  # no eventSubscriptions: all non-high-volume events
        created, during = await session.request("CreateScene", {"sceneName": scene})
        after_create = await session.events()
        switched, during_switch = await session.request(
            "SetCurrentProgramScene", {"sceneName": scene}
        )
        after_switch = await session.events(2.0)
        _, same = await session.request("SetCurrentProgramScene", {"sceneName": scene})
        after_same = await session.events()
    assert status(created) == status(switched) == (100, None)
    # OBS sends events from its own threads: which come before the response varies
    assert sorted(during + after_create) == ["SceneCreated", "SceneListChanged"]
    switch_events = during_switch + after_switch
    assert {"SceneTransitionStarted", "CurrentProgramSceneChanged"} <= set(switch_events)
    assert same == [] and after_same == []  # already on program: nothing happens
    async with Session(obs_port) as session:
        await session.identify(eventSubscriptions=0)
        _, during = await session.request("CreateScene", {"sceneName": quiet})
        assert during == [] and await session.events() == []


async def test_the_controller_sets_up_checks_and_drives_both_the_same(obs_port):
    from streambot.config import ObsConfig
    from streambot.stage.obs_scenes import ObsScenes

    cfg = ObsConfig()
    suffix = uuid.uuid4().hex[:6]
    for key in (
        "scene_idle",
        "scene_talking",
        "scene_showcase",
        "scene_brb",
        "caption_source",
        "product_source",
        "media_source",
    ):
        setattr(cfg, key, f"{getattr(cfg, key)} {suffix}")
    controller = ObsController(
        "127.0.0.1",
        obs_port,
        SecretStr(PASSWORD),
        5.0,
        ObsScenes.from_config(cfg),
        stream_url="udp://127.0.0.1:9999",
    )
    try:
        first = await controller.setup("udp://127.0.0.1:9999")
        again = await controller.setup("udp://127.0.0.1:9999")
        checks = await controller.check()
        await controller.start()
        assert await controller.wait_connected(10)
        assert await controller.set_state("talking", caption="你好 parity")
    finally:
        await controller.stop()
    assert first.ok and again.ok
    assert [line for line in again.lines() if "created" in line] == []
    assert [(name, ok) for name, ok, _ in checks] == [(name, True) for name, _, _ in checks]
    version = dict((name, detail) for name, _, detail in checks)["obs-websocket version"]
    assert version == "obs-websocket 5.1.0, OBS 29.0.2"
    async with Session(obs_port) as session:
        await session.identify(eventSubscriptions=0)
        scene, _ = await session.request("GetCurrentProgramScene")
        caption, _ = await session.request("GetInputSettings", {"inputName": cfg.caption_source})
    assert scene["responseData"] == {"currentProgramSceneName": cfg.scene_talking}
    assert caption["responseData"]["inputSettings"]["text"] == "你好 parity"
