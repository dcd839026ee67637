"""The Engine role on a Triton Inference Server (the KServe v2 protocol, over HTTP or gRPC).

Each call sends one batch's inputs and reads its outputs: the server keeps nothing of a
stream, so any replica behind a load balancer can serve any room, and the server's dynamic
batcher joins the batches of many rooms into one execution. A client is made per thread
(tritonclient's clients are not to be shared across threads; the face renders on worker
threads). ``priority``: Triton's priority level of these requests (1 before 2, when the model
enables two levels, as the generated repository does).

``ServedEngine`` puts the remote engine behind the project's circuit breaker and retry policy
with a local engine standing in: a batch the server fails (after the retries) or that comes
while the breaker is open is rendered locally, so the stream never waits on a dead server, and
the next trial after ``open_seconds`` brings the server back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Literal

import numpy as np

from streambot.circuit import CircuitBreaker
from streambot.remote import RetryPolicy
from streambot.runtime.base import Engine, EngineError

log = logging.getLogger(__name__)
WireProtocol = Literal["http", "grpc"]


class TritonEngine:
    def __init__(
        self,
        url: str,
        model: str,
        inputs: tuple[str, ...],
        outputs: tuple[str, ...],
        *,
        protocol: WireProtocol = "http",
        timeout_s: float = 1.0,
        priority: int = 0,
    ) -> None:
        try:
            if protocol == "grpc":
                import tritonclient.grpc as client_module
            else:
                import tritonclient.http as client_module
        except ImportError as exc:
            raise EngineError(
                f"the Triton face needs tritonclient: pip install 'streambot[triton]' ({exc})"
            ) from exc
        self.client_module: Any = client_module
        self.url, self.model, self.protocol = url, model, protocol
        self.input_names, self.output_names = inputs, outputs
        self.timeout_s, self.priority = timeout_s, priority
        self.name = f"triton-{model}"
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                client = self.client_module.InferenceServerClient(self.url)
            else:
                client = self.client_module.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
            self._local.client = client
        return client

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        module, grpc = self.client_module, self.protocol == "grpc"
        requests = []
        for name in self.input_names:
            array = np.ascontiguousarray(inputs[name], np.float32)
            request = module.InferInput(name, list(array.shape), "FP32")
            if grpc:
                request.set_data_from_numpy(array)
            else:
                request.set_data_from_numpy(array, binary_data=True)
            requests.append(request)
        wanted = [
            module.InferRequestedOutput(name) if grpc else module.InferRequestedOutput(name, True)
            for name in self.output_names
        ]
        options: dict[str, Any] = {"priority": self.priority}
        if grpc:
            options["client_timeout"] = self.timeout_s
        result = self._client().infer(self.model, requests, outputs=wanted, **options)
        return {name: result.as_numpy(name) for name in self.output_names}


class ServedEngine:
    """A remote engine with a local one standing in while the server cannot answer."""

    def __init__(
        self, remote: Engine, local: Engine, breaker: CircuitBreaker, policy: RetryPolicy
    ) -> None:
        self.remote, self.local, self.breaker, self.policy = remote, local, breaker, policy
        self.name = remote.name
        self.remote_batches = 0  # batches the server rendered
        self.local_batches = 0  # batches the local engine rendered in its place
        self._said: str | None = None  # the failure last logged, so an outage is said once
        self._lock = threading.Lock()  # the breaker's counts, from several render threads

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            admitted, trial = self.breaker.admit()
        if admitted:
            failure: Exception | None = None
            for attempt in range(self.policy.attempts(trial)):
                if attempt:
                    time.sleep(self.policy.delay(attempt))
                try:
                    outputs = self.remote.run(inputs)
                except Exception as exc:  # refused, timed out, or the server's own error
                    failure = exc
                    continue
                with self._lock:
                    self.breaker.record(success=True)
                    self.remote_batches += 1
                    self._said = None
                return outputs
            with self._lock:
                self.breaker.record(success=False)
            self._say(failure)
        with self._lock:
            self.local_batches += 1
        return self.local.run(inputs)

    def _say(self, failure: Exception | None) -> None:
        reason = f"{type(failure).__name__}: {failure}"[:300]
        if reason != self._said:
            self._said = reason
            log.warning(
                "face server %s failed a batch (%s); the local engine %s renders meanwhile",
                self.remote.name,
                reason,
                self.local.name,
            )

    def health(self) -> dict[str, Any]:
        """The figures /healthz and the panel show: the server's state and who renders."""
        state = self.breaker.state
        return {
            "name": self.remote.name,
            "state": "up" if state == "closed" else "down",
            "breaker": state,
            "remote_batches": self.remote_batches,
            "local_batches": self.local_batches,
            "standing_in": self.local.name,
        }
