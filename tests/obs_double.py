"""A loopback obs-websocket v5 server that behaves like a real OBS 29.0.2 (obs-websocket 5.1.0).

Every behaviour below was read off the real OBS under Xvfb (the same one ``tests/obs_real.py``
runs) and is checked against it by ``tests/integration/test_obs_parity.py``:

* Hello (op 0) with an authentication challenge; the salt is fixed for the server's life and
  only the challenge changes per connection.
* Identify (op 1): authentication is checked first (4009, "missing an `authentication`
  string" or "Authentication failed."), then ``rpcVersion`` (4003 missing, 4004 not an
  unsigned number, 4010 unsupported) and ``eventSubscriptions`` (4004); a second Identify
  closes with 4008. Anything else before Identify closes with 4007.
* Text frames of JSON only: a binary frame or bad JSON closes with 4002, a missing ``d`` with
  4003, an unknown op with 4006. Reidentify (op 3) answers Identified (op 2).
* Request (op 6) without ``requestId`` or ``requestType`` closes with 4003; RequestBatch (op 8)
  answers RequestBatchResponse (op 9), closing with 4003 / 4005 on a missing id or a bad
  ``executionType``.
* Events (op 5) are sent only for the intents the client subscribed to: SceneCreated,
  SceneListChanged, InputCreated, SceneItemCreated, SceneItemSelected, and the transition and
  CurrentProgramSceneChanged events of a program scene change.
* Request fields are validated as OBS does (300 missing, 301 no request data, 401 wrong type,
  402 out of range, 403 empty), and resources answer 600 not found, 601 exists, 602 wrong
  source type, 605 unknown input kind, with OBS's own comments.

``stall = True`` makes it swallow requests without answering (to test timeouts); ``stop()``
drops every client the way a killed OBS does, and ``start()`` again listens on the same port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

# obs-websocket RequestStatus codes (protocol.md)
SUCCESS = 100
MISSING_REQUEST_TYPE = 203
UNKNOWN_REQUEST_TYPE = 204
MISSING_REQUEST_FIELD = 300
MISSING_REQUEST_DATA = 301
INVALID_REQUEST_FIELD = 400
INVALID_REQUEST_FIELD_TYPE = 401
REQUEST_FIELD_OUT_OF_RANGE = 402
REQUEST_FIELD_EMPTY = 403
RESOURCE_NOT_FOUND = 600
RESOURCE_ALREADY_EXISTS = 601
INVALID_RESOURCE_TYPE = 602
INVALID_INPUT_KIND = 605
# WebSocketCloseCode
MESSAGE_DECODE_ERROR = 4002
MISSING_DATA_FIELD = 4003
INVALID_DATA_FIELD_TYPE = 4004
INVALID_DATA_FIELD_VALUE = 4005
UNKNOWN_OP_CODE = 4006
NOT_IDENTIFIED = 4007
ALREADY_IDENTIFIED = 4008
AUTHENTICATION_FAILED = 4009
UNSUPPORTED_RPC_VERSION = 4010
# EventSubscription bits, and "All" (every non-high-volume category), the default
SUB_SCENES, SUB_INPUTS, SUB_TRANSITIONS, SUB_SCENE_ITEMS = 1 << 2, 1 << 3, 1 << 4, 1 << 7
SUB_ALL = (1 << 11) - 1

# What GetInputKindList and GetVersion answer on Debian's OBS 29.0.2.
INPUT_KINDS = (
    "image_source",
    "color_source_v3",
    "slideshow",
    "alsa_input_capture",
    "xshm_input",
    "jack_output_capture",
    "pulse_input_capture",
    "pulse_output_capture",
    "v4l2_input",
    "ffmpeg_source",
    "text_ft2_source_v2",
    "vlc_source",
)
# OBS 29's Windows build ships these kinds instead (plugin ids; not measured here: no Windows).
INPUT_KINDS_WINDOWS = (
    "image_source",
    "color_source_v3",
    "slideshow",
    "browser_source",
    "ffmpeg_source",
    "text_gdiplus_v2",
    "monitor_capture",
    "window_capture",
    "game_capture",
    "dshow_input",
    "wasapi_input_capture",
    "wasapi_output_capture",
)
IMAGE_FORMATS = ("bmp", "cur", "ico", "jpeg", "jpg", "pbm", "pgm", "png", "ppm", "xbm", "xpm")

# A 1x1 transparent PNG.
TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def auth_string(password: str, salt: str, challenge: str) -> str:
    secret = base64.b64encode(hashlib.sha256((password + salt).encode()).digest())
    return base64.b64encode(hashlib.sha256(secret + challenge.encode()).digest()).decode()


class _RequestError(Exception):
    def __init__(self, code: int, comment: str) -> None:
        super().__init__(comment)
        self.code = code
        self.comment = comment


class _Close(Exception):
    """Close the session with ``code`` and OBS's ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _unsigned(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass
