"""One retry policy: capped exponential growth, reset after a success, jitter in its range."""

from __future__ import annotations

import random

import pytest

from streambot.backoff import Backoff, equal_jitter, full_jitter


def no_jitter(delay: float, rng: object) -> float:
    return delay


def test_delays_double_from_base_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=30.0, jitter=no_jitter)
    assert [backoff.next_delay() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.attempt == 7


def test_a_cap_below_base_wins_and_a_long_outage_does_not_overflow() -> None:
    assert Backoff(base=5.0, cap=2.0, jitter=no_jitter).next_delay() == 2.0
    backoff = Backoff(base=0.5, cap=60.0, jitter=no_jitter, attempt=10_000)
    assert backoff.next_delay() == 60.0


def test_reset_starts_again_from_base() -> None:
    backoff = Backoff(base=0.25, cap=10.0, jitter=no_jitter)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert [backoff.next_delay(), backoff.next_delay()] == [0.25, 0.5]


def test_equal_jitter_is_the_default_and_stays_in_half_to_whole() -> None:
    low = Backoff(base=2.0, cap=8.0, rng=lambda: 0.0)
    high = Backoff(base=2.0, cap=8.0, rng=lambda: 1.0)
    assert [low.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    assert [high.next_delay() for _ in range(4)] == [2.0, 4.0, 8.0, 8.0]
    seeded = Backoff(base=2.0, cap=8.0, rng=random.Random(0).random)
    for attempt in range(20):
        full = min(8.0, 2.0 * 2**attempt)
        assert full / 2 <= seeded.next_delay() <= full


def test_full_jitter_can_retry_at_once_and_never_exceeds_the_step() -> None:
    backoff = Backoff(base=1.0, cap=4.0, jitter=full_jitter, rng=lambda: 0.0)
    assert backoff.next_delay() == 0.0
    backoff = Backoff(base=1.0, cap=4.0, jitter=full_jitter, rng=lambda: 0.5)
    assert [backoff.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]


def test_the_rng_is_what_spreads_clients_out() -> None:
    rngs = [random.Random(seed).random for seed in range(10)]
    delays = {Backoff(1.0, 30.0, equal_jitter, rng).next_delay() for rng in rngs}
    assert len(delays) == 10 and all(0.5 <= d <= 1.0 for d in delays)


def test_negative_timings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=-1.0, cap=30.0)
    with pytest.raises(ValueError):
        Backoff(base=1.0, cap=-1.0)
