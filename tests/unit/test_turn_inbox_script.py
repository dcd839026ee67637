"""The kernel of a turn's life, each part alone: the Turn, the Inbox, the ScriptRunner."""

import asyncio

import pytest

from streambot.catalog import Catalog
from streambot.events import ChatMessage, Priority
from streambot.inbox import Inbox
from streambot.script.model import Script, Segment
from streambot.script.runner import ScriptRunner
from streambot.turn import Outcome, SpokenSentence, Turn, TurnKind, TurnObserver

CATALOG = Catalog.load()


def message(text: str, id: int, user: str = "ann") -> ChatMessage:
    msg = ChatMessage("t", user, text)
    msg.id = id
    return msg


# -- the Turn ---------------------------------------------------------------------------------
class Recording(TurnObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def turn_started(self, turn: Turn) -> None:
        self.events.append(("started", turn.id))

    def first_frame(self, turn: Turn) -> None:
        self.events.append(("first_frame", turn.id))

    def sentence_spoken(self, turn: Turn, sentence: SpokenSentence) -> None:
        self.events.append((f"spoken {sentence.text}", turn.id))

    def turn_ended(self, turn: Turn) -> None:
        self.events.append((f"ended {turn.outcome}", turn.id))


class Broken(TurnObserver):
    def turn_ended(self, turn: Turn) -> None:
        raise RuntimeError("an observer's bug")


def test_a_turn_tells_its_observers_each_event_once_in_order():
    seen = Recording()
    turn = Turn(7, TurnKind.ANSWER, message("hi", 1), observers=[seen])
    turn.started()
    turn.sentences[0] = "Hello there!"
    turn.frame_shown()
    turn.frame_shown()  # the first frame is an event, later ones are not
    turn.speech_shown(0, frames=25, first_frame=100)
    turn.end(Outcome.PLAYED)
    turn.end(Outcome.FAILED)  # only the first outcome counts
    assert seen.events == [
        ("started", 7),
        ("first_frame", 7),
        ("spoken Hello there!", 7),
        ("ended played", 7),
    ]
    assert turn.outcome == Outcome.PLAYED and turn.timings.first_frame is not None
    assert [s.frames for s in turn.spoken] == [25]


def test_an_observers_bug_does_not_stop_the_others_or_the_turn(caplog):
    seen = Recording()
    turn = Turn(1, TurnKind.PITCH, None, observers=[Broken(), seen])
    turn.end(Outcome.INTERRUPTED)
    assert seen.events == [("ended interrupted", 1)]
    assert "an observer's bug" in caplog.text


def test_an_interrupt_names_its_cause_once_and_not_after_the_end():
    turn = Turn(1, TurnKind.ANSWER, message("hi", 1))
    first, second = message("urgent", 2), message("later", 3)
    turn.interrupt(first)
    turn.interrupt(second)
    assert turn.interrupt_requested and turn.interrupted_by is first
    ended = Turn(2, TurnKind.ANSWER, message("hi", 4))
    ended.end(Outcome.PLAYED)
    ended.interrupt(first)
    assert not ended.interrupt_requested


async def test_whoever_holds_a_turn_can_wait_for_its_outcome():
    turn = Turn(1, TurnKind.ANSWER, message("hi", 1))
    waiter = asyncio.ensure_future(turn.ended())
    await asyncio.sleep(0)
    assert not waiter.done()
    turn.interrupt()
    await asyncio.sleep(0)
    assert not waiter.done()  # asked to stop is not stopped: the presenter says when
    turn.end(Outcome.INTERRUPTED)
    turn.end(Outcome.PLAYED)  # only the first end counts
    assert await asyncio.wait_for(waiter, 1) is Outcome.INTERRUPTED
    assert await turn.ended() is Outcome.INTERRUPTED  # after the end: at once


def test_a_bad_turn_kind_fails_naming_itself():
    with pytest.raises(ValueError, match="'shout'"):
        Turn(1, "shout", None)  # type: ignore[arg-type]


# -- the Inbox --------------------------------------------------------------------------------
def test_the_inbox_gives_the_most_important_first_then_the_oldest():
    inbox = Inbox(10)
    inbox.put(message("chat 1", 1), Priority.CHAT)
    inbox.put(message("gift", 2), Priority.THANKS)
    inbox.put(message("chat 2", 3), Priority.CHAT)
    inbox.put(message("!say hi", 4), Priority.OPERATOR)
    order = [inbox.get_nowait()[0].id for _ in range(4)]
    assert order == [4, 2, 1, 3] and inbox.get_nowait() is None


def test_a_full_inbox_drops_its_weakest_newest_for_a_more_important_message():
    inbox = Inbox(2)
    assert inbox.put(message("a", 1), Priority.CHAT) is None
    assert inbox.put(message("b", 2), Priority.CHAT) is None
    refused = inbox.put(message("c", 3), Priority.CHAT)  # no more important: refused
    assert refused is not None and refused.id == 3
    dropped = inbox.put(message("paid", 4), Priority.THANKS)
    assert dropped is not None and dropped.id == 2  # the newest of the weakest made room
    assert {m.id for m in inbox.queued()} == {1, 4}
    assert inbox.would_refuse(Priority.CHAT) and not inbox.would_refuse(Priority.OPERATOR)


def test_resumed_messages_are_never_refused_they_wait_for_room():
    inbox = Inbox(1)
    assert inbox.put_or_wait(message("a", 1), Priority.CHAT)
    assert not inbox.put_or_wait(message("b", 2), Priority.CHAT)
    assert not inbox.put_or_wait(message("interrupted", 3), Priority.CHAT, first=True)
    assert inbox.waiting == 2
    assert inbox.get_nowait()[0].id == 1
    assert inbox.get_nowait()[0].id == 3  # the interrupted question moved in first
    assert inbox.get_nowait()[0].id == 2 and inbox.waiting == 0


def test_the_operator_promotes_and_removes_queued_messages():
    inbox = Inbox(5)
    for i in range(1, 4):
        inbox.put(message(f"q{i}", i), Priority.CHAT)
    assert inbox.promote(3, Priority.CHAT)
    assert inbox.peek()[0].id == 3
    assert inbox.remove(2).id == 2 and inbox.remove(2) is None
    assert not inbox.promote(99, Priority.CHAT)
    assert [inbox.get_nowait()[0].id for _ in range(2)] == [3, 1]


async def test_waiting_on_the_inbox_returns_once_something_is_queued():
    inbox = Inbox(3)
    waiter = asyncio.ensure_future(inbox.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    inbox.put(message("hi", 1), Priority.CHAT)
    await asyncio.wait_for(waiter, 1)


# -- the ScriptRunner -------------------------------------------------------------------------
def runner(*segments: Segment, loop: bool = True, quiet: float = 20.0) -> ScriptRunner:
    return ScriptRunner(Script(segment=list(segments), loop=loop), quiet, CATALOG)


def pitch() -> str:
    return "thermo"


def test_a_segment_is_due_after_quiet_chat_and_moves_on_only_when_played():
    script = runner(
        Segment(id="price", kind="price", product="thermo", text="Only {price}!", quiet_s=5),
        Segment(id="cta", kind="cta", text="Grab one now!", quiet_s=5),
    )
    assert script.due_in(now=102.0, last_activity=100.0) == pytest.approx(3.0)
    line = script.line("en", pitch)
    assert line.text == "Only $24.50!" and line.product == "thermo"
    script.ended(line, played=False, now=106.0)  # interrupted by a question: said again
    assert script.current.id == "price"
    script.ended(line, played=True, now=107.0)
    assert script.current.id == "cta" and script.line("en", pitch).repetition == 0


def test_an_answers_trigger_waits_for_that_many_answers():
    script = runner(
        Segment(id="qa", kind="qa", text="Any questions?", trigger="answers", answers=2)
    )
    assert script.due_in(0.0, 0.0) is None
    script.answered()
    assert script.due_in(0.0, 0.0) is None
    script.answered()
    assert script.due_in(5.0, 0.0) == 0.0


def test_a_script_without_loop_finishes_and_a_looping_one_counts_its_loops():
    once = runner(Segment(id="a", text="Hello!"), loop=False)
    once.ended(once.line("en", pitch), played=True, now=1.0)
    assert once.finished and once.due_in(2.0, 0.0) is None
    looping = runner(Segment(id="a", text="Hello!"))
    looping.ended(looping.line("en", pitch), played=True, now=1.0)
    assert not looping.finished and looping.loops == 1


def test_the_operators_script_commands():
    script = runner(Segment(id="a", text="Hello!"), Segment(id="b", text="Bye!"))
    assert script.command("pause") is None and script.due_in(0.0, 0.0) is None
    assert script.command("resume") is None and script.due_in(0.0, 0.0) is not None
    assert script.command("goto b") is None and script.current.id == "b"
    assert "segments: a, b" in script.command("goto nowhere")
    assert script.command("next") is None and script.current.id == "a"
    assert "unknown script command" in script.command("dance")


def test_a_segment_whose_product_left_the_catalog_is_skipped_with_the_reason():
    script = runner(Segment(id="gone", kind="price", product="thermo", text="Only {price}!"))
    script.live = type(script.live).fixed(CATALOG.model_copy(update={"product": []}))
    line = script.line("en", pitch)
    assert line.text == "" and "no longer in the catalog" in line.skipped
    assert "gone" in script.skipped