class _Session:
    ws: web.WebSocketResponse
    challenge: str
    identified: bool = False
    subscriptions: int = SUB_ALL


@dataclass
class ObsDouble:
    password: str | None = None
    platform: str = "debian"
    obs_version: str = "29.0.2"
    websocket_version: str = "5.1.0"
    host: str = "127.0.0.1"
    port: int = 0
    stall: bool = False
    input_kinds: tuple[str, ...] = ()  # () = what this platform's OBS ships
    # state
    scenes: list[str] = field(default_factory=list)
    current_scene: str = ""
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {kind, settings}
    scene_items: dict[str, list[str]] = field(default_factory=dict)  # scene -> source names
    # what happened
    requests: list[tuple[str, dict]] = field(default_factory=list)
    identified: int = 0
    auth_failures: int = 0
    connections: int = 0

    def __post_init__(self) -> None:
        if not self.input_kinds:
            self.input_kinds = INPUT_KINDS_WINDOWS if self.platform == "windows" else INPUT_KINDS
        self._runner: web.AppRunner | None = None
        self._sessions: dict[web.WebSocketResponse, tuple[web.Request, _Session]] = {}
        self._salt = ""
        self._item_ids: dict[str, int] = {}  # scene -> last scene item id (ids are per scene)

    @classmethod
    def with_streambot_scenes(cls, password: str) -> ObsDouble:
        """An OBS the user has set up for streambot: its four scenes, the caption text source
        and the product image source (the names of the default ``[obs]`` config)."""
        double = cls(password=password)
        double.scenes = [
            "streambot idle",
            "streambot talking",
            "streambot showcase",
            "streambot brb",
        ]
        for name, kind in (
            ("streambot caption", "text_ft2_source_v2"),
            ("streambot product", "image_source"),
        ):
            double.inputs[name] = {"kind": kind, "settings": {}}
        return double

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._salt = base64.b64encode(secrets.token_bytes(32)).decode()  # one per server run
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Drop every client without a close handshake (like a killed OBS) and stop listening."""
        for request, _ in list(self._sessions.values()):
            if request.transport is not None:
                request.transport.abort()
        self._sessions.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def __aenter__(self) -> ObsDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def requests_of(self, request_type: str) -> list[dict]:
        return [data for kind, data in self.requests if kind == request_type]

    # --- the session -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("obswebsocket.json",), timeout=0.5)
        await ws.prepare(request)
        session = _Session(ws, base64.b64encode(secrets.token_bytes(32)).decode())
        self._sessions[ws] = (request, session)
        self.connections += 1
        hello: dict[str, Any] = {
            "obsWebSocketVersion": self.websocket_version,
            "rpcVersion": 1,
        }
        if self.password is not None:
            hello["authentication"] = {"challenge": session.challenge, "salt": self._salt}
        await ws.send_str(json.dumps({"op": 0, "d": hello}))
        try:
            async for msg in ws:
                try:
                    await self._message(session, msg)
                except _Close as close:
                    await ws.close(code=close.code, message=close.reason.encode())
                    break
        finally:
            self._sessions.pop(ws, None)
        if not ws.closed:
            await ws.close(code=WSCloseCode.GOING_AWAY)
        return ws

    async def _message(self, session: _Session, msg: Any) -> None:
        if msg.type == WSMsgType.BINARY:
            raise _Close(
                MESSAGE_DECODE_ERROR,
                "Your session encoding is set to Json, but a binary message was received.",
            )
        if msg.type != WSMsgType.TEXT:
            return
        try:
            message = json.loads(msg.data)
        except ValueError as exc:
            raise _Close(MESSAGE_DECODE_ERROR, f"Unable to decode Json: {exc}") from None
        if not isinstance(message, dict) or "op" not in message:
            raise _Close(MISSING_DATA_FIELD, "Your payload is missing an `op`.")
        if not isinstance(message.get("d"), dict):
            raise _Close(MISSING_DATA_FIELD, "Your payload is missing data (`d`).")
        op, data = message["op"], message["d"]
        if not session.identified and op != 1:
            raise _Close(
                NOT_IDENTIFIED, "You attempted to send a non-Identify message while not identified."
            )
        if op == 1:
            await self._identify(session, data)
        elif op == 3:
            session.subscriptions = self._subscriptions(data, session.subscriptions)
            await self._send(session, 2, {"negotiatedRpcVersion": 1})
        elif op == 6:
            await self._request(session, data)
        elif op == 8:
            await self._batch(session, data)
        else:
            raise _Close(UNKNOWN_OP_CODE, f"Unknown OpCode: {op}")

    async def _identify(self, session: _Session, data: dict) -> None:
        if session.identified:
            raise _Close(
                ALREADY_IDENTIFIED, "You are already Identified with the obs-websocket server."
            )
        if self.password is not None:
            given = data.get("authentication")
            if not isinstance(given, str):
                self.auth_failures += 1
                raise _Close(
                    AUTHENTICATION_FAILED,
                    "Your payload's data is missing an `authentication` string, however "
                    "authentication is required.",
                )
            if given != auth_string(self.password, self._salt, session.challenge):
                self.auth_failures += 1
                raise _Close(AUTHENTICATION_FAILED, "Authentication failed.")
        if "rpcVersion" not in data:
            raise _Close(MISSING_DATA_FIELD, "Your payload's data is missing an `rpcVersion`.")
        if not _unsigned(data["rpcVersion"]):
            raise _Close(INVALID_DATA_FIELD_TYPE, "Your `rpcVersion` is not an unsigned number.")
        if data["rpcVersion"] != 1:
            raise _Close(
                UNSUPPORTED_RPC_VERSION,
                "Your requested RPC version is not supported by this server.",
            )
        session.subscriptions = self._subscriptions(data, SUB_ALL)
        session.identified = True
        self.identified += 1
        await self._send(session, 2, {"negotiatedRpcVersion": 1})

    @staticmethod
    def _subscriptions(data: dict, default: int) -> int:
        if "eventSubscriptions" not in data:
            return default
        if not _unsigned(data["eventSubscriptions"]):
            raise _Close(
                INVALID_DATA_FIELD_TYPE, "Your `eventSubscriptions` is not an unsigned number."
            )
        return data["eventSubscriptions"]

    async def _request(self, session: _Session, data: dict) -> None:
        if "requestId" not in data:
            raise _Close(MISSING_DATA_FIELD, "Your payload data is missing a `requestId`.")
        if "requestType" not in data:
            raise _Close(MISSING_DATA_FIELD, "Your payload's data is missing an `requestType`.")
        self.requests.append((data["requestType"], data.get("requestData") or {}))
        if self.stall:
            return
        before, after = [], []
        response = self._respond(data, before, after)
        for event in before:
            await self._event(session, *event)
        await self._send(session, 7, response)
        for event in after:
            await self._event(session, *event)

    async def _batch(self, session: _Session, data: dict) -> None:
        if "requestId" not in data:
            raise _Close(MISSING_DATA_FIELD, "Your payload data is missing a `requestId`.")
        if data.get("executionType", 0) not in (-1, 0, 1, 2):
            raise _Close(INVALID_DATA_FIELD_VALUE, "Your `executionType` has an invalid value.")
        requests = data.get("requests")
        if not isinstance(requests, list):
            raise _Close(MISSING_DATA_FIELD, "Your payload data is missing a `requests`.")
        results, events = [], []
        for item in requests:
            item = item if isinstance(item, dict) else {}
            self.requests.append((item.get("requestType", ""), item.get("requestData") or {}))
            result = self._respond(item, events, events)
            if "requestId" not in item:
                result.pop("requestId", None)
            results.append(result)
            if data.get("haltOnFailure") and not result["requestStatus"]["result"]:
                break
        if self.stall:
            return
        for event in events:
            await self._event(session, *event)
        await self._send(session, 9, {"requestId": data["requestId"], "results": results})

    async def _send(self, session: _Session, op: int, data: dict) -> None:
        await session.ws.send_str(json.dumps({"op": op, "d": data}))

    async def _event(self, session: _Session, intent: int, event_type: str, data: dict) -> None:
        if session.subscriptions & intent:
            await self._send(
                session, 5, {"eventType": event_type, "eventIntent": intent, "eventData": data}
            )

    # --- requests ------------------------------------------------------------------------------

    def _respond(self, data: dict, before: list, after: list) -> dict:
        request_type = data.get("requestType", "")
        response: dict[str, Any] = {"requestType": request_type, "requestId": data.get("requestId")}
        handler = getattr(self, f"_req_{request_type}", None)
        try:
            if not request_type:
                raise _RequestError(MISSING_REQUEST_TYPE, "Your request is missing a `requestType`")
            if handler is None:
                raise _RequestError(UNKNOWN_REQUEST_TYPE, "Your request type is not valid.")
            result = handler(data.get("requestData"), before, after)
        except _RequestError as e:
            response["requestStatus"] = {"result": False, "code": e.code, "comment": e.comment}
            return response
        response["requestStatus"] = {"result": True, "code": SUCCESS}
        if result is not None:
            response["responseData"] = result
        return response

    @staticmethod
    def _data(data: object) -> dict:
        if not isinstance(data, dict):
            raise _RequestError(
                MISSING_REQUEST_DATA, "Your request data is missing or invalid (non-object)"
            )
        return data

    @staticmethod
    def _string(data: dict, name: str) -> str:
        if name not in data:
            raise _RequestError(
                MISSING_REQUEST_FIELD, f"Your request is missing the `{name}` field."
            )
        value = data[name]
        if not isinstance(value, str):
            raise _RequestError(
                INVALID_REQUEST_FIELD_TYPE, f"The field value of `{name}` must be a string."
            )
        if not value:
            raise _RequestError(
                REQUEST_FIELD_EMPTY, f"The field value of `{name}` must not be empty."
            )
        return value

    @staticmethod
    def _object(data: dict, name: str, required: bool = True) -> dict | None:
        if name not in data:
            if not required:
                return None
            raise _RequestError(
                MISSING_REQUEST_FIELD, f"Your request is missing the `{name}` field."
            )
        if not isinstance(data[name], dict):
            raise _RequestError(
                INVALID_REQUEST_FIELD_TYPE, f"The field value of `{name}` must be an object."
            )
        return data[name]

    @staticmethod
    def _number(data: dict, name: str, low: float, high: float) -> None:
        if name not in data:
            return
        value = data[name]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _RequestError(
                INVALID_REQUEST_FIELD_TYPE, f"The field value of `{name}` must be a number."
            )
        if value < low:
            raise _RequestError(
                REQUEST_FIELD_OUT_OF_RANGE,
                f"The field value of `{name}` is below the minimum of `{low:f}`",
            )
        if value > high:
            raise _RequestError(
                REQUEST_FIELD_OUT_OF_RANGE,
                f"The field value of `{name}` is above the maximum of `{high:f}`",
            )

    def _source(self, name: str) -> str:
        if name not in self.inputs and name not in self.scenes:
            raise _RequestError(RESOURCE_NOT_FOUND, f"No source was found by the name of `{name}`.")
        return name

    def _scene(self, data: dict, field_name: str = "sceneName") -> str:
        name = self._source(self._string(data, field_name))
        if name not in self.scenes:
            raise _RequestError(INVALID_RESOURCE_TYPE, "The specified source is not a scene.")
        return name

    def _input(self, data: dict) -> str:
        name = self._source(self._string(data, "inputName"))
        if name not in self.inputs:
            raise _RequestError(INVALID_RESOURCE_TYPE, "The specified source is not an input.")
        return name

    def _add_item(self, scene: str, source: str, before: list) -> int:
        item_id = self._item_ids.get(scene, 0) + 1
        self._item_ids[scene] = item_id
        self.scene_items[scene].append(source)
        index = len(self.scene_items[scene]) - 1
        before.append(
            (
                SUB_SCENE_ITEMS,
                "SceneItemCreated",
                {
                    "sceneItemId": item_id,
                    "sceneItemIndex": index,
                    "sceneName": scene,
                    "sourceName": source,
                },
            )
        )
        before.append(
            (SUB_SCENE_ITEMS, "SceneItemSelected", {"sceneItemId": item_id, "sceneName": scene})
        )
        return item_id

    def _scene_list(self) -> list[dict]:
        return [
            {"sceneIndex": index, "sceneName": name}
            for index, name in reversed(list(enumerate(self.scenes)))
        ]

    def _req_GetVersion(self, data: object, before: list, after: list) -> dict:
        return {
            "obsVersion": self.obs_version,
            "obsWebSocketVersion": self.websocket_version,
            "rpcVersion": 1,
            "availableRequests": sorted(name[5:] for name in dir(self) if name.startswith("_req_")),
            "supportedImageFormats": list(IMAGE_FORMATS),
            "platform": self.platform,
            "platformDescription": f"{self.platform} (loopback double)",
        }

    def _req_GetInputKindList(self, data: object, before: list, after: list) -> dict:
        return {"inputKinds": list(self.input_kinds)}

    def _req_GetSceneList(self, data: object, before: list, after: list) -> dict:
        return {
            "currentProgramSceneName": self.current_scene or None,
            "currentPreviewSceneName": None,
            "scenes": self._scene_list(),
        }

    def _req_CreateScene(self, data: object, before: list, after: list) -> None:
        name = self._string(self._data(data), "sceneName")
        if name in self.scenes or name in self.inputs:
            raise _RequestError(
                RESOURCE_ALREADY_EXISTS, "A source already exists by that scene name."
            )
        self.scenes.append(name)
        self.scene_items[name] = []
        if not self.current_scene:
            self.current_scene = name
        before.append((SUB_SCENES, "SceneCreated", {"isGroup": False, "sceneName": name}))
        after.append((SUB_SCENES, "SceneListChanged", {"scenes": self._scene_list()}))

    def _req_GetCurrentProgramScene(self, data: object, before: list, after: list) -> dict:
        return {"currentProgramSceneName": self.current_scene}

    def _req_SetCurrentProgramScene(self, data: object, before: list, after: list) -> None:
        scene = self._scene(self._data(data))
        if scene == self.current_scene:
            return
        self.current_scene = scene
        fade = {"transitionName": "Fade"}
        before.append((SUB_TRANSITIONS, "SceneTransitionStarted", fade))
        after.append((SUB_TRANSITIONS, "SceneTransitionVideoEnded", fade))
        after.append((SUB_SCENES, "CurrentProgramSceneChanged", {"sceneName": scene}))
        after.append((SUB_TRANSITIONS, "SceneTransitionEnded", fade))

    def _req_GetInputList(self, data: object, before: list, after: list) -> dict:
        kind = data.get("inputKind") if isinstance(data, dict) else None
        return {
            "inputs": [
                {
                    "inputKind": spec["kind"],
                    "inputName": name,
                    "unversionedInputKind": spec["kind"].removesuffix("_v2").removesuffix("_v3"),
                }
                for name, spec in self.inputs.items()
                if kind is None or spec["kind"] == kind
            ]
        }

    def _req_CreateInput(self, data: object, before: list, after: list) -> dict:
        data = self._data(data)
        scene = self._scene(data)
        name = self._string(data, "inputName")
        kind = self._string(data, "inputKind")
        settings = self._object(data, "inputSettings", required=False) or {}
        if name in self.inputs or name in self.scenes:
            raise _RequestError(
                RESOURCE_ALREADY_EXISTS, "A source already exists by that input name."
            )
        if kind not in self.input_kinds:
            raise _RequestError(
                INVALID_INPUT_KIND,
                "Your specified input kind is not supported by OBS. Check that your specified "
                "kind is properly versioned and that any necessary plugins are loaded.",
            )
        self.inputs[name] = {"kind": kind, "settings": dict(settings)}
        before.append(
            (
                SUB_INPUTS,
                "InputCreated",
                {
                    "inputKind": kind,
                    "inputName": name,
                    "inputSettings": dict(settings),
                    "unversionedInputKind": kind.removesuffix("_v2").removesuffix("_v3"),
                },
            )
        )
        return {"sceneItemId": self._add_item(scene, name, before)}

    def _req_CreateSceneItem(self, data: object, before: list, after: list) -> dict:
        data = self._data(data)
        scene = self._scene(data)
        source = self._source(self._string(data, "sourceName"))
        return {"sceneItemId": self._add_item(scene, source, before)}

    def _req_GetSceneItemList(self, data: object, before: list, after: list) -> dict:
        scene = self._scene(self._data(data))
        return {
            "sceneItems": [
                {
                    "inputKind": self.inputs.get(source, {}).get("kind"),
                    "isGroup": None,
                    "sceneItemEnabled": True,
                    "sceneItemId": index + 1,
                    "sceneItemIndex": index,
                    "sceneItemLocked": False,
                    "sourceName": source,
                    "sourceType": "OBS_SOURCE_TYPE_INPUT"
                    if source in self.inputs
                    else "OBS_SOURCE_TYPE_SCENE",
                }
                for index, source in enumerate(self.scene_items[scene])
            ]
        }

    def _req_SetInputSettings(self, data: object, before: list, after: list) -> None:
        data = self._data(data)
        name = self._input(data)
        settings = self._object(data, "inputSettings")
        assert settings is not None
        if data.get("overlay", True):
            self.inputs[name]["settings"].update(settings)
        else:
            self.inputs[name]["settings"] = dict(settings)

    def _req_GetInputSettings(self, data: object, before: list, after: list) -> dict:
        name = self._input(self._data(data))
        return {
            "inputKind": self.inputs[name]["kind"],
            "inputSettings": dict(self.inputs[name]["settings"]),
        }

    def _req_GetSourceScreenshot(self, data: object, before: list, after: list) -> dict:
        data = self._data(data)
        self._source(self._string(data, "sourceName"))
        image_format = self._string(data, "imageFormat")
        if image_format not in IMAGE_FORMATS:
            raise _RequestError(
                INVALID_REQUEST_FIELD,
                "Your specified image format is invalid or not supported by this system.",
            )
        for size in ("imageWidth", "imageHeight"):
            self._number(data, size, 8, 4096)
        self._number(data, "imageCompressionQuality", -1, 100)
        return {"imageData": f"data:image/{image_format};base64,{TINY_PNG}"}
