"""The operator's panel: one page served by the daemon to watch the stream and steer the host.

``GET /`` is the page (its files ship in the package: no build step, no CDN); ``GET /events``
is a server-sent event stream of the panel's state (pushed when it changed, at most every
``PUSH_S``) and of each new preview frame; ``GET /preview.jpg`` the latest preview;
``POST /api/<action>`` the operator's actions, each logged in the store with who and when.

The same rules as ``POST /chat`` keep web pages and strangers out (``streambot.http_guard``):
only a ``Host`` of this computer, the bound address or ``allowed_hosts`` (DNS rebinding);
bound to 127.0.0.1 unless a token is set; with a token, every request needs it
(``Authorization: Bearer``, or the session cookie the page gets when opened once as
``/?token=...``, which then redirects to ``/`` so the token leaves the address bar and the
history; the cookie is a random session id, never the token, as a browser sends it to every
server on the same host); actions only as ``application/json`` (a cross-origin page cannot
send that without a CORS preflight, never granted) and only from a page of this panel (its
``Origin`` is this host, or a loopback one). No response sends a ``Referer`` on.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from streambot.catalog import CatalogError
from streambot.config import PanelConfig
from streambot.controls import NotRunning, ShowControls
from streambot.events import ChatMessage, Kind
from streambot.http_guard import Guard, origin_allowed
from streambot.panel.catalog_edit import CatalogEditor, EditError
from streambot.panel.preview import PreviewEncoder
from streambot.panel.state import panel_state
from streambot.stage.overlay.fonts import find_font

log = logging.getLogger(__name__)
PUSH_S = 0.25
COOKIE = "streambot_panel"
STATIC = {"panel.js": "text/javascript", "panel.css": "text/css"}
MAX_BODY = 16 * 1024
MAX_STREAMS = 32  # open /events streams: each holds memory and a write per push
SESSIONS = 64  # sessions kept (one per opening of /?token=); the oldest is forgotten past it


def _same(given: str, secret: str) -> bool:
    """Constant-time comparison of a stranger's text (any characters) with a secret."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())


