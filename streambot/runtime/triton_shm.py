"""System shared memory between a face client and a Triton server on the same host.

A batch's inputs are written into a region the server has mapped, and the server writes the
outputs into the same region: nothing of the frames crosses the socket, only the request.
Each render thread has its own region (laid out as the inputs, then the outputs), grown when a
larger batch comes; a region is registered again after the server forgot it (a restart), and
unregistered and unlinked when it is dropped or the process ends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

_serial = itertools.count()


class SharedRegion:
    """One thread's region: a batch's inputs, then room for its outputs."""

    def __init__(self, client: Any, size: int) -> None:
        import tritonclient.utils.shared_memory as shm

        self.shm, self.client, self.size = shm, client, size
        serial = f"{os.getpid()}-{next(_serial)}"
        self.name = f"streambot-face-{serial}"
        self.key = f"/{self.name}"  # the POSIX shared memory object both processes open
        self.handle = shm.create_shared_memory_region(self.name, self.key, size, create_only=True)
        self.registered_at: int | None = None  # the engine's server generation it was made for
        weakref.finalize(self, _drop, client, self.name, shm, self.handle)

    def register(self, generation: int) -> None:
        """Register with the server (again, after it restarted: an old entry is removed)."""
        with contextlib.suppress(Exception):  # it may not know the region any more
            self.client.unregister_system_shared_memory(self.name)
        self.client.register_system_shared_memory(self.name, self.key, self.size)
        self.registered_at = generation

    def place(self, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int]) -> dict[str, int]:
        """Copy ``arrays`` in one after another and leave ``sizes`` bytes for each output
        after them; every tensor's offset, by name."""
        offsets, offset = {}, 0
        for name, array in arrays.items():
            self.shm.set_shared_memory_region(self.handle, [array], offset=offset)
            offsets[name], offset = offset, offset + array.nbytes
        for name, size in sizes.items():
            offsets[name], offset = offset, offset + size
        return offsets

    def read(self, offset: int, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
        """A copy of what the server wrote at ``offset`` (the region is reused next batch)."""
        view = self.shm.get_contents_as_numpy(self.handle, dtype, list(shape), offset=offset)
        return np.array(view, np.float32)


def _drop(client: Any, name: str, shm: Any, handle: Any) -> None:
    with contextlib.suppress(Exception):  # the server may be gone: its entry goes with it
        client.unregister_system_shared_memory(name)
    with contextlib.suppress(Exception):
        shm.destroy_shared_memory_region(handle)
