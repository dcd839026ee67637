"""The stream's own text for pruning and distilling the LLM (no dataset needed).

Questions a viewer would ask about the catalog (price, stock, shipping, what it does, in English
and Chinese, in the casual forms chat uses), each turned into the exact chat messages the host
sends (the real system prompt and turn message, brain/prompt.py); the house rules and the
catalog's own sentences for calibration. The teacher writes the answers the student learns.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from streambot.catalog import Catalog
from streambot.compress.wav2lip_data import catalog_sentences
from streambot.events import ChatMessage
from streambot.turn import Turn, TurnKind

QUESTIONS = {
    "en": (
        "how much is the {name}?",
        "{name} price?",
        "is the {name} still in stock?",
        "how many {name} are left",
        "how fast does the {name} ship?",
        "when would the {name} arrive if I order today",
        "what's good about the {name}?",
        "can you tell me more about the {name}",
        "is the {name} worth it?",
        "hey! does the {name} come with a warranty?",
    ),
    "zh": (
        "{name}多少钱？",
        "{name}还有货吗",
        "{name}几天发货？",
        "{name}有什么特点",
        "主播，{name}值得买吗？",
    ),
}
GREETINGS = {"en": ("hi!", "hello from Texas", "first time here"), "zh": ("主播好", "来了来了")}
USERS = ("mika_22", "Bao", "coffee_fan", "小鱼", "jp", "Lena", "nightowl", "阿杰")


def catalog_questions(
    catalog: Catalog, count: int = 100, seed: int = 0, langs: Sequence[str] = ("en", "zh")
) -> list[tuple[str, str]]:
    """``count`` (question, lang) pairs about the catalog's products, in a fixed order."""
    rng = random.Random(seed)
    pairs = []
    for product in catalog.product:
        for lang in langs:
            name = product.name_zh if lang == "zh" else product.name
            pairs += [(q.format(name=name), lang) for q in QUESTIONS.get(lang, QUESTIONS["en"])]
    for lang in langs:
        pairs += [(g, lang) for g in GREETINGS.get(lang, ())]
    rng.shuffle(pairs)
    while len(pairs) < count:
        pairs += pairs[: count - len(pairs)]
    return pairs[:count]


def question_turn(index: int, text: str, lang: str) -> Turn:
    user = USERS[index % len(USERS)]
    message = ChatMessage(source="build", user=user, text=text, spoken_name=user)
    return Turn(id=index, kind=TurnKind.ANSWER, message=message, lang=lang)


def question_messages(
    catalog: Catalog,
    questions: Sequence[tuple[str, str]],
    build_messages: Callable[[Turn], list[dict[str, str]]],
) -> list[list[dict[str, str]]]:
    """The chat messages the host would send for each question (system prompt included)."""
    return [build_messages(question_turn(i, q, lang)) for i, (q, lang) in enumerate(questions)]


def calibration_texts(catalog: Catalog, system_prompt: str) -> list[str]:
    """Text for the pruning importance: the system prompt (persona, catalog, house rules)
    and what the host says about each product."""
    return [system_prompt, *catalog_sentences(catalog)]
