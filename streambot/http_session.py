"""One lazily opened aiohttp session per remote-server client (the OpenAI brain, the TTS voice).

The clients bound each response with their own timers (server time, per stage), so the
session's own timeout only bounds the TCP connect.
"""

from __future__ import annotations

import aiohttp


class LazySession:
    def __init__(self, connect_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        """The open session, opened now if there is none (or it was closed)."""
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    async def close(self) -> None:
        """Close the session (a later ``get`` opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None
