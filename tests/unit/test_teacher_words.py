"""What a pruned LLM is distilled on is what the daemon would say: the teacher's answers
through the daemon's guard (compress/llm_teacher.daemon_says), run on the real mistakes small
models made (tests/fixtures/real_llm_outputs.toml) and the real 0.5B teacher's small talk."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from streambot.brain.catalog import CatalogBrain
from streambot.compress.llm_teacher import daemon_says
from streambot.config import Config
from streambot.events import ChatMessage
from streambot.turn import Turn, TurnKind

FIXTURE = Path(__file__).parent.parent / "fixtures" / "real_llm_outputs.toml"
CASES = tomllib.loads(FIXTURE.read_text(encoding="utf-8"))["case"]


def config(answer_first: bool) -> Config:
    config = Config()
    config.brain.llm.answer_first = answer_first
    return config


def question_turn(index: int, text: str, lang: str) -> Turn:
    """A viewer's question as the build turns its training questions (``llm_data``, which
    needs torch; this does not)."""
    message = ChatMessage(source="build", user="小鱼", text=text, spoken_name="小鱼")
    return Turn(id=index, kind=TurnKind.ANSWER, message=message, lang=lang)


def alone(case: dict) -> bool:
    """A case the guard decides on the answer alone (no previous reply to repeat)."""
    return "previous" not in case and case["expect"] in ("spoken", "refused", "checked")


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c["id"]) for c in CASES if alone(c)], ids=lambda c: c["id"]
)
def test_an_answer_is_learnt_as_written_only_when_the_daemon_would_say_it_unchanged(case):
    turn = question_turn(0, case["question"], case["lang"])
    [words] = daemon_says(config(answer_first=False), [turn], [case["output"]])
    if case["expect"] == "spoken":
        assert words == case["output"]
    else:
        assert words != case["output"]
        assert case["never_said"] not in words
        assert words.strip()  # the catalog brain's answer (or its "let me check") instead


def test_the_teachers_rule_text_to_small_talk_becomes_the_catalog_brains_greeting():
    """The real Qwen2.5-Coder-0.5B teacher, asked its name, answered with the house rule's
    words (a fixture case); the student must not learn them."""
    turn = question_turn(3, "what's your name?", "en")
    [words] = daemon_says(config(answer_first=True), [turn], ["Bao is not sold here today."])
    expected = "".join(_catalog_reply(turn))
    assert words == expected.strip()
    assert "sold" not in words


def test_a_refused_continuation_of_the_catalogs_answer_is_cut_where_it_was_refused():
    """With answer_first the teacher continues the catalog's answer; a refused sentence ends
    the reply there (nothing after the answer is learnt), a passing one before it is kept."""
    turn = question_turn(1, "How much is the thermo bottle?", "en")
    written = " It keeps drinks hot for 12 hours. 1200000000000000000000000000000"
    [words] = daemon_says(config(answer_first=True), [turn], [written])
    assert words == " It keeps drinks hot for 12 hours."
    [words] = daemon_says(config(answer_first=True), [turn], [" 1200000000000000000000"])
    assert words == ""
    [words] = daemon_says(config(answer_first=True), [turn], [" It's a great gift."])
    assert words == " It's a great gift."  # passed as written, spacing and all


def test_a_continuation_cut_at_a_clause_ends_as_a_sentence_not_on_its_comma():
    """The teacher's real training answer: its second clause was refused (the grinder is in
    stock), and the words kept ended on the comma the clause was cut at."""
    turn = question_turn(1, "磨豆机还有货吗？", "zh")
    written = " 目前有42个磨豆机，还有7个磨豆机在售罄。 shipping是免费的，2到4天发货。"
    [words] = daemon_says(config(answer_first=True), [turn], [written])
    assert words == " 目前有42个磨豆机。"


def _catalog_reply(turn) -> list[str]:
    import asyncio

    brain = CatalogBrain(Config().brain.catalog, persona=Config().persona)

    async def run() -> list[str]:
        return [delta async for delta in brain.reply(turn)]

    return asyncio.run(run())
