"""The one resilient streaming loop of remote calls (streambot/remote.py), which the OpenAI
brain and the HTTP voice share: retries, what is retryable, broken streams, the breaker."""

import asyncio
import contextlib

import pytest

from streambot.circuit import CircuitBreaker
from streambot.remote import RemoteFailure, ResilientStream, RetryPolicy, retryable_status

FAST = RetryPolicy(retries=2, backoff_base=0.001, backoff_max=0.002)


class Server:
    """Each attempt plays the next script: items to stream, then an error or a clean end."""

    def __init__(self, *scripts: tuple[list[str], RemoteFailure | None]) -> None:
        self.scripts, self.calls = list(scripts), 0

    async def request(self):
        items, failure = self.scripts[min(self.calls, len(self.scripts) - 1)]
        self.calls += 1
        for item in items:
            yield item
        if failure is not None:
            raise failure


def breaker() -> CircuitBreaker:
    return CircuitBreaker("test", failure_threshold=5, open_seconds=30, fallback="-")


async def run(server: Server, policy: RetryPolicy = FAST, **kwargs) -> tuple[list, ResilientStream]:
    circuit = kwargs.pop("circuit", breaker())
    stream = ResilientStream(server.request, policy, circuit, False, name="test", **kwargs)
    async with contextlib.aclosing(stream.items()) as items:
        got = [item async for item in items]
    return got, stream


def test_the_one_retryable_status_rule():
    assert all(retryable_status(s) for s in (500, 502, 503, 408, 409, 425, 429))
    assert not any(retryable_status(s) for s in (400, 401, 403, 404, 422))


def test_the_retry_policy_gives_a_trial_one_attempt_and_bounded_jittered_delays():
    policy = RetryPolicy(retries=3, backoff_base=0.2, backoff_max=1.0)
    assert policy.attempts(trial=True) == 1 and policy.attempts(trial=False) == 4
    for attempt in (1, 2, 3, 10):
        assert 0 < policy.delay(attempt) <= 1.0
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


async def test_a_failure_before_anything_arrived_is_retried_and_the_retry_streams():
    server = Server(([], RemoteFailure("HTTP 503")), (["Hi", " there"], None))
    circuit = breaker()
    got, stream = await run(server, circuit=circuit)
    assert got == ["Hi", " there"] and stream.outcome == "ok" and server.calls == 2
    assert circuit.consecutive_failures == 0


async def test_a_failure_after_something_arrived_is_broken_never_retried():
    server = Server((["Hi"], RemoteFailure("connection lost")), (["again"], None))
    circuit = breaker()
    got, stream = await run(server, circuit=circuit)
    assert got == ["Hi"] and stream.outcome == "broken" and server.calls == 1
    assert stream.reason == "connection lost" and circuit.consecutive_failures == 1


async def test_every_attempt_failing_ends_failed_and_a_non_retryable_one_stops_at_once():
    got, stream = await run(Server(([], RemoteFailure("HTTP 502"))))
    assert got == [] and stream.outcome == "failed"
    server = Server(([], RemoteFailure("HTTP 401", retryable=False)))
    got, stream = await run(server)
    assert stream.outcome == "failed" and server.calls == 1


async def test_no_retry_past_the_callers_time_budget():
    server = Server(([], RemoteFailure("slow")))
    _, stream = await run(server, time_left=lambda delay: False)
    assert stream.outcome == "failed" and server.calls == 1
    assert "no time left for retry 1" in stream.reason


async def test_a_consumer_that_leaves_after_something_came_proves_the_server_works():
    circuit = breaker()
    circuit.record(success=False)  # a failure before
    stream = ResilientStream(Server((["Hi", "more"], None)).request, FAST, circuit, False, name="t")
    async with contextlib.aclosing(stream.items()) as got:
        async for _ in got:
            break  # the host interrupts the turn
    assert stream.outcome == "left" and circuit.consecutive_failures == 0


async def test_a_consumer_that_leaves_before_anything_came_proves_nothing():
    async def stalled():
        await asyncio.sleep(30)
        yield "late"

    circuit = breaker()
    circuit.record(success=False)
    stream = ResilientStream(stalled, FAST, circuit, False, name="t")

    async def consume() -> None:
        async with contextlib.aclosing(stream.items()) as got:
            async for _ in got:
                pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), 0.05)
    assert stream.outcome == "left" and circuit.consecutive_failures == 1  # nothing recorded
