"""The Engine role: one call on named arrays, batch first, whatever runs underneath."""

from __future__ import annotations

from contextvars import ContextVar
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np


class EngineError(RuntimeError):
    """An engine cannot be built or run here; the message says why and what to do."""


class Urgency(IntEnum):
    """How soon a served engine should run a request: Triton's priority levels (1 first),
    so one server's rooms render viewers' answers before other rooms' idle talk."""

    NOW = 1  # a viewer's answer, a thanks for a paid message, the operator's own words
    IDLE = 2  # pitches, script lines, warm-up renders


# The urgency of the engine calls made in this context: set by whoever drives a turn, read by
# a served engine. asyncio.to_thread copies the context, so it reaches the render threads.
request_urgency: ContextVar[Urgency] = ContextVar("request_urgency", default=Urgency.IDLE)


class Engine(Protocol):
    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on float32 arrays whose first axis is the batch; returns float32 arrays."""
        ...


@runtime_checkable
class RemoteEngine(Engine, Protocol):
    """An engine on a server (Triton), with a local one standing in while it cannot answer:
    its state is shown in /healthz and on the panel."""

    def health(self) -> dict[str, Any]: ...
