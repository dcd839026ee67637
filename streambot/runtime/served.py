"""A remote engine with a local one standing in while the server cannot answer.

``ServedEngine`` puts a remote engine (Triton's) behind the project's circuit breaker and retry
policy: a batch the server fails (after the retries a retryable failure earns) or that comes
while the breaker is open is rendered locally, so the stream never waits on a dead server, and
the next trial after ``open_seconds`` brings the server back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from streambot.circuit import CircuitBreaker
from streambot.remote import RemoteFailure, RetryPolicy
from streambot.runtime.base import Engine

log = logging.getLogger(__name__)


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
                    if isinstance(exc, RemoteFailure) and exc.retryable:
                        continue
                    break  # a request the server refuses as it is: the local engine renders it
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
