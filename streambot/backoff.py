"""Capped exponential backoff with jitter, for every client that reconnects or retries."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


def capped_exponential(attempt: int, base: float, cap: float) -> float:
    """base * 2**attempt, never above ``cap`` (the exponent is bounded so it cannot overflow)."""
    return min(cap, base * 2 ** min(max(attempt, 0), 30))


def full_jitter(delay: float, rng: Callable[[], float] = random.random) -> float:
    """Uniform in [0, delay]: clients that failed together spread out the most."""
    return delay * rng()


def equal_jitter(delay: float, rng: Callable[[], float] = random.random) -> float:
    """Half the delay fixed, half random: never retries immediately, still spreads out."""
    return delay / 2 + rng() * delay / 2


Jitter = Callable[[float, Callable[[], float]], float]


@dataclass
class Backoff:
    """One retry loop's delays: ``next_delay()`` before each retry, ``reset()`` once it works.

    The n-th delay (from 0) is ``jitter(min(cap, base * 2**n))``; equal jitter by default so a
    retry never comes at once, yet clients that failed together spread out.
    """

    base: float
    cap: float
    jitter: Jitter = equal_jitter
    rng: Callable[[], float] = random.random
    attempt: int = 0  # delays handed out since the last reset

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError(f"backoff base and cap must be >= 0, not {self.base}, {self.cap}")

    def next_delay(self) -> float:
        """The jittered delay before the next retry; counts the attempt."""
        delay = self.jitter(capped_exponential(self.attempt, self.base, self.cap), self.rng)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """It worked: the next failure starts again from ``base``."""
        self.attempt = 0
