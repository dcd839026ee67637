"""What the guard knows of a catalog, worked out once (``Knowledge``): each product's facts
(``Facts``: its figures with their units, its shipping and restock times, the words of its
facts), its names and their near misses, the prompt's own text; and a sentence in context
(``Said``: what it names and is about), the quantities it speaks of, the words it is made of."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streambot import intents
from streambot.brain.figures import figures, shipping_times
from streambot.brain.prompt import FACTS, PromptStyle, render_product, turn_messages
from streambot.catalog import Catalog, Product
from streambot.events import ChatMessage
from streambot.intents import (
    DIGITS,
)
from streambot.screening import screen_fold, squash
from streambot.text import IDEOGRAPHS, is_cjk
from streambot.turn import Turn, TurnKind

Span = tuple[int, int, Product]  # (start, end, product) of a product's name in a sentence

# -- the facts of a product -----------------------------------------------------------------
CAPACITY_ML = {"ml": 1.0, "l": 1000.0, "oz": 29.5735}
WEIGHT_G = {"g": 1.0, "kg": 1000.0, "lb": 453.592, "jin": 500.0}


class Facts:
    """What a product's catalog entry lets the host say, worked out once."""

    def __init__(self, product: Product) -> None:
        p = product
        fields = [
            p.name,
            p.name_zh,
            p.id,
            *p.aliases,
            *p.aliases_zh,
            p.shipping,
            p.shipping_zh,
            p.restock,
            p.restock_zh,
            *p.points,
            *p.points_zh,
        ]
        self.text = normal(" | ".join(f for f in fields if f))
        self.shipping = normal(f"{p.shipping} | {p.shipping_zh}")
        self.price = p.price
        self.figures = [f for field in fields for f in figures(field)]
        self.days = [d for field in (p.shipping, p.shipping_zh) for d in shipping_times(field)]
        self.restock = normal(f"{p.restock} | {p.restock_zh}")
        self.restock_days = [d for f in (p.restock, p.restock_zh) for d in shipping_times(f)]
        self.numbers = {v for f in self.figures for v in f.values} | {float(p.stock)}
        self.numbers |= {v for field in fields for v in numbers_in(field)}

    def measure(self, table: dict[str, float]) -> float | None:
        """The product's capacity (ml) or weight (g), when its facts give one."""
        for figure in self.figures:
            for unit in figure.units & table.keys():
                return figure.values[0] * table[unit]
        return None


def normal(text: str) -> str:
    """Folded, "colour" spelled "color": how a claim and the facts are compared."""
    return screen_fold(text).replace("colour", "color")


def numbers_in(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in re.findall(DIGITS, text)}


# -- prompt scaffolding ---------------------------------------------------------------------
WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, n: int = 6) -> set[str]:
    """The runs of ``n`` words of a folded text."""
    words = WORD.findall(text)
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _prompt_shingles(catalog: Catalog) -> set[str]:
    """Six-word runs of what the prompts say around the facts (persona, style and house rules,
    the framing of a question, a pitch, a script line, a "say"), none of which a reply says;
    the facts themselves are left out (saying them is the point)."""
    empty = ChatMessage("guard", "viewer", "")
    turns = [
        Turn(0, TurnKind.ANSWER, empty, "en"),
        Turn(0, TurnKind.PITCH, None, "en", catalog.product[0].id),
        Turn(0, TurnKind.SCRIPT, None, "en"),
        Turn(0, TurnKind.SAY, None, "en", ""),
    ]
    facts = [render_product(p, slots) for p in catalog.product for slots in (False, True)]
    styles = [PromptStyle(memory, facts) for memory in ("turns", "summary") for facts in FACTS]
    memory = [(p.name, "") for p in catalog.product[:2]]  # the summary line says it
    text = "\n".join(
        m["content"]
        for t in turns
        for s in styles
        for m in turn_messages(t, catalog, memory, style=s)
    )
    for block in facts:
        text = text.replace(block, "\n")

    # line by line: ``fold`` reads at most a chat message's worth of text (a hostile viewer's
    # megabyte is not folded whole), and the prompts are many times that
    def runs(text: str) -> set[str]:
        return set().union(*(shingles(screen_fold(line)) for line in text.splitlines()))

    return runs(text) - set().union(*(runs(b) for b in facts))