class ActionError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Panel:
    def __init__(self, show: ShowControls, config: PanelConfig) -> None:
        self.show, self.config = show, config
        self.token: SecretStr | None = config.token()
        self.preview = PreviewEncoder(show.fps, config.preview_fps, config.preview_width)
        self.port: int | None = None
        self.guard = Guard("panel", config.host, config.allowed_hosts, log)
        self.editor = CatalogEditor(show.catalog)
        self._sessions: dict[str, None] = {}  # session ids given out, oldest first
        self._streams = 0  # open /events streams
        self._state_json, self._state_at = "", None  # the state pushed last, and when
        self._runner: web.AppRunner | None = None
        self._actions: dict[str, Callable[[dict], str]] = {
            "skip": self._skip,
            "say": self._say,
            "pitch": self._pitch,
            "autopilot": self._autopilot,
            "takeover": self._takeover,
            "first": self._first,
            "drop": self._drop,
            "product": self._product,
        }

    # -- serving ----------------------------------------------------------------------------
    async def start(self) -> None:
        web_app = self.guard.application(client_max_size=MAX_BODY, middlewares=[self._guard])
        web_app.on_response_prepare.append(self._headers)
        web_app.router.add_get("/", self._page)
        web_app.router.add_get("/static/cjk-font", self._font)
        web_app.router.add_get("/static/{name}", self._static)
        web_app.router.add_get("/events", self._events)
        web_app.router.add_get("/preview.jpg", self._preview)
        web_app.router.add_post("/api/{action}", self._action)
        runner = self._runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self.port = runner.addresses[0][1]
        log.info("panel at http://%s:%d/", self.config.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.preview.close()

    # -- who may ----------------------------------------------------------------------------
    def _has_token(self, request: web.Request) -> bool:
        """The bearer token (a script), the token in the page's own address (once: it is
        redirected away), or a session cookie given for it."""
        if self.token is None:
            return True
        secret = self.token.get_secret_value()
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        opened = request.query.get("token", "") if request.path == "/" else ""
        if any(_same(given, secret) for given in (bearer, opened) if given):
            return True
        session = request.cookies.get(COOKIE, "")
        return bool(session) and any(_same(session, known) for known in self._sessions)

    def _new_session(self) -> str:
        session = secrets.token_urlsafe(32)
        self._sessions[session] = None
        while len(self._sessions) > SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        return session

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.headers.get("Host")):
            self.guard.refused("web page", "panel: refused a request from a web page at %r", origin)
            return web.json_response(
                {"error": "requests from other web pages are refused"}, status=403
            )
        if not self._has_token(request):
            self.guard.refused("token", "panel: refused a request without the right token")
            return web.json_response({"error": "missing or wrong token"}, status=401)
        return await handler(request)

    @staticmethod
    async def _headers(request: web.Request, response: web.StreamResponse) -> None:
        """On every response, refusals and errors too."""
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # no address leaves with a link

    # -- the page ---------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        if "token" in request.query:  # opened with the token: off the address bar and history
            response = web.Response(status=303, headers={"Location": "/"})
            if self.token is not None:
                response.set_cookie(
                    COOKIE, self._new_session(), httponly=True, samesite="Strict", path="/"
                )
            return response
        html = resources.files("streambot.panel.static").joinpath("index.html").read_text("utf-8")
        return web.Response(
            text=html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:",
                "X-Frame-Options": "DENY",
            },
        )

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        text = resources.files("streambot.panel.static").joinpath(name).read_text("utf-8")
        return web.Response(text=text, content_type=STATIC[name])

    async def _font(self, request: web.Request) -> web.StreamResponse:
        """The overlays' CJK font, so Chinese shows on a browser without one of its own (the
        page asks for it only for CJK characters: its unicode-range)."""
        path = find_font(self.show.font)
        if path is None:
            raise web.HTTPNotFound()
        headers = {"Content-Type": "font/otf", "Cache-Control": "max-age=86400"}
        return web.FileResponse(path, headers=headers)

    async def _preview(self, request: web.Request) -> web.Response:
        if not self.preview.jpeg:
            return web.Response(status=503, text="no frame yet")
        return web.Response(body=self.preview.jpeg, content_type="image/jpeg")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self._streams >= MAX_STREAMS:
            self.guard.refused(
                "event streams", "panel: refused an event stream, %d are open", self._streams
            )
            return web.json_response(
                {"error": "too many panel pages are open"}, status=503, headers={"Retry-After": "5"}
            )
        self._streams += 1
        try:
            return await self._stream(request)
        finally:
            self._streams -= 1

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        sent_state, sent_frame = "", -1
        try:
            while request.transport is not None and not request.transport.is_closing():
                state = self._state()
                if state != sent_state:
                    await response.write(f"event: state\ndata: {state}\n\n".encode())
                    sent_state = state
                if self.preview.frame_index != sent_frame:
                    sent_frame = self.preview.frame_index
                    await response.write(f"event: preview\ndata: {sent_frame}\n\n".encode())
                await asyncio.sleep(PUSH_S)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    def _state(self) -> str:
        """The state as JSON, worked out once per push interval however many pages are open."""
        now = time.monotonic()
        if self._state_at is None or now - self._state_at >= PUSH_S / 2:
            self._state_json = json.dumps(panel_state(self.show), ensure_ascii=False, default=str)
            self._state_at = now
        return self._state_json

    # -- actions ----------------------------------------------------------------------------
    async def _action(self, request: web.Request) -> web.Response:
        name = request.match_info["action"]
        if request.content_type != "application/json":
            return web.json_response({"error": "Content-Type must be application/json"}, status=415)
        act = self._actions.get(name)
        if act is None:
            return web.json_response({"error": f"no action {name!r}"}, status=404)
        body: object = {}
        try:
            body = json.loads(await request.read() or b"{}")
            if not isinstance(body, dict):
                raise ActionError("the body must be a JSON object")
            result = act(body)
            status = 200
        except NotRunning as exc:
            result, status = str(exc), 503
        except (ValueError, ActionError, EditError, CatalogError) as exc:
            result, status = str(exc), getattr(exc, "status", 400)
        detail = json.dumps(body, ensure_ascii=False)[:500]
        self.show.store.log_action(
            self.config.operator, name, detail, result if status == 200 else f"refused: {result}"
        )
        key = "done" if status == 200 else "error"
        return web.json_response({key: result}, status=status)

    def _command(self, text: str) -> str:
        """An operator command through ingest: stored, triaged (the banned-word rule too)."""
        msg = ChatMessage("panel", self.config.operator, text, Kind.COMMAND)
        decision = self.show.command(msg)
        if not decision.accepted:
            raise ActionError(f"refused: {decision.reason}")
        return f"queued as #{msg.id}"

    @staticmethod
    def _text(body: dict, key: str, limit: int = 500) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ActionError(f"{key!r} must be non-empty text")
        if len(value) > limit:
            raise ActionError(f"{key!r} is longer than {limit} characters")
        return " ".join(value.split())

    def _skip(self, body: dict) -> str:
        turn = self.show.skip()
        if turn is None:
            return "nothing is being said"
        return f"turn {turn.id} skipped"

    def _say(self, body: dict) -> str:
        return self._command(f"!say {self._text(body, 'text')}")

    def _pitch(self, body: dict) -> str:
        product = self._text(body, "product", 64)
        if self.show.catalog.current.by_id(product) is None:
            raise ActionError(f"no product {product!r} in the catalog")
        return self._command(f"!pitch {product}")

    def _autopilot(self, body: dict) -> str:
        on = body.get("on")
        if not isinstance(on, bool):
            raise ActionError("'on' must be true or false")
        problem = self.show.set_autopilot(on)
        if problem:
            raise ActionError(problem)
        return "autopilot on" if on else "autopilot paused"

    def _takeover(self, body: dict) -> str:
        on = body.get("on")
        if not isinstance(on, bool):
            raise ActionError("'on' must be true or false")
        self.show.take_over(on)
        return "taken over: the host is quiet" if on else "handed back to the host"

    def _message_id(self, body: dict) -> int:
        value = body.get("id")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ActionError("'id' must be a message id")
        return value

    def _first(self, body: dict) -> str:
        message_id = self._message_id(body)
        if not self.show.answer_first(message_id):
            raise ActionError(f"message #{message_id} is not queued", 404)
        return f"#{message_id} is answered next"

    def _drop(self, body: dict) -> str:
        message_id = self._message_id(body)
        reason = f"dropped by {self.config.operator} on the panel"
        if not self.show.drop(message_id, reason):
            raise ActionError(f"message #{message_id} is not queued", 404)
        return f"#{message_id} dropped"

    def _product(self, body: dict) -> str:
        product = self._text(body, "id", 64)
        changes: dict[str, Any] = {k: body[k] for k in ("price", "stock") if k in body}
        edited = self.editor.edit(product, changes)
        return f"{product}: price {edited.price:g} {edited.currency}, stock {edited.stock}"
