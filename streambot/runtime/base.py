"""The Engine role: one call on named arrays, batch first, whatever runs underneath."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class EngineError(RuntimeError):
    """An engine cannot be built or run here; the message says why and what to do."""


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