# -- names ----------------------------------------------------------------------------------
_CAMEL = re.compile(r"[a-z][A-Z]")
FUNCTION_ZH = set("的了是在和与也都很就这那个款把被给让对向从为吗呢吧啊")
CJK_RUN = re.compile(f"[{IDEOGRAPHS}]+")


def base_word(word: str) -> str:
    """A word without its plural "s" ("bottles", "sonicbuds")."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance, or ``limit + 1`` once it is past ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def hamming(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


# -- words ------------------------------------------------------------------------------
TOKEN = re.compile(rf"[a-z0-9]+|[{IDEOGRAPHS}]")
_SMALL_WORDS = frozenset(["the", "and", "for", "its", "are", "was", "with", "you"])


def content_token(token: str) -> bool:
    """A token that says something: a number, an ideograph, a word of 3 letters or more
    other than the smallest."""
    return token[0].isdigit() or is_cjk(token) or (len(token) > 2 and token not in _SMALL_WORDS)


def squashed(text: str) -> str:
    """``text`` folded, without spaces or punctuation: how two sayings are compared."""
    return squash(screen_fold(text))


def long_saying(squashed: str) -> bool:
    """Long enough to be an echo, not a greeting said back ("Hi!", "你好"): 8 letters or
    digits, or 4 ideographs."""
    cjk = sum(1 for c in squashed if is_cjk(c))
    return cjk >= 4 or len(squashed) >= 8


# -- the catalog's knowledge ----------------------------------------------------------------
class Knowledge:
    """What one catalog lets the host say: each product's ``Facts``, its names as the name
    rules compare them, every figure, and the prompts' own wording."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.facts = {p.id: Facts(p) for p in catalog.product}
        self.numbers = {float(p.price) for p in catalog.product}
        self.numbers |= set().union(*(f.numbers for f in self.facts.values()))
        self.prompt = _prompt_shingles(catalog)
        self._names(catalog)
        ascii_names = {screen_fold(n) for n in catalog.names() if n.isascii()}
        nouns = sorted(ascii_names, key=len, reverse=True)
        # what a bare number before it counts: a product sold ("two thermo bottles", "2 of
        # the grinder", "3 units"), not its stock ("7 bottles left")
        self.counted = re.compile(
            rf"\s+(?:(?:x\s+)?(?:[a-z'-]+\s+){{0,2}}?(?:{'|'.join(map(re.escape, nouns))}"
            r"|units?|pieces?|items?|pcs|pairs?|sets?|of (?:them|these|those))(?:e?s)?\b"
            r"(?!\s+(?:left|remaining|in stock|available|on hand))"
            r"|for\s+(?:only\s+|just\s+)?(?=[$€£¥]|\d))"  # "two for $89.99": a price of two
        )

    def nameless(self, text: str) -> str:
        """``text`` squashed, every product name and alias taken out."""
        return squash(self._without_names(text))

    def _without_names(self, text: str) -> str:
        folded = screen_fold(text)
        for name in self._all_names:
            folded = folded.replace(name, " ")
        return folded

    def new_words(self, text: str, said: str) -> set[str]:
        """The words (numbers, ideographs) of ``text`` that ``said`` does not have, product
        names and the small words of English aside: what ``text`` would add to ``said``."""
        have = set(TOKEN.findall(screen_fold(said)))
        words = TOKEN.findall(self._without_names(text))
        return {w for w in words if w not in have and content_token(w)}

    def _names(self, catalog: Catalog) -> None:
        self._all_names = sorted({screen_fold(n) for n in catalog.names()}, key=len, reverse=True)
        self.words: set[str] = set()  # every catalog word, for the name rules' exceptions
        self.brands: set[str] = set()  # "aerobrew", "snowpeak": made-up names, near-missable
        self.full_names: list[tuple[str, ...]] = []  # "snowpeak thermo bottle"
        self.zh_names: set[str] = set()  # "雪峰保温杯", "护眼台灯": 4+ ideographs
        self.zh_cores: set[str] = set()  # "雪峰": a name less the kind of thing it is
        self.zh_kinds: set[str] = set()  # "保温杯", "耳机": what may follow a core
        zh_text = []
        for p in catalog.product:
            english = [p.name, p.id, *p.aliases]
            self.words |= {
                base_word(w)
                for t in (*english, *p.points, p.shipping, p.restock)
                for w in WORD.findall(screen_fold(t))
            }
            self.brands |= {base_word(screen_fold(w)) for w in p.name.split() if _CAMEL.search(w)}
            if p.id.isalnum() and len(p.id) >= 5:
                self.brands.add(base_word(screen_fold(p.id)))
            words = tuple(base_word(w) for w in WORD.findall(screen_fold(p.name)))
            if len(words) >= 2:
                self.full_names.append(words)
            chinese = ["".join(CJK_RUN.findall(n)) for n in (p.name_zh, *p.aliases_zh)]
            self.zh_names |= {n for n in chinese if len(n) >= 4}
            self.zh_kinds |= {n for n in chinese if len(n) >= 2}
            whole = chinese[0] if chinese else ""
            for kind in sorted(chinese[1:], key=len, reverse=True):
                if whole.endswith(kind) and len(whole) - len(kind) >= 2:
                    self.zh_cores.add(whole[: -len(kind)])
                    break
            zh_text += [p.name_zh, *p.aliases_zh, *p.points_zh, p.shipping_zh, p.restock_zh]
        self.zh_text = screen_fold(" ".join(zh_text))
        self.brands = {b for b in self.brands if len(b) >= 5}

    def of(self, products: Iterable[Product]) -> list[Facts]:
        return [self.facts[p.id] for p in products if p.id in self.facts]


