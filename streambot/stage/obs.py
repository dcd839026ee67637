"""OBS control over obs-websocket v5 (via obsws-python): scenes, caption, product image.

obsws-python's ``ReqClient`` is synchronous, has no reconnect, and reads "the next message" as
the answer to a request (it does not match request ids). So:

* every request runs in a worker thread (``asyncio.to_thread``), one at a time, with the
  client's own socket ``timeout`` plus an outer guard, so a stalled OBS never blocks the loop;
* a request that times out or fails at the transport level drops the connection (a late
  answer would otherwise be read as the answer to the next request);
* a background task (re)connects with capped exponential backoff and jitter, pings OBS to
  notice it going away, and re-applies the desired scene / caption / product image after every
  (re)connect. OBS being down or restarted never raises into ``set_state``.

obsws-python logs the password at INFO ("Connecting with parameters: ... password='...'") and its
``repr`` shows it, and it logs expected failures with tracebacks: its loggers are silenced here and
our own messages are scrubbed of the password.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from streambot.backoff import Backoff
from streambot.stage.obs_scenes import (
    MEDIA_KIND,
    ObsRequestFailed,
    ObsScenes,
    ObsSetupReport,
    SceneSetup,
    State,
    media_settings,
)
from streambot.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_QUIET_LOGGERS = ("obsws_python",)


def silence_obsws_logging() -> None:
    """obsws-python logs the password at INFO and tracebacks for expected failures: mute it."""
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.CRITICAL:
            logger.setLevel(logging.CRITICAL)


class ObsUnavailable(Exception):
    """OBS is not connected (or the connection just broke); the reason says why."""


def _make_client(host: str, port: int, password: str, timeout: float) -> Any:
    """Connect and identify (blocking: run in a thread). Closes the socket if identify fails."""
    from obsws_python import ReqClient

    class _Client(ReqClient):
        def __init__(self, **kwargs: Any) -> None:
            try:
                super().__init__(**kwargs)
            except BaseException:
                base = getattr(self, "base_client", None)
                if base is not None:
                    with contextlib.suppress(Exception):
                        base.ws.shutdown()
                raise

        def __repr__(self) -> str:  # the stock repr prints the password
            return f"ObsClient({host}:{port})"

    # host/port/password always given: with none of them obsws-python reads ./config.toml.
    return _Client(host=host, port=port, password=password, timeout=timeout)


def _close_client(client: Any, timeout: float) -> None:
    ws = client.base_client.ws
    try:
        ws.close(timeout=timeout)
    except Exception:
        with contextlib.suppress(Exception):
            ws.shutdown()


def _discard_late_client(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is None:
        with contextlib.suppress(Exception):
            future.result().base_client.ws.shutdown()


class ObsController:
    """Drives OBS's program scene, caption text and product image; survives OBS restarts."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 4455,
        password: SecretStr | None = None,
        timeout: float = 3.0,
        scenes: ObsScenes | None = None,
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        health_interval: float = 5.0,
        rng: Callable[[], float] = random.random,
        stream_url: str | None = None,
    ) -> None:
        silence_obsws_logging()
        self.host = host
        self.port = port
        self._password = password
        self.timeout = timeout
        self.scenes = scenes or ObsScenes.from_config()
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.health_interval = health_interval
        self._rng = rng
        self._client: Any = None
        self._lock = asyncio.Lock()  # one request at a time on the one socket
        self._apply_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._connected_event = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._desired: dict[str, str] = {}  # "stream" / "product" / "caption" / "scene"
        if stream_url:
            # Re-checked on every (re)connect: an OBS that crashed may come back with an older
            # scene collection whose Media Source plays some other URL.
            self._desired["stream"] = stream_url
        self._applied: dict[str, str] = {}
        self.last_error = ""
        self.platform = ""
        self.version: dict[str, Any] = {}
        self.reconnects = 0

    # --- public API ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def desired(self) -> dict[str, str]:
        """The state that is (or will be, once OBS is back) applied."""
        return dict(self._desired)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start the background (re)connect loop; returns at once (OBS may still be down)."""
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="obs-controller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await cancel_and_wait([task])  # one cancel can be lost on 3.11 (see tasks.py)
        async with self._lock:
            client, self._client = self._client, None
            self._connected_event.clear()
        if client is not None:
            await asyncio.to_thread(_close_client, client, min(self.timeout, 1.0))

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def set_state(
        self, state: State, caption: str | None = None, product_image: str | None = None
    ) -> bool:
        """Switch to ``state``'s scene; ``caption`` / ``product_image`` of ``None`` leave them as
        they are. Never raises for OBS trouble: while OBS is down the state is remembered and
        applied on reconnect. Returns whether everything was applied now."""
        scene = self.scenes.scene_for(state)
        if product_image is not None:
            self._desired["product"] = product_image
        if caption is not None:
            self._desired["caption"] = caption
        self._desired["scene"] = scene
        if not self.connected:
            return False
        try:
            await self._apply_pending()
        except ObsUnavailable:
            return False
        return self._desired == self._applied

    async def setup(self, stream_url: str, product_image: str | None = None) -> ObsSetupReport:
        """Create the scenes and sources streambot needs; existing ones are left alone (the
        media source's settings are refreshed). Safe to run again."""
        report = ObsSetupReport()
        try:
            await self._ensure_connected()
            await self._setup(report, stream_url, product_image)
        except ObsUnavailable as e:
            report.errors.append(f"OBS not reachable at {self.url}: {e}")
        return report

    async def check(self) -> list[tuple[str, bool, str]]:
        """For ``doctor``: connectivity, version, and every scene / source with its kind."""
        results: list[tuple[str, bool, str]] = []
        try:
            await self._ensure_connected()
            version = await self._request("GetVersion")
        except ObsUnavailable as e:
            results.append(("obs connection", False, f"{self.url}: {e}"))
            return results
        results.append(("obs connection", True, self.url))
        ws_version = str(version.get("obsWebSocketVersion", "?"))
        major = _major(ws_version)
        results.append(
            (
                "obs-websocket version",
                major >= 5,
                f"obs-websocket {ws_version}, OBS {version.get('obsVersion', '?')}"
                + ("" if major >= 5 else " (need obs-websocket 5 or newer)"),
            )
        )
        try:
            found, have_inputs = await self._scene_setup().check()
        except (ObsUnavailable, ObsRequestFailed) as e:
            results.append(("obs scenes and sources", False, str(e)))
            return results
        results += found
        want_url = self._desired.get("stream")
        if want_url and have_inputs.get(self.scenes.stream) == MEDIA_KIND:
            try:
                have_url = (await self._media_source_settings()).get("input", "")
            except (ObsUnavailable, ObsRequestFailed) as e:
                results.append(("media source input", False, str(e)))
                return results
            results.append(
                (
                    f"source {self.scenes.stream!r} input",
                    have_url == want_url,
                    have_url
                    if have_url == want_url
                    else f"plays {have_url or 'nothing'}, expected {want_url} (run obs setup)",
                )
            )
        return results

    async def screenshot(
        self, source: str | None = None, image_format: str = "png", width: int | None = None
    ) -> bytes | None:
        """A still of ``source`` (default: the program scene) as image bytes; ``None`` when OBS
        is unavailable or refuses."""
        import base64

        try:
            if source is None:
                current = await self._request("GetCurrentProgramScene")
                source = current.get("sceneName") or current.get("currentProgramSceneName")
            data: dict[str, Any] = {"sourceName": source, "imageFormat": image_format}
            if width is not None:
                data["imageWidth"] = width
            shot = await self._request("GetSourceScreenshot", data)
        except (ObsUnavailable, ObsRequestFailed) as e:
            log.debug("OBS screenshot failed: %s", e)
            return None
        image = str(shot.get("imageData", ""))
        return base64.b64decode(image.partition("base64,")[2] or image)

    # --- connection --------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        if self._password is not None:
            secret = self._password.get_secret_value()
            if secret:
                text = text.replace(secret, "***")
        return text

    def _reason(self, exc: BaseException) -> str:
        """A clear, password-free reason for a failed connect or request."""
        from obsws_python.error import OBSSDKError, OBSSDKTimeoutError

        text = str(exc)
        if isinstance(exc, ConnectionRefusedError):
            reason = "connection refused (is OBS running with its WebSocket server enabled?)"
        elif isinstance(exc, OBSSDKTimeoutError | TimeoutError) or "timed out" in text.lower():
            reason = f"no answer within {self.timeout:g}s"
        elif isinstance(exc, OBSSDKError) and "no password provided" in text:
            reason = "OBS requires a password but none is configured"
        elif isinstance(exc, OBSSDKError) and "failed to identify" in text:
            reason = (
                "authentication failed: OBS rejected the password"
                if self._password is not None
                else "OBS closed the connection during identification"
            )
        elif isinstance(exc, json.JSONDecodeError) or "connection" in text.lower():
            reason = "OBS closed the connection"
        elif isinstance(exc, OSError):
            reason = f"cannot connect: {text or type(exc).__name__}"
        else:
            reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return self._scrub(reason)

    async def _connect(self) -> None:
        """One connect + identify attempt; raises ``ObsUnavailable`` with the reason."""
        password = self._password.get_secret_value() if self._password is not None else ""
        future = asyncio.ensure_future(
            asyncio.to_thread(_make_client, self.host, self.port, password, self.timeout)
        )
        try:
            client = await asyncio.wait_for(asyncio.shield(future), 3 * self.timeout + 1)
        except asyncio.CancelledError:
            future.add_done_callback(_discard_late_client)
            raise
        except Exception as e:
            if not future.done():  # the outer guard fired; the thread is still connecting
                future.add_done_callback(_discard_late_client)
                raise ObsUnavailable(f"no answer within {self.timeout:g}s") from None
            raise ObsUnavailable(self._reason(e)) from None
        async with self._lock:
            old, self._client = self._client, client
            self._applied.clear()  # OBS may have restarted: re-apply everything desired
        if old is not None:
            await asyncio.to_thread(_close_client, old, 0.1)
        try:
            version = await self._request("GetVersion")
        except ObsRequestFailed as e:
            version = {}
            log.warning("OBS GetVersion failed: %s", e)
        self.version = version or {}
        self.platform = str(self.version.get("platform", ""))
        self.last_error = ""
        self._connected_event.set()

    async def _ensure_connected(self) -> None:
        if self.connected:
            return
        if self._task is not None and not self._task.done():
            if await self.wait_connected(3 * self.timeout + 1):
                return
            raise ObsUnavailable(self.last_error or "not connected")
        await self._connect()

    async def _drop(self, client: Any, reason: str) -> None:
        """Forget a broken connection (caller holds ``_lock``) and wake the reconnect loop."""
        if self._client is client:
            self._client = None
            self._connected_event.clear()
            self.last_error = reason
            log.warning("OBS connection lost (%s); will reconnect", reason)
            self._wake.set()
        with contextlib.suppress(Exception):
            client.base_client.ws.shutdown()  # unblocks a thread still stuck in recv

    async def _run(self) -> None:
        backoff = Backoff(self.backoff_initial, self.backoff_max, rng=self._rng)
        while not self._stopping:
            if self._client is None:
                try:
                    await self._connect()
                except ObsUnavailable as e:
                    reason = str(e)
                    delay = backoff.next_delay()
                    if reason != self.last_error:
                        log.warning(
                            "OBS at %s unavailable: %s; retrying in %.1fs", self.url, reason, delay
                        )
                    else:
                        log.debug("OBS still unavailable: %s; retrying in %.1fs", reason, delay)
                    self.last_error = reason
                    await asyncio.sleep(delay)
                    continue
                if backoff.attempt:
                    self.reconnects += 1
                backoff.reset()
                log.info(
                    "connected to OBS at %s (obs-websocket %s, OBS %s, %s)",
                    self.url,
                    self.version.get("obsWebSocketVersion", "?"),
                    self.version.get("obsVersion", "?"),
                    self.platform or "unknown platform",
                )
            self._wake.clear()
            try:
                await self._apply_pending()
            except ObsUnavailable:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), self.health_interval)
            except TimeoutError:
                with contextlib.suppress(ObsUnavailable, ObsRequestFailed):
                    await self._request("GetVersion")  # liveness: notices OBS going away

    # --- requests ----------------------------------------------------------------------------

    async def _request(self, request_type: str, data: dict[str, Any] | None = None) -> dict:
        """One request; ``ObsRequestFailed`` for an error status, ``ObsUnavailable`` (and the
        connection dropped) for anything else."""
        from obsws_python.error import OBSSDKRequestError

        async with self._lock:
            client = self._client
            if client is None:
                raise ObsUnavailable(self.last_error or "not connected")
            try:
                result = await asyncio.wait_for(
                    asyncio.to_thread(client.send, request_type, data, True),
                    self.timeout + 1.0,
                )
            except OBSSDKRequestError as e:
                comment = str(e).partition("With message: ")[2]
                raise ObsRequestFailed(request_type, e.code, comment) from None
            except (Exception, asyncio.CancelledError) as e:
                reason = (
                    self._reason(e) if not isinstance(e, asyncio.CancelledError) else "cancelled"
                )
                await self._drop(client, f"{request_type}: {reason}")
                if isinstance(e, asyncio.CancelledError):
                    raise
                raise ObsUnavailable(reason) from None
        return result or {}

    async def _apply_pending(self) -> None:
        async with self._apply_lock:
            for key in ("stream", "product", "caption", "scene"):
                want = self._desired.get(key)
                if want is None or self._applied.get(key) == want:
                    continue
                if key == "stream":
                    await self._point_media_source_at(want)
                    self._applied[key] = want
                    continue
                if key == "scene":
                    request, data = "SetCurrentProgramScene", {"sceneName": want}
                else:
                    source = self.scenes.product if key == "product" else self.scenes.caption
                    setting = "file" if key == "product" else "text"
                    request = "SetInputSettings"
                    data = {"inputName": source, "inputSettings": {setting: want}, "overlay": True}
                try:
                    await self._request(request, data)
                except ObsRequestFailed as e:
                    log.warning("OBS could not set the %s: %s (run obs setup?)", key, e)
                self._applied[key] = want  # also on a refusal: retried on the next reconnect

    async def _point_media_source_at(self, url: str) -> None:
        """Make the Media Source play ``url``; left alone when it already does, because
        changing its settings restarts playback (a visible hiccup)."""
        source = self.scenes.stream
        try:
            have = await self._media_source_settings()
            if have.get("input") == url and have.get("is_local_file") is False:
                return
            await self._request(
                "SetInputSettings",
                {"inputName": source, "inputSettings": media_settings(url), "overlay": True},
            )
            log.info("OBS Media Source %r now plays %s", source, url)
        except ObsRequestFailed as e:
            log.warning("OBS Media Source %r cannot play the stream: %s (obs setup?)", source, e)

    async def _media_source_settings(self) -> dict[str, Any]:
        answer = await self._request("GetInputSettings", {"inputName": self.scenes.stream})
        return answer.get("inputSettings", {})

    async def _setup(
        self, report: ObsSetupReport, stream_url: str, product_image: str | None
    ) -> None:
        caption = self._desired.get("caption", "")
        await self._scene_setup().run(report, stream_url, product_image, caption)
        if product_image is not None:
            self._desired["product"] = product_image
            self._applied["product"] = product_image
        if self._desired.get("stream") == stream_url:
            self._applied["stream"] = stream_url

    def _scene_setup(self) -> SceneSetup:
        return SceneSetup(self._request, self.scenes, self.platform)


def _major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError:
        return 0
