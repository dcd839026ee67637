"""A circuit breaker for a remote service the stream can do without (an LLM or TTS server).

Closed: every call goes to the server. After ``failure_threshold`` failures in a row it opens
for ``open_seconds``: calls go straight to the local fallback, so a dead server costs no
latency. Then one trial call is let through (half-open): its success closes the circuit, its
failure opens it again for another ``open_seconds``.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

log = logging.getLogger(__name__)

CircuitState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int, open_seconds: float, fallback: str):
        """``name`` and ``fallback`` name the server and what stands in for it, in the log."""
        if failure_threshold < 1 or open_seconds < 0:
            raise ValueError("failure_threshold >= 1 and open_seconds >= 0 are required")
        self.name, self.fallback = name, fallback
        self.failure_threshold, self.open_seconds = failure_threshold, open_seconds
        self.failures = 0  # calls the server failed, ever
        self.consecutive_failures = 0  # the current run of them
        self._opened_at: float | None = None  # monotonic instant the circuit opened
        self._trial_running = False

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at < self.open_seconds:
            return "open"
        return "half-open"

    def admit(self) -> tuple[bool, bool]:
        """(may this call contact the server, is it the half-open trial)."""
        state = self.state
        if state == "closed":
            return True, False
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True, True
        return False, False

    def abandon(self) -> None:
        """The call ended without proving anything either way (the caller left early)."""
        self._trial_running = False

    def record(self, *, success: bool) -> None:
        was_trial, self._trial_running = self._trial_running, False
        if success:
            if self._opened_at is not None:
                log.info("%s circuit closed: the server answered again", self.name)
            self._opened_at = None
            self.consecutive_failures = 0
            return
        self.failures += 1
        self.consecutive_failures += 1
        if was_trial or (
            self._opened_at is None and self.consecutive_failures >= self.failure_threshold
        ):
            self._opened_at = time.monotonic()
            log.warning(
                "%s circuit open for %.0f s after %d failures; %s meanwhile",
                self.name,
                self.open_seconds,
                self.consecutive_failures,
                self.fallback,
            )