# -- a sentence in context ------------------------------------------------------------------
@dataclass
class Said:
    """One sentence, what it names and what it is about (``guard.ReplyGuard`` fills it)."""

    text: str
    spans: list[Span]  # products named, in order
    about: list[Product]  # those named, else those of the question
    everyone: list[Product]  # named and of the question
    money: list[tuple[int, int]]  # where its money figures are
    question: str = ""  # the viewer's words it answers
    previous: Sequence[str] = ()  # what was said just before it (last answer, this reply)
    so_far: str = ""  # this reply so far: nothing of it is said twice, fact or not


def subjects(at: int, spans: Sequence[Span], about: list[Product]) -> list[Product]:
    """The product a claim at ``at`` is about: the nearest one named before it (else after);
    with none named, every product the sentence may be about."""
    if not spans:
        return about
    before = [s for s in spans if s[0] < at]
    return [before[-1][2]] if before else [spans[0][2]]


def facts_pool(said: Said, at: int, kn: Knowledge) -> list[Facts]:
    """The facts a claim at ``at`` is checked against (the whole catalog when the sentence is
    about nothing in particular)."""
    return kn.of(subjects(at, said.spans, said.about) or kn.catalog.product)


# -- quantities -----------------------------------------------------------------------------
_STOCK_BEFORE_ZH = re.compile(r"(?:剩下?|剩余|库存|现货|还有|只有|仅有|最后)\s*$")


def quantities(text: str, kn: Knowledge) -> set[int]:
    """How many of a product ``text`` speaks of buying (``intents.quantities``, in either
    language): 2 for "two thermo bottles", "2个", "两个保温杯", "x2". A bare number counts only
    what the catalog sells ("2 thermo bottles", "2 units"; not "2 years"), and a stock figure
    ("7 bottles left", "还剩7件") is no quantity."""
    folded = screen_fold(text)
    found = [
        q.value
        for q in intents.quantities(folded, "en")
        if not q.bare or kn.counted.match(folded, q.end)
    ]
    for q in intents.quantities(text, "zh"):
        if not _STOCK_BEFORE_ZH.search(text[: q.start]):
            found.append(q.value)
    return {n for n in found if n >= 2}
