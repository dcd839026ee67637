"""The chat feed: every configured chat source pumped into ingest, and the answers posted back.

Each source runs in its own pump, restarted with capped backoff when it fails. Messages a
source already holds are taken at once and stored in one transaction (a flood costs one commit
per burst, not one per message); each message's receipt (the HTTP source's 202) is settled
only after its commit.
"""

from __future__ import annotations

import asyncio
import logging

from streambot.backoff import Backoff
from streambot.chat.base import BufferedSource, ChatSource, RepliesInChat, SessionSource
from streambot.chat.factory import build_platform_sources
from streambot.chat.local import HttpChatSource, ReplayChatSource, StdinChatSource
from streambot.clock import Clock
from streambot.config import Config
from streambot.events import ChatMessage, Decision
from streambot.ingest import Ingest
from streambot.logs import redact

log = logging.getLogger(__name__)
MAX_BURST = 64  # messages stored in one transaction at most (~6 ms of the loop)


class ChatFeed:
    def __init__(
        self,
        config: Config,
        ingest: Ingest,
        clock: Clock,
        stop: asyncio.Event,
        extra_sources: list[ChatSource] | None = None,
    ) -> None:
        self.ingest, self.stop = ingest, stop
        self.sources: list[ChatSource] = [*build_platform_sources(config), *(extra_sources or [])]
        local = config.chat.local
        self.http_source: HttpChatSource | None = None
        if local.http:
            self.http_source = HttpChatSource(
                local.host,
                local.port,
                local.token(),
                local.max_body_bytes,
                token_env=local.token_env,
                max_connections=local.max_connections,
                idle_timeout_s=local.idle_timeout_s,
                allowed_hosts=local.allowed_hosts,
            )
            self.sources.append(self.http_source)
        if local.stdin:
            self.sources.append(StdinChatSource())
        if local.replay:
            self.sources.append(ReplayChatSource(local.replay, clock, local.replay_loop))
        self._state: dict[int, dict] = {}  # id(source) -> its pump's health

    def health(self) -> list[dict]:
        return [self._health(source) for source in self.sources]

    def _health(self, source: ChatSource) -> dict:
        state = dict(self._state.get(id(source), {"state": "starting"}))
        # Platform clients reconnect by themselves and say whether their session is open.
        session_down = isinstance(source, SessionSource) and not source.connected.is_set()
        if state["state"] == "up" and session_down:
            state["state"] = "connecting"
        return {"name": source.name, **state}

    def pumps(self) -> list[asyncio.Task]:
        return [asyncio.create_task(self._pump(s), name=f"chat-{s.name}") for s in self.sources]

    async def _pump(self, source: ChatSource) -> None:
        """Feed one source into ingest, restarting it with capped backoff if it fails."""
        backoff, restarts = Backoff(base=1.0, cap=30.0), 0
        health = self._state.setdefault(id(source), {"state": "up"})
        buffered = source if isinstance(source, BufferedSource) else None  # asked once
        while not self.stop.is_set():
            burst: list[ChatMessage] = []
            try:
                health.update(state="up")
                async for msg in source.messages():
                    burst.append(msg)
                    # Messages already waiting in the source are taken at once (no await) and
                    # stored in one transaction: a flood costs one commit per burst.
                    if len(burst) < MAX_BURST and buffered is not None and buffered.waiting() > 0:
                        continue
                    self._accept_burst(burst)
                    burst = []
                    backoff.reset()
                health.update(state="ended")
                return  # a finite source (a replay) has ended
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if burst:  # taken from the source before it failed: stored all the same
                    self._accept_burst(burst)
                restarts += 1
                health.update(
                    state="restarting",
                    error=redact(f"{type(exc).__name__}: {exc}"),
                    restarts=restarts,
                )
                delay = backoff.next_delay()
                log.exception("chat source %s failed; restarting in %.1fs", source.name, delay)
                await asyncio.sleep(delay)

    def _accept_burst(self, burst: list[ChatMessage]) -> None:
        """Triage and store the messages in one transaction, then settle their receipts
        (HTTP answers 202 only now). If the transaction fails, each is tried on its own, so
        one bad message is refused alone and its source keeps running."""
        if len(burst) == 1:
            self._accept(burst[0])
            return
        try:
            with self.ingest.store.batch():
                decisions = [self.ingest.accept(msg) for msg in burst]
        except Exception:
            log.exception("storing a burst of %d messages failed; one by one", len(burst))
            for msg in burst:
                self._accept(msg)
            return
        for msg, decision in zip(burst, decisions, strict=True):
            _settle(msg, decision)

    def _accept(self, msg: ChatMessage) -> None:
        """Store and triage one message, then settle its receipt. A message that fails is
        logged and refused on its own: its source keeps running."""
        try:
            decision = self.ingest.accept(msg)  # triage reads the catalog as it is now
        except Exception as exc:
            log.exception("message from %s could not be stored; refused", msg.source)
            _settle(msg, exc)
            return
        _settle(msg, decision)

    async def reply(self, question: ChatMessage, reply: str) -> None:
        """Post the spoken answer into the chat it came from, where the platform allows it."""
        for source in self.sources:
            if source.name != question.source or not isinstance(source, RepliesInChat):
                continue
            if not source.reply_in_chat:
                continue
            try:
                await source.send(reply, reply_to=question.meta.get("message_id"))
            except Exception as exc:  # a failed chat post must not disturb the stream
                log.warning("could not post the answer into %s chat: %s", source.name, exc)


def _settle(msg: ChatMessage, outcome: Decision | Exception) -> None:
    """Answer a message's receipt (HTTP's 202 waits on it): its decision, or why it was lost.
    A receipt already settled (it expired first) is left as it is."""
    if msg.receipt is None or msg.receipt.done():
        return
    if isinstance(outcome, Exception):
        msg.receipt.set_exception(outcome)
    else:
        msg.receipt.set_result(outcome)
