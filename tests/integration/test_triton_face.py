"""The face served by a real Triton Inference Server: PyTriton's ``tritonserver`` serving the
built ONNX engine as the generated repository configures it (bench/triton_face_server.py), in
a venv of its own (``STREAMBOT_TRITON_PYTHON``, default ``.triton-venv/bin/python``)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bench.triton_face_server import TritonProcess, free_port
from tests.integration.test_build_engines import project  # noqa: F401  (a fixture)
from tests.integration.test_triton_repository import served  # noqa: F401  (a fixture)

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.fixture(scope="module")
def server(served):  # noqa: F811
    running = TritonProcess(triton_python(), served / "triton" / MODEL)
    running.start()
    yield running
    running.stop()


def batch(seed: int, frames: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "mel": rng.standard_normal((frames, 1, 80, 16), dtype=np.float32),
        "face": rng.random((frames, 6, 96, 96), dtype=np.float32),
    }


def remote_engine(server: TritonProcess, model: str = MODEL, shared_memory="auto"):
    from streambot.runtime.export import WAV2LIP_INPUTS, WAV2LIP_OUTPUTS
    from streambot.runtime.triton_engine import TritonEngine

    return TritonEngine(
        server.url,
        model,
        WAV2LIP_INPUTS,
        WAV2LIP_OUTPUTS,
        timeout_s=5.0,
        shared_memory=shared_memory,
    )


def engines(server: TritonProcess, served: Path, model: str = MODEL, shared_memory="auto"):  # noqa: F811
    """The model on the server, and its engine run here."""
    from streambot.runtime.onnx_engine import OnnxEngine

    remote = remote_engine(server, model, shared_memory)
    return remote, OnnxEngine(served / f"{model}.onnx")


def served_face_config(project: Path, served: Path, url: str):  # noqa: F811
    """The project's config with its Wav2Lip face served by Triton at ``url`` (MODEL)."""
    from streambot.config import load_config

    config = load_config(project / "config.toml")
    config.engines.dir = str(served)
    config.face.wav2lip.engine = "triton"
    config.face.wav2lip.triton.url, config.face.wav2lip.triton.model = url, MODEL
    return config


def shared_regions(server: TritonProcess) -> list[str]:
    """The system shared memory regions the server has mapped."""
    with urllib.request.urlopen(f"http://{server.url}/v2/systemsharedmemory/status") as resp:
        return [region["name"] for region in json.loads(resp.read())]


@pytest.mark.slow
@pytest.mark.parametrize("shared_memory", ["auto", "off"])
def test_the_served_face_draws_what_the_local_engine_draws(server, served, shared_memory):  # noqa: F811
    before = set(shared_regions(server))
    remote, local = engines(server, served, shared_memory=shared_memory)
    for seed in (0, 1):
        inputs = batch(seed, frames=5 + seed)
        assert np.abs(remote.run(inputs)["frame"] - local.run(inputs)["frame"]).max() < 1e-4
    # on this host the frames went through shared memory the server mapped; "off": the wire
    mapped = set(shared_regions(server)) - before
    assert bool(mapped) == (shared_memory == "auto"), mapped
    assert all(name.startswith("streambot-face-") for name in mapped)


@pytest.mark.slow
def test_the_fp16_model_takes_half_the_bytes_and_draws_what_its_engine_draws(served):  # noqa: F811
    model = f"{MODEL}-fp16"
    running = TritonProcess(triton_python(), served / "triton" / model)
    running.start()
    try:
        for shared_memory in ("off", "auto"):
            remote, local = engines(running, served, model, shared_memory)
            inputs = batch(3, frames=4)
            frames = remote.run(inputs)["frame"]
            assert frames.dtype == np.float32  # what every engine gives its face
            assert np.abs(frames - local.run(inputs)["frame"]).max() < 2e-3  # fp16's step
            assert remote.model_wire().types == {"mel": "FP16", "face": "FP16", "frame": "FP16"}
    finally:
        running.stop()


@pytest.mark.slow
def test_a_request_the_server_refuses_is_not_retried_but_a_dead_server_is(server, served):  # noqa: F811
    from streambot.remote import RemoteFailure

    unknown = remote_engine(server, model="no-such-model")
    with pytest.raises(RemoteFailure, match="no-such-model") as refused:
        unknown.run(batch(0))
    assert not refused.value.retryable  # asking again changes nothing: the local engine draws
    dead = TritonProcess(triton_python(), served / "triton" / MODEL)  # never started
    remote = remote_engine(dead)
    with pytest.raises(RemoteFailure) as down:
        remote.run(batch(0))
    assert down.value.retryable


