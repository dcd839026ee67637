"""Calling a remote server that streams its answer (an LLM server, a speech server): the one
retry policy, the one rule of which failures are worth another try, and the one resilient
streaming loop the remote brain and the remote voice share.

``ResilientStream`` runs attempts of a request through a ``CircuitBreaker``: it hands on what
each attempt streams; a failed attempt that streamed nothing is tried again (when the failure
is retryable, after the policy's backoff, while time is left); once something was handed on,
a failure is not retried (that would say it twice): the stream ends ``broken`` and the caller
closes what it said. When every attempt failed it ends ``failed`` and the caller's fallback
(the catalog brain, the local voice) takes over. A consumer that leaves early proves the
server works if something arrived, and nothing either way if not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from streambot.backoff import capped_exponential, equal_jitter
from streambot.circuit import CircuitBreaker

log = logging.getLogger(__name__)
T = TypeVar("T")
# Statuses worth another try besides every 5xx: timeout, conflict, too early, rate limited.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def retryable_status(status: int) -> bool:
    """Whether an HTTP error status may go away on a retry (the one rule)."""
    return status >= 500 or status in RETRYABLE_STATUS


class RemoteFailure(Exception):
    """One failed attempt; ``reason`` names what went wrong (redact secrets before logging)."""

    def __init__(self, reason: str, *, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how soon a failed request is tried again."""

    retries: int = 1
    backoff_base: float = 0.2  # seconds before the first retry (capped exponential, jittered)
    backoff_max: float = 1.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("retries and backoff must not be negative")

    def attempts(self, trial: bool) -> int:
        """A half-open breaker's trial gets one attempt; otherwise 1 + retries."""
        return 1 if trial else self.retries + 1

    def delay(self, attempt: int) -> float:
        """Seconds before attempt ``attempt`` (1 = the first retry): half fixed, half random."""
        return equal_jitter(capped_exponential(attempt - 1, self.backoff_base, self.backoff_max))


Outcome = Literal["ok", "broken", "failed", "left"]


class ResilientStream(Generic[T]):
    """``items()`` hands on the items of the first attempt that works (use it under
    ``contextlib.aclosing``, so that a consumer leaving early is accounted for at once); then
    ``outcome`` says how it ended and ``reason`` why (see the module docstring).

    ``request()`` starts one attempt (an async iterator that raises ``RemoteFailure``);
    ``time_left(delay)`` says whether a retry after ``delay`` seconds still fits the caller's
    budget (default: always); ``name`` and ``redact`` shape the log lines."""

    def __init__(
        self,
        request: Callable[[], AsyncGenerator[T, None]],
        policy: RetryPolicy,
        circuit: CircuitBreaker,
        trial: bool,
        *,
        name: str,
        time_left: Callable[[float], bool] = lambda delay: True,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.request, self.policy, self.circuit, self.trial = request, policy, circuit, trial
        self.name, self.time_left, self.redact = name, time_left, redact
        self.outcome: Outcome = "left"
        self.reason = ""
        self.handed_on = 0  # items handed on, all attempts together

    async def items(self) -> AsyncGenerator[T, None]:
        attempts = self.policy.attempts(self.trial)
        settled = False
        try:
            for attempt in range(attempts):
                if attempt:
                    delay = self.policy.delay(attempt)
                    if not self.time_left(delay):
                        self.reason += f"; no time left for retry {attempt}"
                        break
                    log.debug(
                        "%s: attempt %d failed (%s); retrying in %.2f s",
                        self.name,
                        attempt,
                        self.redact(self.reason),
                        delay,
                    )
                    await asyncio.sleep(delay)
                try:
                    async with contextlib.aclosing(self.request()) as items:
                        async for item in items:
                            self.handed_on += 1
                            yield item
                except RemoteFailure as failure:
                    self.reason = failure.reason
                    if self.handed_on:  # some of it is out: no retry, no fallback
                        self.circuit.record(success=False)
                        settled, self.outcome = True, "broken"
                        log.warning("%s broke off: %s", self.name, self.redact(self.reason))
                        return
                    if not failure.retryable:
                        break
                    continue
                self.circuit.record(success=True)
                settled, self.outcome = True, "ok"
                return
            self.circuit.record(success=False)
            settled, self.outcome = True, "failed"
            log.warning("%s failed (%s)", self.name, self.redact(self.reason))
        finally:
            if not settled:  # the consumer left early
                if self.handed_on:
                    self.circuit.record(success=True)  # what arrived proves the server works
                else:
                    self.circuit.abandon()  # silence proves nothing either way
