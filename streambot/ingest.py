"""Ingest: every received message is stored first, then triaged and queued for the host."""

from __future__ import annotations

import asyncio
import logging

from streambot.chat.hygiene import clean_message
from streambot.clock import Clock
from streambot.events import ChatMessage, Decision, Kind, MessageStatus, Priority
from streambot.gifts import GiftBatcher
from streambot.inbox import Inbox
from streambot.logs import RefusalSummary
from streambot.metrics import Metrics
from streambot.screening import screen_fold
from streambot.store import Store
from streambot.triage import Triage
from streambot.turn import Turn

log = logging.getLogger(__name__)
MAX_REQUEUES = 2  # an interrupted question is tried again at most this many times


def preview(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"
    return repr(shown)


class Ingest:
    def __init__(
        self,
        store: Store,
        triage: Triage,
        inbox: Inbox,
        clock: Clock,
        metrics: Metrics,
        interrupt_priority: int,
        gift_window_s: float = 3.0,
    ) -> None:
        self.store, self.triage, self.inbox = store, triage, inbox
        self.clock, self.metrics = clock, metrics
        self.interrupt_priority = interrupt_priority
        self.urgent = asyncio.Event()  # set when a message should interrupt the current turn
        self.gifts = GiftBatcher(gift_window_s)
        self.refusals = RefusalSummary(log, "message(s)")

    def accept(self, msg: ChatMessage) -> Decision:
        """Triage ``msg``, store it with its decision in one transaction, then queue it if
        accepted; returns the decision. Nothing is queued or acknowledged before the commit,
        so a crash loses nothing accepted. Raises only when the store cannot take it."""
        notes = clean_message(msg)  # a stranger's text must fit the store before anything
        try:
            decision = self.triage.decide(msg, self.clock.now())
        except Exception as exc:  # a triage bug must not lose the message: stored, refused
            log.exception("triage failed on a message from %s", msg.source)
            decision = Decision(False, f"internal error in triage: {type(exc).__name__}")
        status = MessageStatus.ACCEPTED if decision.accepted else MessageStatus.REJECTED
        queued = decision.accepted and not decision.batch
        # A full inbox that would refuse it anyway: stored as dropped in the same commit.
        refused = queued and self.inbox.would_refuse(decision.priority)
        self.store.log_received(
            msg,
            status,
            decision.reason,
            decision.priority if decision.accepted else None,
            final_status=MessageStatus.BATCHED if decision.batch else None,
            then=(MessageStatus.DROPPED, self._queue_full_reason()) if refused else None,
        )
        if notes:
            log.warning("#%s from %s cleaned: %s", msg.id, msg.source, "; ".join(notes))
        self.metrics.messages.labels(msg.source).inc()
        # Reasons read "<rule>: <details>"; only the rule is a metric label (bounded set).
        rule = decision.reason.split(":")[0]
        self.metrics.decisions.labels(status, rule).inc()
        # Queued messages get a line each; refusals (most of a flood) a few lines and then a
        # summary, so a spam wave cannot flood the log. Each one is in the store either way.
        shown = (decision.accepted and not refused) or self.refusals.admit(
            "queue full" if refused else rule
        )
        log.log(
            logging.INFO if shown else logging.DEBUG,
            "%s %s from %s/%s: %s (%s)",
            status,
            f"#{msg.id}",
            msg.source,
            msg.user,
            preview(msg.text),
            decision.reason,
        )
        if decision.batch:
            self.gifts.add(msg, self.clock.now())
        elif refused:
            self.metrics.decisions.labels("dropped", "queue full").inc()
        elif decision.accepted:
            self.enqueue(msg, decision.priority)
        return decision

    def _queue_full_reason(self) -> str:
        return f"queue full ({self.inbox.maxsize} waiting); less important than the rest"

    def flush_gifts(self, force: bool = False) -> ChatMessage | None:
        """Queue the thanks for the gifts held, once their window has passed."""
        if not (force or self.gifts.due(self.clock.now())):
            return None
        batch = self.gifts.flush()
        if batch is None:
            return None
        self.store.log_message(batch)
        self.store.log_decision(
            batch.stored_id,
            MessageStatus.ACCEPTED,
            f"thanks for {batch.count} gift(s)",
            Priority.THANKS,
        )
        for gift_id in batch.meta["batched_ids"]:
            self.store.log_decision(
                gift_id, MessageStatus.BATCHED, f"thanked in batch #{batch.id}", None
            )
        self.enqueue(batch, Priority.THANKS)
        return batch

    def enqueue(self, msg: ChatMessage, priority: int) -> None:
        dropped = self.inbox.put(msg, priority)
        self.metrics.inbox.set(len(self.inbox))
        if dropped is not None:
            reason = self._queue_full_reason()
            self.store.log_decision(dropped.stored_id, MessageStatus.DROPPED, reason, None)
            self.metrics.decisions.labels("dropped", "queue full").inc()
            level = logging.INFO if self.refusals.admit("queue full") else logging.DEBUG
            log.log(level, "dropped #%s from %s: %s", dropped.id, dropped.user, reason)
        if priority >= self.interrupt_priority and dropped is not msg:
            self.urgent.set()

    def resume(self, min_priority: int = Priority.QUESTION) -> int:
        """Queue the accepted messages a previous run did not finish answering. None is
        dropped: those beyond the queue's room wait (still pending in the store) and move in
        as the host answers."""
        pending = self.store.pending_messages(min_priority)
        held = 0
        for item in pending:
            msg = item.message
            msg.spoken_name = self.triage.spoken_name(msg)  # names are screened again
            self.store.log_decision(
                msg.stored_id, MessageStatus.ACCEPTED, "resumed after restart", item.priority
            )
            held += not self.inbox.put_or_wait(msg, item.priority)
        self.metrics.inbox.set(len(self.inbox))
        if pending:
            log.info(
                "resumed %d unanswered message(s) from the store (%d queued, %d waiting for room)",
                len(pending),
                len(pending) - held,
                held,
            )
        return len(pending)

    def take(self) -> tuple[ChatMessage, int] | None:
        """The next message to answer and its priority, or None when the inbox is empty."""
        item = self.inbox.get_nowait()
        self.metrics.inbox.set(len(self.inbox))
        return item

    # -- interruptions: what cuts a turn off, and what is asked again -----------------------
    def interrupter(self) -> ChatMessage | None:
        """The queued message important enough to cut the current turn off, if any."""
        if (self.inbox.peek_priority() or 0) < self.interrupt_priority:
            return None
        first = self.inbox.peek()
        return first[0] if first is not None else None

    def after_interruption(self, turn: Turn) -> None:
        """An interrupted question (or thanks) is answered again after what interrupted it,
        unless the operator skipped it, it was cut off too often, or the same viewer asked
        the same again meanwhile; each of those is stored as the reason."""
        msg, interrupter = turn.message, turn.interrupted_by
        if msg is None:
            return
        if interrupter is not None and skipped_by_operator(interrupter):
            word = interrupter.text.strip().split(" ", 1)[0]
            self.store.log_decision(
                msg.stored_id, MessageStatus.SKIPPED, f"skipped by the operator ({word})", None
            )
            return
        tries = msg.meta["interruptions"] = msg.meta.get("interruptions", 0) + 1
        if tries > MAX_REQUEUES:
            reason = f"interrupted {tries} times; not tried again"
            self.store.log_decision(msg.stored_id, MessageStatus.UNANSWERED, reason, None)
            log.info("#%s %s", msg.id, reason)
            return
        asked = screen_fold(msg.text)
        for other in self.inbox.queued():
            if other is not msg and other.user == msg.user and screen_fold(other.text) == asked:
                reason = f"interrupted; the same question is queued again as #{other.id}"
                self.store.log_decision(msg.stored_id, MessageStatus.SUPERSEDED, reason, None)
                return
        by = f"{interrupter.kind} #{interrupter.id}" if interrupter is not None else "the operator"
        self._requeue(msg, turn.priority, f"re-queued: interrupted by {by}")
        log.info("#%s queued again: interrupted by %s", msg.id, by)

    def _requeue(self, msg: ChatMessage, priority: int, reason: str) -> None:
        """Queue an interrupted question again (it is answered after what interrupted it)."""
        self.store.log_decision(msg.stored_id, MessageStatus.ACCEPTED, reason, priority)
        self.inbox.put_or_wait(msg, priority, first=True)
        self.metrics.inbox.set(len(self.inbox))


def skipped_by_operator(interrupter: ChatMessage | None) -> bool:
    """Whether a turn was cut off by the operator's ``!skip`` or ``!stop``."""
    if interrupter is None or interrupter.kind != Kind.COMMAND:
        return False
    return interrupter.text.strip().split(" ", 1)[0] in ("!skip", "!stop")
