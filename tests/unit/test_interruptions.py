"""Ingest alone decides what cuts a turn off and whether an interrupted question is asked
again; what it decides is stored as the message's status and reason."""

from __future__ import annotations

import pytest

from streambot.clock import VirtualClock
from streambot.config import TriageConfig
from streambot.events import ChatMessage, Kind, Priority
from streambot.inbox import Inbox
from streambot.ingest import MAX_REQUEUES, Ingest, skipped_by_operator
from streambot.metrics import Metrics
from streambot.store import Store
from streambot.triage import Triage
from streambot.turn import Turn, TurnKind


@pytest.fixture
def ingest(tmp_path):
    store = Store(tmp_path / "events.db")
    yield Ingest(
        store,
        Triage(TriageConfig()),
        Inbox(16),
        VirtualClock(),
        Metrics(),
        interrupt_priority=Priority.PAID,
    )
    store.close()


def stored(ingest: Ingest, text: str, user: str = "ann", kind: Kind = Kind.CHAT) -> ChatMessage:
    msg = ChatMessage("local", user, text, kind=kind)
    ingest.store.log_message(msg)
    return msg


def interrupted(msg: ChatMessage, by: ChatMessage | None) -> Turn:
    turn = Turn(1, TurnKind.ANSWER, msg, priority=Priority.QUESTION)
    turn.interrupt(by=by)
    return turn


def status(ingest: Ingest, msg: ChatMessage) -> tuple[str, str]:
    return ingest.store.statuses([msg.id])[msg.id]


def test_only_a_queued_message_of_the_interrupt_priority_cuts_a_turn_off(ingest):
    ingest.enqueue(stored(ingest, "how much is the lamp?"), Priority.QUESTION)
    assert ingest.interrupter() is None
    command = stored(ingest, "!skip", user="operator", kind=Kind.COMMAND)
    ingest.enqueue(command, Priority.OPERATOR)
    assert ingest.interrupter() is command


def test_an_interrupted_question_is_asked_again_first_and_says_why(ingest):
    msg = stored(ingest, "how much is the lamp?")
    by = stored(ingest, "!pitch lamp", user="operator", kind=Kind.COMMAND)
    ingest.after_interruption(interrupted(msg, by))
    assert ingest.take() == (msg, Priority.QUESTION)
    assert status(ingest, msg) == ("accepted", f"re-queued: interrupted by command #{by.id}")


def test_a_question_skipped_by_the_operator_is_not_asked_again(ingest):
    msg = stored(ingest, "how much is the lamp?")
    skip = stored(ingest, "!skip", user="operator", kind=Kind.COMMAND)
    assert skipped_by_operator(skip)
    ingest.after_interruption(interrupted(msg, skip))
    assert ingest.take() is None
    assert status(ingest, msg) == ("skipped", "skipped by the operator (!skip)")


def test_a_question_cut_off_too_often_is_given_up(ingest):
    msg = stored(ingest, "how much is the lamp?")
    for _ in range(MAX_REQUEUES):
        ingest.after_interruption(interrupted(msg, None))
        assert ingest.take() is not None
    ingest.after_interruption(interrupted(msg, None))
    assert ingest.take() is None
    assert status(ingest, msg) == (
        "unanswered",
        f"interrupted {MAX_REQUEUES + 1} times; not tried again",
    )


def test_a_question_the_viewer_asked_again_meanwhile_is_not_asked_twice(ingest):
    msg = stored(ingest, "How much is the lamp?")
    again = stored(ingest, "how much is the LAMP?")
    ingest.enqueue(again, Priority.QUESTION)
    ingest.after_interruption(interrupted(msg, None))
    assert ingest.take() == (again, Priority.QUESTION)
    assert ingest.take() is None
    assert status(ingest, msg) == (
        "superseded",
        f"interrupted; the same question is queued again as #{again.id}",
    )
