"""ServedEngine's policy: which failures of the server earn a retry, and that every batch is
drawn (by the local engine when the server cannot)."""

from __future__ import annotations

import numpy as np

from streambot.circuit import CircuitBreaker
from streambot.remote import RemoteFailure, RetryPolicy
from streambot.runtime.served import ServedEngine

INPUTS = {"mel": np.zeros((2, 1, 80, 16), np.float32)}


class Failing:
    """A remote engine whose every call fails with ``failure`` (counted)."""

    name = "triton-face"

    def __init__(self, failure: Exception) -> None:
        self.failure, self.calls = failure, 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        raise self.failure


class Local:
    name = "onnxruntime-cpu"

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"frame": np.ones((inputs["mel"].shape[0], 3, 96, 96), np.float32)}


def served(remote: Failing) -> ServedEngine:
    breaker = CircuitBreaker("face server", 5, 30.0, "the local engine renders")
    return ServedEngine(remote, Local(), breaker, RetryPolicy(retries=2, backoff_base=0.0))


def test_a_dead_server_is_tried_again_before_the_local_engine_draws():
    remote = Failing(RemoteFailure("ConnectionRefusedError: refused", retryable=True))
    engine = served(remote)
    assert engine.run(INPUTS)["frame"].shape == (2, 3, 96, 96)
    assert remote.calls == 3 and engine.local_batches == 1


def test_a_request_the_server_refuses_as_it_is_goes_to_the_local_engine_at_once():
    remote = Failing(RemoteFailure("InferenceServerException: unknown model", retryable=False))
    engine = served(remote)
    assert engine.run(INPUTS)["frame"].shape == (2, 3, 96, 96)
    assert remote.calls == 1 and engine.local_batches == 1
    assert engine.health()["local_batches"] == 1
