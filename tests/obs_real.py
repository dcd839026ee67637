"""A real OBS Studio under Xvfb for the ``obs`` integration tests and the latency benchmark.

OBS runs with its own HOME (a temporary folder), so its global.ini (the obs-websocket server:
port and password) and its scene collection are the test's own and survive a restart of the
process, as a user's do. Needs ``obs`` and ``xvfb-run`` (Debian: obs-studio, xvfb).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from streambot.stage.testcard import draw_test_card

GLOBAL_INI = """\
[General]
FirstRun=true
EnableAutoUpdates=false

[OBSWebSocket]
FirstLoad=false
ServerEnabled=true
ServerPort={port}
AuthRequired=true
ServerPassword={password}
AlertsEnabled=false
"""


def obs_available() -> str | None:
    """Why a real OBS cannot run here, or ``None`` when it can."""
    missing = [tool for tool in ("obs", "xvfb-run") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: apt install obs-studio xvfb)"
    return None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealObs:
    PASSWORD = "obs-test-password"

    def __init__(self, home: Path, password: str = PASSWORD) -> None:
        self.home = home
        self.password = password
        self.port = free_port()
        self.log_path = home / "obs.log"
        self._process: subprocess.Popen | None = None
        config = home / ".config" / "obs-studio"
        config.mkdir(parents=True, exist_ok=True)
        (config / "global.ini").write_text(GLOBAL_INI.format(port=self.port, password=password))

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 90.0) -> None:
        """Start OBS and wait until its websocket server accepts connections."""
        env = {
            **os.environ,
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "LIBGL_ALWAYS_SOFTWARE": "1",  # Mesa llvmpipe: no GPU under Xvfb
        }
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                "xvfb-run",
                "--auto-servernum",
                "--server-args=-screen 0 1280x720x24",
                "obs",
                "--multi",
                "--disable-shutdown-check",
                "--disable-missing-files-check",
                "--minimize-to-tray",
            ],
            env=env,
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group: xvfb-run, Xvfb and obs stop together
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"OBS exited at start-up; see {self.log_path}:\n{self.tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"OBS websocket not up within {timeout:.0f}s:\n{self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Quit OBS (SIGTERM, then SIGKILL if it hangs) and wait until the port is closed."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        # Stragglers of the group (Xvfb) must not hold the display or the port.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class CardFace:
    """A Face whose idle loop is the test card: frame k shows the number k."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def idle(self, index: int) -> np.ndarray:
        return draw_test_card(index % 65_536, self.width, self.height)

    async def render(self, pcm16k, start_index, visemes=None):  # never speaks
        return
        yield

    def reset(self) -> None:
        pass


class TapSink:
    """A recording sink that remembers when each frame was handed over, and the last frames."""

    name = "tap"
    live = False

    def __init__(self, keep: int = 500) -> None:
        self.sent_at: dict[int, float] = {}
        self.frames: dict[int, np.ndarray] = {}
        self._keep = keep

    def open(self, fmt) -> None:
        pass

    def write(self, index: int, frame: np.ndarray, pcm: np.ndarray) -> None:
        self.sent_at[index] = time.perf_counter()
        self.frames[index] = frame
        self.frames.pop(index - self._keep, None)

    def close(self) -> None:
        pass


class ObsProbe:
    """An independent obs-websocket client that reads back what OBS is doing."""

    def __init__(self, obs: RealObs) -> None:
        import obsws_python

        self._client = obsws_python.ReqClient(
            host="127.0.0.1", port=obs.port, password=obs.password, timeout=10
        )

    def request(self, request_type: str, data: dict | None = None) -> dict:
        return self._client.send(request_type, data, raw=True) or {}

    def program_scene(self) -> str:
        answer = self.request("GetCurrentProgramScene")
        return answer.get("sceneName") or answer["currentProgramSceneName"]

    def input_settings(self, name: str) -> dict:
        return self.request("GetInputSettings", {"inputName": name})["inputSettings"]

    def screenshot(self, source: str) -> np.ndarray | None:
        """What OBS shows for ``source`` right now, as an RGB array; ``None`` while the source
        has no picture yet (OBS answers 702, "Failed to render screenshot")."""
        from obsws_python.error import OBSSDKRequestError

        try:
            shot = self.request("GetSourceScreenshot", {"sourceName": source, "imageFormat": "png"})
        except OBSSDKRequestError as e:
            if e.code == 702:
                return None
            raise
        data = shot["imageData"].partition("base64,")[2]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.disconnect()
