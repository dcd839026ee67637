"""What follows a turn without being part of it: the record, the metrics, chat replies.

Each is a TurnObserver (streambot/turn.py); the app hands them to the host, which gives them
to every turn it creates. The OBS director (stage/director.py) is another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine

from streambot.events import ChatMessage, MessageStatus
from streambot.metrics import Metrics
from streambot.store import Store
from streambot.tasks import Background
from streambot.turn import Outcome, SpokenSentence, Turn, TurnKind, TurnObserver

log = logging.getLogger(__name__)


class TurnRecorder(TurnObserver):
    """Writes what was said, how the turn ended and its timings to the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def sentence_spoken(self, turn: Turn, sentence: SpokenSentence) -> None:
        self.store.log_sentence(turn.id, sentence.index, sentence.text, sentence.frames)

    def turn_ended(self, turn: Turn) -> None:
        msg_id = turn.message.id if turn.message else None
        self.store.set_reply(turn.id, turn.reply)
        if turn.script is not None:  # the audit trail: which segment, authored or reworded
            self.store.set_script(turn.id, turn.script.segment.id, turn.script.spoken_as)
        if turn.outcome == Outcome.SHUTDOWN and msg_id is not None:
            self.store.end_turn(turn.id, None, turn.outcome)
            self.store.set_status(msg_id, MessageStatus.ACCEPTED)  # answered again after a restart
        else:
            self.store.end_turn(turn.id, msg_id, str(turn.outcome))
        self.store.log_timings(turn.id, turn.timings)


class TurnMetrics(TurnObserver):
    """Counts turns by kind and outcome; observes each stage's latency from the message."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def turn_ended(self, turn: Turn) -> None:
        self.metrics.turns.labels(turn.kind, turn.outcome).inc()
        t = turn.timings
        for stage, instant in (
            ("dequeue", t.dequeued),
            ("first_text", t.first_text),
            ("first_audio", t.first_audio),
            ("first_frame", t.first_frame),
        ):
            ms = t.since_arrival_ms(instant)
            if ms is not None:
                self.metrics.stage_latency.labels(stage).observe(ms / 1000.0)
        interruption = t.interruption_ms()
        if interruption is not None:
            self.metrics.stage_latency.labels("interruption").observe(interruption / 1000.0)


class ChatReplies(TurnObserver):
    """Posts a fully spoken answer into the chat its question came from (``post`` decides
    where the platform allows it). Posting runs in the background: a slow chat never holds
    up the next turn."""

    def __init__(self, post: Callable[[ChatMessage, str], Coroutine[object, object, None]]) -> None:
        self.post = post
        self.background = Background("chat reply")

    def turn_ended(self, turn: Turn) -> None:
        if turn.outcome != Outcome.PLAYED or turn.kind != TurnKind.ANSWER:
            return
        if turn.message is None or not turn.reply:
            return
        self.background.spawn(self.post(turn.message, turn.reply), name=f"reply-{turn.id}")
