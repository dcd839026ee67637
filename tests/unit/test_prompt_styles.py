"""The prompt's memory and facts styles ([brain.llm] memory / facts, issue 30 deliverable 4):
remembered turns as chat turns, as a one-line summary, or not at all; figures as text, or as
slots the host fills so the model never types one."""

from __future__ import annotations

import re

import pytest

from streambot.brain.catalog import CatalogBrain
from streambot.brain.guard import ReplyGuard
from streambot.brain.guarded import GuardedBrain
from streambot.brain.prompt import PromptStyle, system_prompt, turn_messages
from streambot.brain.slots import SlotFiller, SlotFillingBrain
from streambot.catalog import Catalog, format_price
from streambot.config import CatalogBrainConfig, Config
from streambot.events import ChatMessage
from streambot.turn import Turn, TurnKind

CATALOG = Catalog.load()
THERMO, LAMP = CATALOG.by_id("thermo"), CATALOG.by_id("lumadesk")


def question(text: str, lang: str = "en") -> Turn:
    return Turn(1, "answer", ChatMessage("test", "ann", text), lang)


def fill(deltas: list[str], lang: str = "en") -> str:
    filler = SlotFiller(CATALOG, lang)
    return "".join(filler.feed(d) for d in deltas) + filler.flush()


def test_a_slot_split_over_deltas_is_said_as_the_catalogs_figure_in_the_turns_language():
    assert fill(["It is ", "{ther", "mo.pri", "ce} and ", "{thermo.stock}", " left."]) == (
        f"It is {format_price(THERMO, 'en')} and {THERMO.stock} left."
    )
    assert fill(["只要{thermo.price}，", "{thermo.shipping}"], "zh") == (
        f"只要{format_price(THERMO, 'zh')}，{THERMO.shipping_zh}"
    )


def test_text_is_not_held_back_longer_than_an_open_slot_needs():
    filler = SlotFiller(CATALOG, "en")
    assert filler.feed("Hello {thermo") == "Hello "
    assert filler.feed(".price} ok") == f"{format_price(THERMO, 'en')} ok"
    assert filler.feed("a {brace with words?") == "a {brace with words?"  # no slot has "?"


@pytest.mark.parametrize("written", ["{nosuch.price}", "{thermo.colour}", "{lumadesk.stock"])
def test_a_slot_the_catalog_cannot_fill_is_left_as_written_and_the_guard_refuses_it(written):
    said = fill([f"It costs {written} today."])
    assert written in said
    assert not ReplyGuard(CATALOG).check(said, [THERMO, LAMP], "en").ok


def test_the_slot_prompt_states_no_figure_the_model_could_copy():
    prompt = system_prompt(CATALOG, "Mia", "slots")
    for product in CATALOG.product:
        assert "{" + f"{product.id}.price" + "}" in prompt
        assert format_price(product, "en") not in prompt
        assert f"{product.stock} in stock" not in prompt
        assert product.shipping not in prompt
    assert format_price(THERMO, "en") in system_prompt(CATALOG, "Mia", "text")


MEMORY = [("is the LumaDesk lamp in stock?", "It is sold out, back next week.")]


def test_summary_memory_names_what_was_discussed_and_gives_a_follow_up_its_facts():
    messages = turn_messages(
        question("and how much is it?"), CATALOG, MEMORY, "Mia", PromptStyle("summary")
    )
    assert [m["role"] for m in messages] == ["system", "user"]  # no earlier turns replayed
    user = messages[-1]["content"]
    assert "asked about: LumaDesk Lamp" in user
    assert f"[{LAMP.id}]" in user.split("relevant to this question")[1]
    assert "sold out, back next week" not in user  # the earlier answer is not there to copy


def test_turns_memory_replays_the_chat_and_none_forgets_it():
    turns = turn_messages(question("how much?"), CATALOG, MEMORY, "Mia", PromptStyle("turns"))
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    # a follow-up gets the facts of what was discussed last, as with the summary
    assert f"[{LAMP.id}]" in turns[-1]["content"].split("relevant to this question")[1]
    assert "asked about" not in turns[-1]["content"]
    none = turn_messages(question("how much?"), CATALOG, MEMORY, "Mia", PromptStyle("none"))
    assert [m["role"] for m in none] == ["system", "user"]
    assert "asked about" not in none[-1]["content"]
    assert "none matched" in none[-1]["content"]


class Scripted:
    def __init__(self, script: str) -> None:
        self.script, self.prefills = script, []

    def pitch_topics(self) -> list[str]:
        return []

    async def reply(self, turn: Turn, prefill: str = ""):
        self.prefills.append(prefill)
        for delta in re.findall(r"\S+\s*|\s+", self.script):
            yield delta


async def test_a_guarded_slot_reply_says_the_catalogs_figures_and_passes_the_words_said_first():
    inner = Scripted("It keeps drinks hot for 12 hours and costs {thermo.price}.")
    fallback = CatalogBrain(CatalogBrainConfig())
    guarded = GuardedBrain(
        SlotFillingBrain(inner, CATALOG), fallback, ReplyGuard(CATALOG), CATALOG, True
    )
    said = "".join([d async for d in guarded.reply(question("how much is the thermo bottle?"))])
    assert said.count(format_price(THERMO, "en")) == 2  # the first answer, then the slot
    assert "{" not in said
    assert inner.prefills and inner.prefills[0]  # the catalog's answer went to the model


def test_the_styles_are_config_keys_for_both_llm_backends():
    config = Config.model_validate(
        {"brain": {"llm": {"memory": "summary", "facts": "slots"}, "openai": {"memory": "none"}}}
    )
    assert (config.brain.llm.memory, config.brain.llm.facts) == ("summary", "slots")
    assert config.brain.openai.memory == "none"
    with pytest.raises(ValueError, match="memory"):
        Config.model_validate({"brain": {"llm": {"memory": "everything"}}})


@pytest.mark.parametrize(
    ("text", "lang", "asks"),
    [
        ("Is the AeroBrew Coffee Grinder in stock?", "en", "Say how many are in stock"),
        ("雪峰保温杯还有货吗？", "zh", "Say how many are in stock"),
        # the host compares the prices; the model only says which
        (
            "Which is cheaper, the aerobrew or the thermo bottle?",
            "en",
            "The cheaper one is the SnowPeak Thermo Bottle: say so and give both prices.",
        ),
        (
            "Is the thermo bottle more expensive than the aerobrew?",
            "en",
            "The more expensive one is the AeroBrew Coffee Grinder",
        ),
        ("磨豆机和保温杯哪个便宜？", "zh", "The cheaper one is the SnowPeak Thermo Bottle"),
        ("Hi!", "en", None),
        ("How much is the aerobrew?", "en", None),
    ],
)
def test_the_user_message_names_the_facts_a_whole_answer_gives(text, lang, asks):
    turn = Turn(1, TurnKind.ANSWER, ChatMessage("local", "ann", text), lang)
    content = turn_messages(turn, CATALOG)[-1]["content"]
    if asks is None:
        assert content.rstrip().endswith("using only the catalog's figures."), content
    else:
        assert asks in content, content
