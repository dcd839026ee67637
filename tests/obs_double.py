"""A loopback obs-websocket v5 server that speaks the real protocol, for the OBS controller tests.

Hello (op 0, with an authentication challenge when a password is set), Identify (op 1, checked the
way OBS checks it: base64(sha256(base64(sha256(password + salt)) + challenge)), a wrong one closes
the socket with 4009 AuthenticationFailed), Identified (op 2), Request (op 6) and RequestResponse
(op 7) with OBS's status codes. Scenes, inputs, scene items and the program scene live in memory.

``stall = True`` makes it swallow requests without answering (to test timeouts); ``stop()`` drops
every client the way a killed OBS does, and ``start()`` again listens on the same port.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

# obs-websocket RequestStatus codes (protocol.md)
SUCCESS = 100
MISSING_REQUEST_FIELD = 300
UNKNOWN_REQUEST_TYPE = 204
RESOURCE_NOT_FOUND = 600
RESOURCE_ALREADY_EXISTS = 601
# WebSocketCloseCode
NOT_IDENTIFIED = 4007
AUTHENTICATION_FAILED = 4009
UNSUPPORTED_RPC_VERSION = 4010

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


@dataclass
class ObsDouble:
    password: str | None = None
    platform: str = "ubuntu"
    obs_version: str = "31.0.2"
    websocket_version: str = "5.5.4"
    host: str = "127.0.0.1"
    port: int = 0
    stall: bool = False
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
        self._runner: web.AppRunner | None = None
        self._sockets: dict[web.WebSocketResponse, web.Request] = {}
        self._ids = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
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
        for request in list(self._sockets.values()):
            if request.transport is not None:
                request.transport.abort()
        self._sockets.clear()
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

    # --- protocol ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("obswebsocket.json",), timeout=0.5)
        await ws.prepare(request)
        self._sockets[ws] = request
        self.connections += 1
        hello: dict[str, Any] = {
            "obsWebSocketVersion": self.websocket_version,
            "rpcVersion": 1,
        }
        salt = challenge = ""
        if self.password is not None:
            salt, challenge = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            hello["authentication"] = {"challenge": challenge, "salt": salt}
        await ws.send_str(json.dumps({"op": 0, "d": hello}))
        identified = False
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                op, data = message.get("op"), message.get("d") or {}
                if op == 1:
                    if data.get("rpcVersion") != 1:
                        await ws.close(code=UNSUPPORTED_RPC_VERSION, message=b"rpcVersion")
                        break
                    if self.password is not None:
                        expected = auth_string(self.password, salt, challenge)
                        if data.get("authentication") != expected:
                            self.auth_failures += 1
                            await ws.close(
                                code=AUTHENTICATION_FAILED, message=b"Authentication failed."
                            )
                            break
                    identified = True
                    self.identified += 1
                    await ws.send_str(json.dumps({"op": 2, "d": {"negotiatedRpcVersion": 1}}))
                elif op == 6:
                    if not identified:
                        await ws.close(code=NOT_IDENTIFIED, message=b"Not identified.")
                        break
                    request_type = data.get("requestType", "")
                    request_data = data.get("requestData") or {}
                    self.requests.append((request_type, request_data))
                    if self.stall:
                        continue
                    await ws.send_str(json.dumps({"op": 7, "d": self._respond(data)}))
        finally:
            self._sockets.pop(ws, None)
        if not ws.closed:
            await ws.close(code=WSCloseCode.GOING_AWAY)
        return ws

    def _respond(self, data: dict) -> dict:
        request_type = data.get("requestType", "")
        response: dict[str, Any] = {"requestType": request_type, "requestId": data.get("requestId")}
        handler = getattr(self, f"_req_{request_type}", None)
        try:
            if handler is None:
                raise _RequestError(UNKNOWN_REQUEST_TYPE, "Your request type is not valid.")
            result = handler(data.get("requestData") or {})
        except _RequestError as e:
            response["requestStatus"] = {"result": False, "code": e.code, "comment": e.comment}
            return response
        response["requestStatus"] = {"result": True, "code": SUCCESS}
        if result is not None:
            response["responseData"] = result
        return response

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    @staticmethod
    def _field(data: dict, name: str) -> Any:
        if name not in data:
            raise _RequestError(
                MISSING_REQUEST_FIELD, f"Your request is missing the `{name}` field."
            )
        return data[name]

    def _scene(self, data: dict) -> str:
        name = self._field(data, "sceneName")
        if name not in self.scenes:
            raise _RequestError(
                RESOURCE_NOT_FOUND, "No source was found by the name of `sceneName`."
            )
        return name

    def _input(self, data: dict) -> str:
        name = self._field(data, "inputName")
        if name not in self.inputs:
            raise _RequestError(
                RESOURCE_NOT_FOUND, "No source was found by the name of `inputName`."
            )
        return name

    # --- requests ------------------------------------------------------------------------------

    def _req_GetVersion(self, data: dict) -> dict:
        return {
            "obsVersion": self.obs_version,
            "obsWebSocketVersion": self.websocket_version,
            "rpcVersion": 1,
            "availableRequests": sorted(name[5:] for name in dir(self) if name.startswith("_req_")),
            "supportedImageFormats": ["png", "jpg"],
            "platform": self.platform,
            "platformDescription": f"{self.platform} (loopback double)",
        }

    def _req_GetSceneList(self, data: dict) -> dict:
        return {
            "currentProgramSceneName": self.current_scene or None,
            "currentPreviewSceneName": None,
            "scenes": [
                {"sceneName": name, "sceneIndex": index, "sceneUuid": f"scene-{index}"}
                for index, name in reversed(list(enumerate(self.scenes)))
            ],
        }

    def _req_CreateScene(self, data: dict) -> dict:
        name = self._field(data, "sceneName")
        if name in self.scenes or name in self.inputs:
            raise _RequestError(RESOURCE_ALREADY_EXISTS, "A source already exists by that name.")
        self.scenes.append(name)
        self.scene_items[name] = []
        if not self.current_scene:
            self.current_scene = name
        return {"sceneUuid": str(uuid.uuid4())}

    def _req_GetCurrentProgramScene(self, data: dict) -> dict:
        return {"currentProgramSceneName": self.current_scene, "sceneName": self.current_scene}

    def _req_SetCurrentProgramScene(self, data: dict) -> None:
        self.current_scene = self._scene(data)

    def _req_GetInputList(self, data: dict) -> dict:
        kind = data.get("inputKind")
        return {
            "inputs": [
                {
                    "inputName": name,
                    "inputKind": spec["kind"],
                    "unversionedInputKind": spec["kind"].removesuffix("_v2"),
                }
                for name, spec in self.inputs.items()
                if kind is None or spec["kind"] == kind
            ]
        }

    def _req_CreateInput(self, data: dict) -> dict:
        scene = self._scene(data)
        name = self._field(data, "inputName")
        kind = self._field(data, "inputKind")
        if name in self.inputs or name in self.scenes:
            raise _RequestError(RESOURCE_ALREADY_EXISTS, "A source already exists by that name.")
        self.inputs[name] = {"kind": kind, "settings": dict(data.get("inputSettings") or {})}
        self.scene_items[scene].append(name)
        return {"inputUuid": str(uuid.uuid4()), "sceneItemId": self._new_id()}

    def _req_CreateSceneItem(self, data: dict) -> dict:
        scene = self._scene(data)
        source = self._field(data, "sourceName")
        if source not in self.inputs and source not in self.scenes:
            raise _RequestError(
                RESOURCE_NOT_FOUND, "No source was found by the name of `sourceName`."
            )
        self.scene_items[scene].append(source)
        return {"sceneItemId": self._new_id()}

    def _req_GetSceneItemList(self, data: dict) -> dict:
        scene = self._scene(data)
        return {
            "sceneItems": [
                {
                    "sourceName": source,
                    "sceneItemId": index + 1,
                    "sceneItemIndex": index,
                    "inputKind": self.inputs.get(source, {}).get("kind"),
                    "isGroup": None,
                }
                for index, source in enumerate(self.scene_items[scene])
            ]
        }

    def _req_SetInputSettings(self, data: dict) -> None:
        name = self._input(data)
        settings = self._field(data, "inputSettings")
        if data.get("overlay", True):
            self.inputs[name]["settings"].update(settings)
        else:
            self.inputs[name]["settings"] = dict(settings)

    def _req_GetInputSettings(self, data: dict) -> dict:
        name = self._input(data)
        return {
            "inputSettings": dict(self.inputs[name]["settings"]),
            "inputKind": self.inputs[name]["kind"],
        }

    def _req_GetSourceScreenshot(self, data: dict) -> dict:
        source = self._field(data, "sourceName")
        if source not in self.inputs and source not in self.scenes:
            raise _RequestError(
                RESOURCE_NOT_FOUND, "No source was found by the name of `sourceName`."
            )
        image_format = self._field(data, "imageFormat")
        return {"imageData": f"data:image/{image_format};base64,{TINY_PNG}"}
