"""A slow LLM never leaves the stream silent: past ``first_sentence_s`` with nothing said,
the catalog brain takes the turn and the LLM's stream is closed (its generation stops)."""

import asyncio

from streambot.brain.catalog import CatalogBrain
from streambot.brain.guard import ReplyGuard
from streambot.brain.guarded import GuardedBrain
from streambot.catalog import Catalog
from streambot.config import CatalogBrainConfig
from streambot.events import ChatMessage
from streambot.script.model import ScriptLine, Segment
from streambot.turn import Turn, TurnKind

CATALOG = Catalog.load()
DEADLINE = 0.05  # seconds; the slow brains below wait far longer, the quick ones not at all


class Slow:
    """An inner brain that waits ``before`` seconds, says ``sentences`` with ``between``
    seconds before each one after the first, and records whether its stream was closed."""

    def __init__(self, *sentences: str, before: float = 0.0, between: float = 0.0) -> None:
        self.sentences, self.before, self.between = sentences, before, between
        self.closed = False

    def pitch_topics(self) -> list[str]:
        return []

    async def reply(self, turn: Turn, prefill: str = ""):
        try:
            await asyncio.sleep(self.before)
            for i, sentence in enumerate(self.sentences):
                if i:
                    await asyncio.sleep(self.between)
                yield sentence + " "
        finally:
            self.closed = True


def question(text: str) -> Turn:
    return Turn(1, TurnKind.ANSWER, ChatMessage("t", "ann", text))


def brain(inner: Slow, deadline: float = DEADLINE, answer_first: bool = False) -> GuardedBrain:
    catalog_brain = CatalogBrain(CatalogBrainConfig())
    return GuardedBrain(
        inner,
        catalog_brain,
        ReplyGuard(CATALOG),
        catalog_brain.live,
        answer_first=answer_first,
        first_sentence_s=deadline,
    )


async def said(guarded: GuardedBrain, turn: Turn) -> str:
    return "".join([delta async for delta in guarded.reply(turn)]).strip()


async def test_a_late_first_sentence_hands_the_turn_to_the_catalog_brain():
    inner = Slow("Hello there, welcome to the stream!", before=30.0)
    guarded = brain(inner)
    turn = question("how much is the grinder?")
    reply = await asyncio.wait_for(said(guarded, turn), timeout=10)
    expected = "".join([d async for d in guarded.fallback.reply(turn)]).strip()
    assert reply == expected and "$89.99" in reply
    assert inner.closed  # the LLM was told to stop, not left generating
    assert guarded.too_slow == 1 and guarded.rejections == 1
    assert guarded.last_verdicts == [("", f"no first sentence within {DEADLINE:g} s")]


async def test_a_slow_reply_that_started_in_time_is_said_whole():
    sentences = ("Hi, welcome in!", "The grinder is a great pick today.")
    guarded = brain(Slow(*sentences, between=4 * DEADLINE))
    reply = await said(guarded, question("hello!"))
    assert reply == " ".join(sentences) and guarded.too_slow == 0


async def test_no_deadline_waits_as_long_as_it_takes():
    guarded = brain(Slow("Hi, welcome in!", before=4 * DEADLINE), deadline=0.0)
    assert await said(guarded, question("hello!")) == "Hi, welcome in!"


async def test_after_the_catalog_answered_first_a_slow_continuation_is_not_cut():
    inner = Slow("It keeps drinks hot for 12 hours.", before=4 * DEADLINE)
    guarded = brain(inner, answer_first=True)
    reply = await said(guarded, question("how much is the bottle?"))
    assert reply == "The SnowPeak Thermo Bottle is $24.50. It keeps drinks hot for 12 hours."
    assert guarded.too_slow == 0


async def test_a_script_line_reworded_too_slowly_is_said_as_authored():
    inner = Slow("Just $24.50 for the bottle!", "Grab one now!", between=30.0)
    guarded = brain(inner)
    segment = Segment(id="bottle", kind="price", product="thermo", text="Only {price}!")
    turn = Turn(1, TurnKind.SCRIPT, None, "en", topic="thermo")
    turn.script = ScriptLine(segment, "Only $24.50!", "en", "thermo", 3)
    reply = await asyncio.wait_for(said(guarded, turn), timeout=10)
    assert reply == "Only $24.50!" and turn.script.spoken_as != "reworded"
    assert inner.closed and guarded.too_slow == 1
    assert guarded.last_verdicts[-1] == ("", f"no rewording within {DEADLINE:g} s")


async def test_an_inner_brains_own_timeout_is_a_failure_not_lateness():
    class TimesOut(Slow):
        async def reply(self, turn: Turn, prefill: str = ""):
            raise TimeoutError("the server did not answer")
            yield ""  # an async generator

    guarded = brain(TimesOut(), deadline=30.0)
    reply = await said(guarded, question("how much is the grinder?"))
    assert "$89.99" in reply and guarded.too_slow == 0
    assert guarded.last_verdicts == [("", "inner brain failed")]