@pytest.mark.slow
def test_four_rooms_rendering_at_once_are_batched_together(server, served):  # noqa: F811
    remote, _ = engines(server, served)
    before = server.stats(MODEL)
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
    after = server.stats(MODEL)
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == 4 * 6 * 8  # every frame of every room
    assert executions < 4 * 6  # fewer executions than requests: rooms shared batches
    print(f"4 rooms: {inferences} frames in {executions} executions")


@pytest.mark.slow
def test_a_server_killed_mid_stream_is_stood_in_for_and_comes_back(served):  # noqa: F811
    from streambot.circuit import CircuitBreaker
    from streambot.remote import RetryPolicy
    from streambot.runtime.served import ServedEngine

    running = TritonProcess(triton_python(), served / "triton" / MODEL)
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

    from streambot.face.factory import build_wav2lip_face
    from streambot.runtime.served import ServedEngine

    config = served_face_config(project, served, server.url)
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
    from streambot.panel.state import panel_state

    config = served_face_config(project, served, f"127.0.0.1:{free_port()}")  # nothing there
    config.store.path = str(tmp_path / "store.db")
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


class EndedTurns:
    """The turns of a run as they end, with their outcomes."""

    def __init__(self) -> None:
        self.ended: list = []

    def turn_started(self, turn) -> None:
        pass

    def first_frame(self, turn) -> None:
        pass

    def sentence_spoken(self, turn, sentence) -> None:
        pass

    def turn_ended(self, turn) -> None:
        self.ended.append(turn)


@pytest.mark.slow
def test_a_server_killed_mid_turn_never_stalls_the_presenter(served, project, tmp_path):  # noqa: F811
    import asyncio

    from streambot.app import App
    from streambot.turn import Outcome

    running = TritonProcess(triton_python(), served / "triton" / MODEL)
    running.start()
    config = served_face_config(project, served, running.url)
    config.store.path = str(tmp_path / "store.db")
    config.stream.realtime = True  # the presenter on the wall clock, as on air
    triton = config.face.wav2lip.triton
    triton.timeout_s = 5.0
    triton.retry.retries, triton.retry.failure_threshold, triton.retry.open_seconds = 0, 1, 1.0
    questions = ["Tell me all about the lamp, please.", "How much is the thermo bottle?"]
    rows = [{"at": 0.2 + 10 * i, "user": f"v{i}", "text": questions[i % 2]} for i in range(6)]
    replay = tmp_path / "chat.jsonl"
    replay.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    config.chat.local.replay = str(replay)
    turns = EndedTurns()
    gaps: list[float] = []

    async def watch_frames(app: App) -> None:
        """The waits between frames the presenter handed on."""
        last_frames, last_at = 0, time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            frames = app.presenter.stats.frames if app.presenter else 0
            if frames != last_frames:
                now = time.monotonic()
                if last_frames:
                    gaps.append(now - last_at)
                last_frames, last_at = frames, now

    async def until(condition, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)

    async def scenario() -> tuple[int, int]:
        app = App(config, turn_observers=[turns])
        run = asyncio.create_task(app.run(300.0))
        watcher = asyncio.create_task(watch_frames(app))
        try:
            await until(lambda: app.face is not None and app.face.engine.remote_batches >= 2, 120)
            await asyncio.to_thread(running.stop)  # killed while it draws a turn
            engine = app.face.engine
            await until(lambda: engine.local_batches >= 1, 60)
            await asyncio.to_thread(running.start)
            served_before = engine.remote_batches
            await until(lambda: engine.remote_batches > served_before, 90)  # it came back
            await until(lambda: len(turns.ended) >= 2, 90)
            return engine.local_batches, engine.remote_batches
        finally:
            watcher.cancel()
            app.stop.set()
            await asyncio.wait_for(run, 60.0)

    try:
        local, remote = asyncio.run(scenario())
    finally:
        running.stop()
    assert local >= 1 and remote >= 3
    # the turn the kill cut into played to its end: the local engine drew what the dead
    # server could not, and so did the turn after it
    assert [t.outcome for t in turns.ended[:2]] == [Outcome.PLAYED, Outcome.PLAYED]
    # the presenter kept its clock throughout: no wait near the server's 5 s timeout
    assert gaps and max(gaps) < 2.0, max(gaps)
    print(f"local {local} remote {remote} batches; longest frame gap {max(gaps) * 1000:.0f} ms")


@pytest.mark.slow
def test_the_doctor_checks_the_face_server_and_warns_when_it_is_down(server, served, project):  # noqa: F811
    from streambot.doctor import run_checks

    config = served_face_config(project, served, server.url)
    (check,) = [c for c in run_checks(config) if c.name == "face server"]
    assert check.ok and f"serves {MODEL}: FP32 tensors" in check.detail, check.detail
    config.face.wav2lip.triton.url = f"127.0.0.1:{free_port()}"  # nothing listens there
    (down,) = [c for c in run_checks(config) if c.name == "face server"]
    assert not down.ok and not down.required  # a warning: the local engine stands in
