"""Capped exponential backoff with jitter, for every client that reconnects or retries."""

from __future__ import annotations

import random
from collections.abc import Callable


def capped_exponential(attempt: int, base: float, cap: float) -> float:
    """base * 2**attempt, never above ``cap`` (the exponent is bounded so it cannot overflow)."""
    return min(cap, base * 2 ** min(max(attempt, 0), 30))


def full_jitter(delay: float, rng: Callable[[], float] = random.random) -> float:
    """Uniform in [0, delay]: clients that failed together spread out the most."""
    return delay * rng()


def equal_jitter(delay: float, rng: Callable[[], float] = random.random) -> float:
    """Half the delay fixed, half random: never retries immediately, still spreads out."""
    return delay / 2 + rng() * delay / 2
