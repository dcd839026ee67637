"""The face served by a real Triton Inference Server: PyTriton's ``tritonserver`` serving the
built ONNX engine as the generated repository configures it (bench/triton_face_server.py), in
a venv of its own (``STREAMBOT_TRITON_PYTHON``, default ``.triton-venv/bin/python``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.integration.test_build_engines import project  # noqa: F401  (a fixture)
from tests.integration.test_triton_repository import served  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "bench" / "triton_face_server.py"
MODEL = "wav2lip-p50"


def triton_python() -> Path:
    """The Python of the Triton venv, or a skip (a failure where CI requires Triton)."""
    path = Path(os.environ.get("STREAMBOT_TRITON_PYTHON") or ROOT / ".triton-venv/bin/python")
    why = None
    try:
        import tritonclient.http  # noqa: F401
    except ImportError:
        why = "tritonclient is not installed: pip install 'streambot[triton]'"
    if why is None and not path.is_file():
        why = (
            f"no Triton venv at {path}: /usr/bin/python3 -m venv .triton-venv && "
            ".triton-venv/bin/pip install nvidia-pytriton onnxruntime"
        )
    if why:
        if os.environ.get("STREAMBOT_REQUIRE_TRITON"):
            pytest.fail(f"a real Triton is required here: {why}")
        pytest.skip(why)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """bench/triton_face_server.py as a process, on ports of its own."""

    def __init__(self, python: Path, model_dir: Path) -> None:
        self.python, self.model_dir = python, model_dir
        self.ports = [free_port() for _ in range(3)]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.ports[0]}"

    def start(self, wait_s: float = 180.0) -> None:
        http, grpc, metrics = self.ports
        self.process = subprocess.Popen(
            [
                str(self.python),
                str(SERVER),
                str(self.model_dir),
                "--http-port",
                str(http),
                "--grpc-port",
                str(grpc),
                "--metrics-port",
                str(metrics),
                "--threads",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + wait_s
        for line in self.process.stdout:
            if line.startswith("ready "):
                return
            if time.monotonic() > deadline:
                break
        self.stop()
        raise AssertionError("the Triton server did not start")

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, 9)  # the server and its backend stubs
            self.process.wait(10)
            self.process = None

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://{self.url}/v2/models/{MODEL}/stats") as resp:
            return json.loads(resp.read())["model_stats"][0]


@pytest.fixture(scope="module")
def server(served):  # noqa: F811
    running = Server(triton_python(), served / "triton" / MODEL)
    running.start()
    yield running
    running.stop()


def batch(seed: int, frames: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "mel": rng.standard_normal((frames, 1, 80, 16), dtype=np.float32),
        "face": rng.random((frames, 6, 96, 96), dtype=np.float32),
    }


def engines(server: Server, served: Path):  # noqa: F811
    from streambot.runtime.export import WAV2LIP_INPUTS, WAV2LIP_OUTPUTS
    from streambot.runtime.onnx_engine import OnnxEngine
    from streambot.runtime.triton_engine import TritonEngine

    remote = TritonEngine(server.url, MODEL, WAV2LIP_INPUTS, WAV2LIP_OUTPUTS, timeout_s=5.0)
    return remote, OnnxEngine(served / f"{MODEL}.onnx")


@pytest.mark.slow
def test_the_served_face_draws_what_the_local_engine_draws(server, served):  # noqa: F811
    remote, local = engines(server, served)
    for seed in (0, 1):
        inputs = batch(seed, frames=5 + seed)
        assert np.abs(remote.run(inputs)["frame"] - local.run(inputs)["frame"]).max() < 1e-4


@pytest.mark.slow
def test_four_rooms_rendering_at_once_are_batched_together(server, served):  # noqa: F811
    remote, _ = engines(server, served)
    before = server.stats()
    failures: list[BaseException] = []

    def room(seed: int) -> None:
        try:
            for i in range(6):
                remote.run(batch(seed * 100 + i))
        except BaseException as exc:
            failures.append(exc)

    rooms = [threading.Thread(target=room, args=(k,)) for k in range(4)]
    for thread in rooms:
        thread.start()
    for thread in rooms:
        thread.join(120)
    assert not failures, failures
    after = server.stats()
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 4 * 6 * 8  # every frame of every room
    assert executions < 4 * 6  # fewer executions than requests: rooms shared batches
    print(f"4 rooms: {inferences} frames in {executions} executions")


@pytest.mark.slow
def test_a_server_killed_mid_stream_is_stood_in_for_and_comes_back(served):  # noqa: F811
    from streambot.circuit import CircuitBreaker
    from streambot.remote import RetryPolicy
    from streambot.runtime.triton_engine import ServedEngine

    running = Server(triton_python(), served / "triton" / MODEL)
    running.start()
    try:
        remote, local = engines(running, served)
        remote.timeout_s = 1.0
        breaker = CircuitBreaker("face server", 2, 0.5, "the local engine renders")
        engine = ServedEngine(remote, local, breaker, RetryPolicy(retries=1, backoff_base=0.01))
        inputs = batch(7)
        expected = local.run(inputs)["frame"]
        assert np.abs(engine.run(inputs)["frame"] - expected).max() < 1e-4
        assert engine.remote_batches == 1
        running.stop()
        started = time.monotonic()
        for _ in range(4):  # every batch still drawn: by the local engine
            assert np.abs(engine.run(inputs)["frame"] - expected).max() < 1e-4
        assert time.monotonic() - started < 10  # refused at once: no batch waits long
        assert engine.local_batches == 4 and engine.health()["state"] == "down"
        running.start()
        deadline = time.monotonic() + 30
        while engine.remote_batches < 2 and time.monotonic() < deadline:
            engine.run(inputs)
            time.sleep(0.2)
        assert engine.remote_batches >= 2 and engine.health()["state"] == "up"
    finally:
        running.stop()


@pytest.mark.slow
def test_the_daemons_face_renders_on_the_server_with_a_local_stand_in(server, served, project):  # noqa: F811
    import asyncio

    from streambot.config import load_config
    from streambot.face.factory import build_wav2lip_face
    from streambot.runtime.triton_engine import ServedEngine

    config = load_config(project / "config.toml")
    config.engines.dir = str(served)
    config.face.wav2lip.engine = "triton"
    config.face.wav2lip.triton.url, config.face.wav2lip.triton.model = server.url, MODEL
    face = build_wav2lip_face(config)
    assert isinstance(face.engine, ServedEngine) and face.engine.name == f"triton-{MODEL}"

    async def speak() -> list[np.ndarray]:
        pcm = np.zeros(face.samples_per_frame * 6, np.float32)
        return [frames async for frames in face.render(pcm, 0)]

    frames = np.concatenate(asyncio.run(speak()))
    assert frames.shape[0] == 6 and frames.dtype == np.uint8
    assert face.engine.remote_batches >= 1 and face.engine.local_batches == 0


@pytest.mark.slow
def test_a_face_server_that_is_down_shows_in_healthz_and_the_panel(served, project, tmp_path):  # noqa: F811
    pytest.importorskip("tritonclient.http", reason="pip install 'streambot[triton]'")
    import asyncio

    from streambot.app import App
    from streambot.config import load_config
    from streambot.panel.state import panel_state

    config = load_config(project / "config.toml")
    config.engines.dir = str(served)
    config.store.path = str(tmp_path / "store.db")
    config.face.wav2lip.engine = "triton"
    config.face.wav2lip.triton.url = f"127.0.0.1:{free_port()}"  # nothing listens there
    config.face.wav2lip.triton.retry.retries = 0
    config.face.wav2lip.triton.retry.failure_threshold = 1
    config.face.wav2lip.triton.retry.open_seconds = 300.0  # stays open while the test looks
    replay = tmp_path / "chat.jsonl"
    replay.write_text(json.dumps({"at": 0.2, "user": "ann", "text": "how much is the lamp?"}))
    config.chat.local.replay = str(replay)

    async def scenario() -> tuple[dict, dict, dict]:
        app = App(config)
        run = asyncio.create_task(app.run(600.0))
        while app.presenter is None or (app.health().get("face") or {}).get("local_batches", 0) < 1:
            assert not run.done()
            await asyncio.sleep(0.05)
        down, panel = app.health(), panel_state(app.show)
        engine = app.face.engine
        engine.breaker.record(success=True)  # the server answers again
        up = app.health()
        app.stop.set()
        await asyncio.wait_for(run, 60.0)
        return down, panel, up

    down, panel, up = asyncio.run(scenario())
    face = down["face"]
    assert not down["ok"] and face["state"] == "down" and face["breaker"] == "open"
    assert face["name"] == "triton-wav2lip-p50" and face["remote_batches"] == 0
    assert face["standing_in"].startswith(("torch", "onnxruntime"))
    assert panel["health"]["face"] == face
    assert up["face"]["state"] == "up"
