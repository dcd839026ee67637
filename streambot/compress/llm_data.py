"""The stream's own text for pruning and distilling the LLM (no dataset needed).

Questions a viewer would ask about the catalog (price, stock, shipping, what it does, in English
and Chinese, in the casual forms chat uses), each turned into the exact chat messages the host
sends (the real system prompt and turn message, brain/prompt.py); the house rules and the
catalog's own sentences for calibration. The teacher writes the answers the student learns.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from streambot.catalog import Catalog
from streambot.compress.wav2lip_data import catalog_sentences
from streambot.events import ChatMessage
from streambot.text import fold
from streambot.turn import Turn, TurnKind

if TYPE_CHECKING:
    from streambot.brain.eval_questions import Question

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
        "what does the {name} cost",
        "any {name} left?",
        "why should I get the {name}?",
        "is the {name} good for a gift?",
        "do you still sell the {name}",
        "quick question about the {name}: how long is shipping?",
    ),
    "zh": (
        "{name}多少钱？",
        "{name}还有货吗",
        "{name}几天发货？",
        "{name}有什么特点",
        "主播，{name}值得买吗？",
        "{name}现在什么价",
        "{name}还剩几个？",
        "{name}好用吗",
        "{name}适合送人吗？",
        "{name}什么时候能到",
    ),
}
# Small talk the teacher also answers for training, by the evaluation's kind: without it the
# student never learned to greet (the evaluation holds out every greeting it has) and answered
# "Hi!" with a price (BENCHMARKS.md, the LLM frontier of 2026-12-07). Texts that fold to a
# held-out question are left out by ``split_questions``.
CHATTER = {
    "greeting": {
        "en": ("hi!", "hello from Texas", "first time here", "good morning all", "hey host!"),
        "zh": ("主播好", "来了来了", "大家好", "主播晚上好", "哈喽哈喽"),
    },
    "offtopic": {
        "en": ("are you a real person?", "what's your name?", "do you like cats?", "so hot today"),
        "zh": ("你是真人吗？", "你叫什么名字", "今天好热啊", "你喜欢猫吗"),
    },
}
USERS = ("mika_22", "Bao", "coffee_fan", "小鱼", "jp", "Lena", "nightowl", "阿杰")


def catalog_questions(
    catalog: Catalog, count: int | None = 100, seed: int = 0, langs: Sequence[str] = ("en", "zh")
) -> list[tuple[str, str]]:
    """``count`` (question, lang) pairs about the catalog's products, in a fixed order (they
    come round again when the catalog has fewer; None: each one once)."""
    rng = random.Random(seed)
    pairs = product_questions(catalog, langs)
    for lang in langs:
        pairs += [(g, lang) for g in CHATTER["greeting"].get(lang, ())]
    rng.shuffle(pairs)
    if count is None:
        return pairs
    while len(pairs) < count:
        pairs += pairs[: count - len(pairs)]
    return pairs[:count]


def product_questions(
    catalog: Catalog, langs: Sequence[str] = ("en", "zh")
) -> list[tuple[str, str]]:
    """Every (question, lang) of ``QUESTIONS`` about every product, product by product."""
    pairs = []
    for product in catalog.product:
        for lang in langs:
            name = product.name_zh if lang == "zh" else product.name
            pairs += [(q.format(name=name), lang) for q in QUESTIONS.get(lang, QUESTIONS["en"])]
    return pairs


def question_key(text: str) -> str:
    """A question as held-out questions are told apart: folded, punctuation made spaces."""
    return " ".join(re.sub(r"[\W_]+", " ", fold(text)).split())


def split_questions(
    catalog: Catalog, held_out: int, teacher: int
) -> tuple[list[Question], list[Turn]]:
    """(``held_out`` of the answer evaluation's questions, every kind represented; the
    ``teacher`` turns the teacher answers for training). No teacher question is, folded, a
    held-out one or a held-out follow-up's first question: the student is judged on questions
    it never learned. The teacher gets the evaluation's other questions, the build's own about
    each product and its small talk (``CHATTER``), taken round robin by kind so that every
    kind is taught however few answers are asked for; where they are fewer than ``teacher``,
    they come round again from another viewer (another name in the prompt)."""
    from streambot.brain.eval_questions import Question, questions, round_robin, sample

    evaluation = questions(catalog)
    held = sample(evaluation, held_out)
    seen = {question_key(q.text) for q in held}
    seen |= {question_key(q.previous.text) for q in held if q.previous is not None}
    candidates = [
        *evaluation,
        *(Question(text, lang, "product") for text, lang in product_questions(catalog)),
        *(
            Question(text, lang, kind)
            for kind, by_lang in CHATTER.items()
            for lang, texts in by_lang.items()
            for text in texts
        ),
    ]
    pool: list[Question] = []
    for q in candidates:
        if (key := question_key(q.text)) not in seen:
            seen.add(key)
            pool.append(q)
    if not pool:
        raise ValueError("the catalog gives no question outside the held-out ones")
    pool = round_robin(pool)
    turns = []
    for i in range(teacher):
        q = pool[i % len(pool)]
        turns.append(question_turn(i + i // len(pool), q.text, q.lang))  # another viewer a round
    return held, turns


def question_turn(index: int, text: str, lang: str) -> Turn:
    user = USERS[index % len(USERS)]
    message = ChatMessage(source="build", user=user, text=text, spoken_name=user)
    return Turn(id=index, kind=TurnKind.ANSWER, message=message, lang=lang)


def calibration_texts(catalog: Catalog, system_prompt: str) -> list[str]:
    """Text for the pruning importance: the system prompt (persona, catalog, house rules)
    and what the host says about each product."""
    return [system_prompt, *catalog_sentences(catalog)]
