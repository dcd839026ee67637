"""The output guard's rules beyond a price, a stock figure and a link: what real small models
got wrong on the demo catalog (issue 30; ``tests/fixtures/real_llm_outputs.toml``).

``guard.ReplyGuard`` calls them on each sentence. Each reads the sentence against the facts of
the products it is about; ``Knowledge`` works those out once per catalog: each product's
figures with their units ("12 hours", "40档", "five color temperatures"), its shipping times,
the words of its facts and its names.

* quantities ("two", "2", "两个", "2个"): a money figure that is n x a price is a right total;
  with a quantity in sight a wrong figure is refused, never corrected to the unit price;
* comparisons ("cheaper", "the most expensive", "更便宜", "比…贵", "lighter", "bigger")
  between catalog products must hold for the catalog's prices (or weights, capacities); one
  the catalog has no figures for is a claim it does not support;
* claims the catalog does not support (shipping destinations, warranties, returns, policies,
  colours, gifts, free shipping, a product or order called free: "it's free", "免费送")
  unless the products' own facts say them (the shipping terms say free; a price of 0): the
  sentence is replaced by ``intents.CHECK_EN`` / ``CHECK_ZH``;
* unit figures ("12 hours", "40 settings", "500 ml", "3种颜色") must be among the facts of the
  product the sentence is about, shipping times ("1 to 2 days", "1天", "next day") the
  product's shipping terms, and restock times ("back in 3 days", "明天补货") its restock time;
* names: a near miss of a catalog name ("SnowPeek", "冰峰保温杯") is refused;
* language: Chinese in a reply to English, or an English sentence in a reply to Chinese
  (catalog names aside), is refused;
* babble, never spoken: an echo of the viewer's question (or a sentence nearly it: "Sam won
  the game last night" to "Who won the game last night?"), a repeat of what was just said, a
  sentence of this reply said again (fact or not), a digit run, a repeated fragment, prompt
  scaffolding ("A viewer wrote", the question in quotes, the prompt's own text, brackets, the
  catalog's "selling points:" label), a sentence without words, a model's refusal
  boilerplate ("I don't have enough information to answer this question", said to "Hi!").
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streambot import intents
from streambot.brain.prompt import FACTS, PromptStyle, quoted, render_product, turn_messages
from streambot.catalog import Catalog, Product
from streambot.events import ChatMessage
from streambot.intents import (
    CHECK_PHRASES,
    DIGITS,
    EN_NUMBER,
    ZH_NUMERAL,
    ZH_NUMERALS,
    en_number,
    zh_number,
)
from streambot.screening import screen_fold, squash
from streambot.sentences import split_sentences
from streambot.text import IDEOGRAPHS, is_cjk
from streambot.turn import Turn, TurnKind

Span = tuple[int, int, Product]  # (start, end, product) of a product's name in a sentence


# -- numbers --------------------------------------------------------------------------------
def number(text: str) -> float | None:
    """The value of "12", "1,299.50", "twelve", "forty-two", "十二", "两"; None for none."""
    text = text.strip().lower()
    if not text:
        return None
    if text[0].isdigit():
        try:
            return float(text.replace(",", ""))
        except ValueError:
            return None
    if all(c in ZH_NUMERALS for c in text):
        return float(zh_number(text))
    value = en_number(text)
    return None if value is None else float(value)


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


# -- unit figures ---------------------------------------------------------------------------
# A figure's unit, as a key that English and Chinese share ("hours", "小时": "hour").
_UNITS_EN = {
    "second": "second",
    "sec": "second",
    "minute": "minute",
    "min": "minute",
    "hour": "hour",
    "hr": "hour",
    "day": "day",
    "week": "week",
    "month": "month",
    "year": "year",
    "yr": "year",
    "setting": "setting",
    "level": "setting",
    "speed": "setting",
    "mode": "mode",
    "color": "color",
    "colour": "color",
    "shade": "color",
    "temperature": "temperature",
    "ml": "ml",
    "milliliter": "ml",
    "millilitre": "ml",
    "liter": "l",
    "litre": "l",
    "oz": "oz",
    "ounce": "oz",
    "gram": "g",
    "kg": "kg",
    "kilogram": "kg",
    "lb": "lb",
    "pound": "lb",
    "mah": "mah",
    "watt": "w",
    "volt": "v",
    "hz": "hz",
    "inch": "inch",
    "cm": "cm",
    "mm": "mm",
    "foot": "ft",
    "feet": "ft",
    "meter": "m",
    "metre": "m",
    "percent": "%",
    "degree": "degree",
    "db": "db",
    "decibel": "db",
    "cup": "cup",
}
# only written right after the digits: "12h", "1l", "500g", "5w"
_UNITS_ATTACHED = {
    "h": "hour",
    "l": "l",
    "g": "g",
    "w": "w",
    "v": "v",
    "m": "m",
    "%": "%",
    "°": "degree",
    "°c": "degree",
    "°f": "degree",
}
_UNITS_ZH = {
    "小时": "hour",
    "钟头": "hour",
    "分钟": "minute",
    "秒钟": "second",
    "秒": "second",
    "工作日": "day",
    "天": "day",
    "星期": "week",
    "周": "week",
    "个月": "month",
    "年": "year",
    "档位": "setting",
    "档": "setting",
    "挡": "setting",
    "种颜色": "color",
    "种模式": "mode",
    "种色温": "temperature",
    "毫升": "ml",
    "升": "l",
    "千克": "kg",
    "公斤": "kg",
    "克": "g",
    "斤": "jin",
    "瓦": "w",
    "英寸": "inch",
    "寸": "inch",
    "厘米": "cm",
    "毫米": "mm",
    "米": "m",
    "度": "degree",
}
_STOP_EN = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "from",
        "at",
        "by",
        "per",
        "than",
        "is",
        "are",
        "it",
        "its",
        "that",
        "this",
        "left",
        "more",
        "less",
        "off",
        "only",
        "just",
    ]
)
_FIGURE_EN = re.compile(
    rf"(?<![\w.,$€£¥￥/])(?P<n>{DIGITS}|\b(?:{EN_NUMBER}|an?)\b)"
    rf"(?:\s*(?:to|-|–|—|or|~)\s*(?P<m>{DIGITS}|\b(?:{EN_NUMBER})\b))?"
    r"(?P<att>%|°[cf]?|[a-z]+\b)?(?P<words>(?:[\s-]+[a-z]+\b){0,3})",
    re.IGNORECASE,
)
_FIGURE_ZH = re.compile(
    rf"(?<![A-Za-z0-9.,第])(?P<n>{DIGITS}|{ZH_NUMERAL}+)"
    rf"(?:\s*(?:到|至|-|~|～|—|–)\s*(?P<m>{DIGITS}|{ZH_NUMERAL}+))?"
    rf"\s*(?:个)?(?P<unit>{'|'.join(sorted(_UNITS_ZH, key=len, reverse=True))})"
)
_ZH_IDIOMS = re.compile("一年四季|一天到晚|三天两头|一天天")


@dataclass(frozen=True)
class Figure:
    start: int
    end: int
    text: str
    values: tuple[float, ...]  # one, or both ends of a range ("1 to 2 days")
    units: frozenset[str]  # the unit's keys ("hour"; "color" and "temperature")


def _unit_key(word: str) -> str | None:
    word = word.lower()
    for cut in (0, 1, 2):  # "hours", "inches"
        if cut and not word.endswith("s"):
            break
        if (key := _UNITS_EN.get(word[: len(word) - cut])) is not None:
            return key
    return None


def figures(text: str, skip: Sequence[tuple[int, int]] = ()) -> list[Figure]:
    """The figures with a unit in ``text`` ("12 hours", "a month", "1到2天", "五档"), but none
    inside ``skip`` (money)."""
    out: list[Figure] = []
    for m in _FIGURE_EN.finditer(text):
        if _overlaps(m.start("n"), m.end("n"), skip):
            continue
        units: set[str] = set()
        if m["att"] and m["n"][0].isdigit():  # "500ml", "12h"
            key = _UNITS_ATTACHED.get(m["att"].lower()) or _unit_key(m["att"])
            units |= {key} if key else set()
        elif not m["att"]:
            for word in m["words"].replace("-", " ").split():
                if word.lower() in _STOP_EN:
                    break
                if (key := _unit_key(word)) is not None:
                    units.add(key)
                if m["n"].lower() in ("a", "an"):  # "a month": only its first word
                    break
        values = tuple(
            v
            for v in (
                number(m["n"]) if m["n"].lower() not in ("a", "an") else 1.0,
                number(m["m"] or ""),
            )
            if v is not None
        )
        if m["n"].lower() in ("a", "an") and not units & {"hour", "day", "week", "month", "year"}:
            continue
        if units and values:
            out.append(Figure(m.start("n"), m.end(), m.group(0).strip(), values, frozenset(units)))
    taken = [(f.start, f.end) for f in out]
    idioms = [im.span() for im in _ZH_IDIOMS.finditer(text)]
    for m in _FIGURE_ZH.finditer(text):
        if _overlaps(m.start(), m.end(), [*skip, *taken, *idioms]):
            continue
        unit, digits = _UNITS_ZH[m["unit"]], m["n"][0].isdigit()
        values = tuple(v for v in (number(m["n"]), number(m["m"] or "")) if v is not None)
        if unit == "degree" and not digits:  # "一度": once
            continue
        if unit == "year" and values and values[0] >= 1900:  # "2025年": a date
            continue
        out.append(Figure(m.start(), m.end(), m.group(0), values, frozenset({unit})))
    return sorted(out, key=lambda f: f.start)


# -- shipping times -------------------------------------------------------------------------
_SHIP_TALK = re.compile(
    r"\b(?:ship|ships|shipped|shipping|dispatch(?:ed|es)?|deliver(?:s|ed|y)?|arriv(?:e|es|ed|al)"
    r"|postage|at your door)\b|发货|发出|寄出|到货|送达|到手|收到|快递|物流|配送|包邮",
    re.IGNORECASE,
)
_DAYS_EN = re.compile(
    rf"(?<![\w.,$€£¥￥])(?:(?P<within>within|in under|up to|no more than|at most)\s+)?"
    rf"(?P<n>{DIGITS}|\b(?:{EN_NUMBER}|a)\b)"
    rf"(?:\s*(?:to|-|–|—|or)\s*(?P<m>{DIGITS}|\b(?:{EN_NUMBER})\b))?"
    r"[\s-]+(?:business[\s-]+|working[\s-]+)?(?P<unit>days?|weeks?)\b",
    re.IGNORECASE,
)
_DAYS_ZH = re.compile(
    rf"(?P<within>不超过|最多)?(?<![A-Za-z0-9.,第])(?P<n>{DIGITS}|{ZH_NUMERAL}+)"
    rf"(?:\s*(?:到|至|-|~|～|—|–)\s*(?P<m>{DIGITS}|{ZH_NUMERAL}+))?\s*个?"
    r"(?P<unit>工作日|天|星期|周)(?P<inside>之内|以内|内)?"
)
_SHIP_WORDS = re.compile(
    r"\b(?:same[- ]day|next[- ]day|overnight|tomorrow|ships? (?:out )?today|shipped today)\b"
    r"|当天|当日|次日|隔天|隔日|明天|今天发|今日发",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Days:
    text: str
    low: float | None  # None: "within 4 days"
    high: float
    unit: str  # "day" or "week"


def shipping_times(text: str) -> list[Days]:
    out = []
    for pattern in (_DAYS_EN, _DAYS_ZH):
        for m in pattern.finditer(text):
            n = 1.0 if m["n"].lower() == "a" else number(m["n"])
            high = number(m["m"]) if m["m"] else n
            if n is None or high is None:
                continue
            unit = "week" if m["unit"].lower().startswith(("week", "星期", "周")) else "day"
            within = m["within"] or m.groupdict().get("inside")
            out.append(Days(m.group(0), None if within and not m["m"] else n, high, unit))
    return out


# -- the facts of a product -----------------------------------------------------------------
_CAPACITY_ML = {"ml": 1.0, "l": 1000.0, "oz": 29.5735}
_WEIGHT_G = {"g": 1.0, "kg": 1000.0, "lb": 453.592, "jin": 500.0}


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
        self.text = _normal(" | ".join(f for f in fields if f))
        self.shipping = _normal(f"{p.shipping} | {p.shipping_zh}")
        self.price = p.price
        self.figures = [f for field in fields for f in figures(field)]
        self.days = [d for field in (p.shipping, p.shipping_zh) for d in shipping_times(field)]
        self.restock = _normal(f"{p.restock} | {p.restock_zh}")
        self.restock_days = [d for f in (p.restock, p.restock_zh) for d in shipping_times(f)]
        self.numbers = {v for f in self.figures for v in f.values} | {float(p.stock)}
        self.numbers |= {v for field in fields for v in _numbers_in(field)}

    def measure(self, table: dict[str, float]) -> float | None:
        """The product's capacity (ml) or weight (g), when its facts give one."""
        for figure in self.figures:
            for unit in figure.units & table.keys():
                return figure.values[0] * table[unit]
        return None


def _normal(text: str) -> str:
    """Folded, "colour" spelled "color": how a claim and the facts are compared."""
    return screen_fold(text).replace("colour", "color")


def _numbers_in(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in re.findall(DIGITS, text)}


# -- prompt scaffolding ---------------------------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+")


def shingles(text: str, n: int = 6) -> set[str]:
    """The runs of ``n`` words of a folded text."""
    words = _WORD.findall(text)
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


def _quote_label() -> re.Pattern[str]:
    """How the prompt introduces a viewer's words ("A viewer wrote", 'Viewer "ann" wrote'),
    read from ``prompt.quoted`` itself; a reply that says it is reading its prompt back."""
    labels = [quoted("", user).split(" (", 1)[0] for user in (None, "NAMEMARK")]
    alternatives = [
        re.escape(label).replace("NAMEMARK", r".{0,40}?").replace('"', "[\"“”']?")
        for label in labels
    ]
    return re.compile("|".join(alternatives), re.IGNORECASE)


_QUOTE_LABEL = _quote_label()
_SCAFFOLD = re.compile(
    r"[\[\]{}]|<\|[^|>]{1,30}\|>|^\W*(?:assistant|user|system)\s*[:：]"
    r"|\bselling points\s*[:：]|卖点\s*[:：]",  # the catalog's labels, read out as they are listed
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"([^"]{2,})"|“([^”]{2,})”|「([^」]{2,})」|『([^』]{2,})』')


# -- names ----------------------------------------------------------------------------------
_CAMEL = re.compile(r"[a-z][A-Z]")
_FUNCTION_ZH = set("的了是在和与也都很就这那个款把被给让对向从为吗呢吧啊")
_CJK_RUN = re.compile(f"[{IDEOGRAPHS}]+")


def _base(word: str) -> str:
    """A word without its plural "s" ("bottles", "sonicbuds")."""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _distance(a: str, b: str, limit: int) -> int:
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


def _hamming(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


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
        have = set(_TOKEN.findall(screen_fold(said)))
        words = _TOKEN.findall(self._without_names(text))
        return {w for w in words if w not in have and _content(w)}

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
                _base(w)
                for t in (*english, *p.points, p.shipping, p.restock)
                for w in _WORD.findall(screen_fold(t))
            }
            self.brands |= {_base(screen_fold(w)) for w in p.name.split() if _CAMEL.search(w)}
            if p.id.isalnum() and len(p.id) >= 5:
                self.brands.add(_base(screen_fold(p.id)))
            words = tuple(_base(w) for w in _WORD.findall(screen_fold(p.name)))
            if len(words) >= 2:
                self.full_names.append(words)
            chinese = ["".join(_CJK_RUN.findall(n)) for n in (p.name_zh, *p.aliases_zh)]
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


def _pool(said: Said, at: int, kn: Knowledge) -> list[Facts]:
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


# -- babble ---------------------------------------------------------------------------------
_TOKEN = re.compile(rf"[a-z0-9]+|[{IDEOGRAPHS}]")
_SMALL_WORDS = frozenset(["the", "and", "for", "its", "are", "was", "with", "you"])


def _content(token: str) -> bool:
    """A token that says something: a number, an ideograph, a word of 3 letters or more
    other than the smallest."""
    return token[0].isdigit() or is_cjk(token) or (len(token) > 2 and token not in _SMALL_WORDS)


_RUN = re.compile(r"\d[\d,.]*\d|\d")


def squashed(text: str) -> str:
    """``text`` folded, without spaces or punctuation: how two sayings are compared."""
    return squash(screen_fold(text))


def _long(squashed: str) -> bool:
    """Long enough to be an echo, not a greeting said back ("Hi!", "你好"): 8 letters or
    digits, or 4 ideographs."""
    cjk = sum(1 for c in squashed if is_cjk(c))
    return cjk >= 4 or len(squashed) >= 8


def babble(said: Said, kn: Knowledge) -> str | None:
    """Why ``said`` is no sentence to speak (see the module docstring), or None."""
    text = said.text
    letters = sum(c.isalpha() and not is_cjk(c) for c in text)
    cjk = sum(is_cjk(c) for c in text)
    if not cjk and letters < 2:  # "…", or a bare figure: "99." after "$59." (a real 0.5B)
        return "no words"
    folded = screen_fold(text)
    if _QUOTE_LABEL.search(text) or _SCAFFOLD.search(text) or shingles(folded) & kn.prompt:
        return "prompt scaffolding"
    for run in _RUN.finditer(text):
        digits = sum(c.isdigit() for c in run.group(0))
        if digits < 5:
            continue
        decimals = run.group(0).rsplit(".", 1)[1] if "." in run.group(0) else ""
        if len(decimals) >= 3 or run.group(0).startswith("00"):  # "0000000000" is no 0
            return f"digit run {run.group(0)!r}"
        if _overlaps(*run.span(), said.money):
            continue
        try:
            value = float(run.group(0).replace(",", ""))
        except ValueError:
            return f"digit run {run.group(0)!r}"
        if value not in kn.numbers:
            return f"digit run {run.group(0)!r}: no catalog figure"
    if (fragment := _repeated(_TOKEN.findall(folded))) is not None:
        return f"repeated fragment {fragment!r}"
    if _REFUSAL.search(text):
        return "a model's refusal boilerplate"
    if said.question and (echo := _echo(text, said.question, kn)):
        return echo
    if said.previous and text not in CHECK_PHRASES and (why := repeat(text, said.previous, kn)):
        return why
    if said.so_far and text not in CHECK_PHRASES:
        return said_twice(text, said.so_far)
    return None


def _repeated(tokens: list[str]) -> str | None:
    """A fragment said three times running ("the the the", "so good so good so good"), or a
    run of three words (four ideographs) said three times in one sentence."""
    for n in range(1, 9):
        for i in range(len(tokens) - 3 * n + 1):
            unit = tokens[i : i + n]
            if tokens[i + n : i + 2 * n] != unit or tokens[i + 2 * n : i + 3 * n] != unit:
                continue
            if n == 1 and is_cjk(unit[0]) and tokens[i + 3 : i + 4] != unit:
                continue  # "对对对", "哈哈哈": three of one ideograph is speech
            return " ".join(unit)
    words = [t for t in tokens if not is_cjk(t)]
    ideographs = "".join(t for t in tokens if is_cjk(t))
    runs = Counter(" ".join(words[i : i + 3]) for i in range(len(words) - 2))
    runs |= Counter(ideographs[i : i + 4] for i in range(len(ideographs) - 3))
    return next((run for run, count in runs.items() if count >= 3), None)


def _echo(text: str, question: str, kn: Knowledge) -> str | None:
    """The viewer's question said back: the whole of it or of one of its sentences, a question
    of the viewer's said as the host's, the viewer's words in quotes, or the question with a
    word changed (compared without product names, which an answer says again)."""
    said, asked = squashed(text), squashed(question)
    if not _long(said) or not asked:
        return None
    parts = {asked} | {squashed(s) for s in split_sentences(question, early_first_clause=False)}
    if said in parts:
        return "an echo of the viewer's question"
    if text.rstrip().endswith(("?", "？")) and (said in asked or asked in said):
        return "an echo of the viewer's question"
    for m in _QUOTED.finditer(text):
        inside = squashed(next(g for g in m.groups() if g))
        if len(inside) >= 4 and (inside in asked or asked in inside):
            return "prompt scaffolding: the viewer's words in quotes"
    if not any(c.isdigit() for c in text):  # a sentence with a figure says something
        said, asked = kn.nameless(text), kn.nameless(question)
        long_enough = len(asked) >= NEAR_ECHO_CHARS or sum(map(is_cjk, asked)) >= 6
        if long_enough and difflib.SequenceMatcher(None, said, asked).ratio() >= NEAR_ECHO:
            return "an echo of the viewer's question, nearly word for word"
    return None


# A sentence this alike the question (difflib's ratio, squashed), when the question is this
# long, says it back with a word changed: a model filling in what it cannot know.
NEAR_ECHO, NEAR_ECHO_CHARS = 0.85, 16
# What an instruct model says instead of answering; the catalog brain answers instead.
_REFUSAL = re.compile(
    r"\bI (?:don't|do not) have (?:enough|any|the) information\b|\bas an AI\b"
    r"|\bI(?:'m| am) (?:just )?an AI\b|\bI (?:can't|cannot) (?:help|assist) with (?:that|this)\b"
    r"|作为(?:一个)?(?:AI|人工智能)|我没有(?:足够的)?(?:相关)?信息",
    re.IGNORECASE,
)


def repeat(text: str, previous: Sequence[str], kn: Knowledge) -> str | None:
    """A sentence with a fact (a figure or a product's name) said just before, in the last
    answer or this reply, said again (alone or with more after it). A pleasantry said again
    ("Great question!") is no repeat."""
    said = squashed(text)
    for before in previous:
        for sentence in {*split_sentences(before), *split_sentences(before, False)}:
            old = squashed(sentence)
            if not _long(old) or old not in said or sentence in CHECK_PHRASES:
                continue
            if any(c.isdigit() for c in old) or kn.catalog.find(sentence):
                return f"repeats what was just said: {sentence!r}"
    return None


def said_twice(text: str, so_far: str) -> str | None:
    """A sentence of this reply said again, whole or in part, with or without a fact (a real
    0.5B said "The weather is not in stock, and the product is not in stock." seven times)."""
    said = squashed(text)
    for sentence in {*split_sentences(so_far), *split_sentences(so_far, False)}:
        old = squashed(sentence)
        if (_long(old) and old in said) or (_long(said) and said in old):
            return f"says again what this reply said: {sentence!r}"
    return None


def wrong_language(said: Said, lang: str, kn: Knowledge) -> str | None:
    """A sentence not in the viewer's language, catalog names aside: Chinese in an English
    reply (a real 0.5B: "a quiet ceramic碗", a catalog line read with its Chinese half), or
    an English sentence in a Chinese one (English to "晚上好！")."""
    rest = kn.nameless(said.text)
    ideographs = sum(map(is_cjk, rest))
    if lang == "zh" and not ideographs and sum(c.isalpha() for c in rest) >= 2:
        return "wrong language: English in a reply to Chinese"
    if lang != "zh" and ideographs:
        return "wrong language: Chinese in a reply to English"
    return None


# -- names ----------------------------------------------------------------------------------
def near_miss(said: Said, kn: Knowledge) -> str | None:
    """A word that is almost a catalog name but is none ("SnowPeek", "冰峰保温杯")."""
    words = [_base(w) for w in _WORD.findall(screen_fold(said.text))]
    pairs = [a + b for a, b in itertools.pairwise(words) if a.isalpha() and b.isalpha()]
    for word in [*(w for w in words if w.isalpha()), *pairs]:
        if len(word) < 5 or word in kn.words or word in kn.brands:
            continue
        for brand in kn.brands:
            limit = 1 if len(brand) < 8 else 2
            if _distance(word, brand, limit) <= limit:
                return f"{word!r} is not a catalog name (the name is {brand!r})"
    for name in kn.full_names:
        k, target = len(name), " ".join(name)
        for i in range(len(words) - k + 1):
            window = " ".join(words[i : i + k])
            limit = 2 if len(target) >= 10 else 1
            if window != target and _distance(window, target, limit) <= limit:
                return f"{window!r} is not a catalog name (the name is {target!r})"
    for run in _CJK_RUN.finditer(said.text):
        chars = run.group(0)
        for name in kn.zh_names:
            for i in range(len(chars) - len(name) + 1):
                window = chars[i : i + len(name)]
                if _hamming(window, name) == 1 and _foreign(window, kn):
                    return f"{window!r} is not a catalog name (the name is {name!r})"
        for core in kn.zh_cores:
            for i in range(len(chars) - len(core)):
                window, after = chars[i : i + len(core)], chars[i + len(core) :].lstrip("的")
                kind = any(after.startswith(k) for k in kn.zh_kinds)
                if kind and _hamming(window, core) == 1 and _foreign(window, kn):
                    return f"{window!r} is not a catalog name (the name is {core!r})"
    return None


def _foreign(window: str, kn: Knowledge) -> bool:
    """Chinese that is not the catalog's own wording ("雪峰保温杯"), nor two pieces of it
    ("蓝牙耳塞"), nor built of function words ("护眼的灯")."""
    if window in kn.zh_text or any(c in _FUNCTION_ZH for c in window):
        return False
    return not any(
        window[:i] in kn.zh_text and window[i:] in kn.zh_text for i in range(2, len(window) - 1)
    )


# -- claims the catalog does not support ----------------------------------------------------
_CLAIMS_EN = re.compile(
    r"\b(?:(?P<warranty>warrant(?:y|ies|eed)|guarantee[ds]?|money[- ]back)"
    r"|(?P<returns>(?:free|easy|hassle[- ]free|\d+[- ]days?|accepts?|offers?|no)\s+returns?"
    r"|returns? (?:policy|window|are (?:free|easy|accepted))|return (?:it|them) (?:within|for)"
    r"|returnable|refunds?|refundable|exchanges?|exchangeable)"
    r"|(?P<policy>polic(?:y|ies)|free trial|trial period)"
    r"|(?P<gift>free gifts?|gift (?:box|set|card)s?|bundled?)"
    r"|(?P<free>ships? (?:for )?free|free (?:shipping|delivery|postage)"
    r"|(?:shipping|delivery) is free|free (?:over|above|on orders|for orders|with orders))"
    r"|(?P<colour>colou?rs|colou?r (?:options?|choices?|variants?|ways?)"
    r"|(?:red|blue|green|black|white|pink|purple|yellow|grey|gray|silver|gold|beige|brown"
    r"|navy|teal|rose gold)(?! (?:coffee|tea|light|noise)))"
    r"|(?P<place>canada|mexico|europe|the eu|the uk|united kingdom|britain|the us|the usa"
    r"|united states|america|australia|asia|japan|china|germany|france|brazil|india"
    r"|worldwide|internationally|international shipping|overseas|abroad|globally"
    r"|every country|any country|all over the world|nationwide)"
    # a product or the order called free: a price the catalog does not say ("hands-free",
    # "feel free to ask" and "free up" are none)
    r"|(?P<price>(?<!feel )(?<![-\w])free(?![-\w])(?!\s+(?:to|up|from|time)\b)"
    r"|at no (?:extra |additional )?(?:cost|charge)|no charge|costs? (?:you )?nothing"
    r"|for nothing|on the house|complimentary))\b",
    re.IGNORECASE,
)
_CLAIMS_ZH = re.compile(
    r"(?P<warranty>保修|质保|保固|三包)|(?P<returns>退货|退款|退换|包退|包换|无理由|运费险)"
    r"|(?P<policy>售后|政策)|(?P<gift>赠品|赠送|附赠|礼品|买一送一)|(?P<free>包邮|免运费|免邮|免费(?:配送|送货|发货|快递|邮寄|包邮))"
    r"|(?P<colour>颜色|配色|[红蓝绿黑白粉紫黄橙灰银金棕]色(?!温))"
    r"|(?P<place>加拿大|美国|英国|欧洲|日本|澳大利亚|澳洲|德国|法国|巴西|墨西哥|港澳台|香港|台湾"
    r"|海外|国外|国际|全球|全国|偏远地区|新疆|西藏)"
    r"|(?P<price>免费|白送|不要钱|不花钱|零元)"
)
_FREE_ZH = ("包邮", "免运费", "免邮")


def _supported(kind: str, claim: str, facts: Facts) -> bool:
    """Whether a product's own facts say what ``claim`` says."""
    claim = _normal(claim)
    if kind == "price":  # a product called free: only one the catalog prices at nothing
        return facts.price == 0
    if kind == "free":  # free shipping: the shipping terms say free, in either language
        return (
            ("free" in facts.shipping)
            if claim.isascii()
            else any(w in facts.shipping for w in _FREE_ZH)
        )
    if kind == "place":
        return claim.removeprefix("the ").removesuffix("ly") in facts.shipping
    if kind != "colour" and claim.isascii():  # "warranties": "warrant"; "returnable": "return"
        for suffix in ("ies", "able", "ed", "es", "s", "d"):
            if claim.endswith(suffix) and len(claim) - len(suffix) >= 4:
                claim = claim[: -len(suffix)]
                break
    return claim in facts.text


def unsupported(said: Said, kn: Knowledge) -> str | None:
    """A claim (a shipping destination, warranty, return, policy, colour, gift, free shipping,
    a product or order called free) that no fact of the product it is about says, or None."""
    for pattern in (_CLAIMS_EN, _CLAIMS_ZH):
        for m in pattern.finditer(said.text):
            kind = next(k for k, v in m.groupdict().items() if v)
            if not any(_supported(kind, m.group(0), f) for f in _pool(said, m.start(), kn)):
                return m.group(0)
    return None


# -- unit figures and shipping times --------------------------------------------------------
def unit_figures(said: Said, kn: Knowledge) -> str | None:
    """A figure with a unit that is none of the facts of the product it is about."""
    for figure in figures(said.text, said.money):
        pool = _pool(said, figure.start, kn)
        if not all(
            any(v in f.values and figure.units & f.units for facts in pool for f in facts.figures)
            for v in figure.values
        ):
            names = ", ".join(p.name for p in subjects(figure.start, said.spans, said.about))
            return f"{figure.text!r} is none of the facts of {names or 'any product'}"
    return None


def shipping_time(said: Said, kn: Knowledge) -> str | None:
    """A shipping time ("1天", "in 2 days", "next day") that is not the product's."""
    if not _SHIP_TALK.search(said.text):
        return None
    for days in shipping_times(said.text):
        pool = _pool(said, said.text.find(days.text), kn)
        if not any(_same_days(days, d) for facts in pool for d in facts.days):
            terms = " / ".join(facts.shipping for facts in pool)
            return f"shipping time {days.text!r}: the catalog says {terms}"
    for m in _SHIP_WORDS.finditer(said.text):
        pool = _pool(said, m.start(), kn)
        if not any(screen_fold(m.group(0)) in facts.shipping for facts in pool):
            return f"shipping time {m.group(0)!r}: the catalog does not say it"
    return None


# A product coming back: a time said with it must be the catalog's restock time ("back in 3
# days" for a lamp back next Friday, a real 0.5B).
_RESTOCK_TALK = re.compile(
    r"\b(?:back|restock\w*|replenish\w*|in stock again|available again)\b"
    r"|补货|补上|重新上架|再上架|回来|到货",
    re.IGNORECASE,
)
_RESTOCK_WHEN = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend|tomorrow|tonight"
    r"|today|next week|next month|this week|end of the (?:week|month))\b"
    r"|(?:周|星期|礼拜)[一二三四五六日天末]|明天|后天|今天|今晚|下周|下个?月|月底|这周|本周",
    re.IGNORECASE,
)


def restock_time(said: Said, kn: Knowledge) -> str | None:
    """A time a product is back ("back in 3 days", "restocked tomorrow", "明天补货") that is
    not the catalog's restock time for it."""
    if not _RESTOCK_TALK.search(said.text) or _SHIP_TALK.search(said.text):
        return None  # a shipping time is shipping_time's
    for days in shipping_times(said.text):
        pool = _pool(said, said.text.find(days.text), kn)
        if not any(_same_days(days, d) for facts in pool for d in facts.restock_days):
            return f"restock time {days.text!r}: the catalog says {_restocks(pool)}"
    for m in _RESTOCK_WHEN.finditer(said.text):
        pool = _pool(said, m.start(), kn)
        if not any(screen_fold(m.group(0)) in facts.restock for facts in pool):
            return f"restock time {m.group(0)!r}: the catalog says {_restocks(pool)}"
    return None


def _restocks(pool: Sequence[Facts]) -> str:
    return " / ".join(f.restock.strip(" |") or "no restock time" for f in pool)


def _same_days(said: Days, catalog: Days) -> bool:
    if said.unit != catalog.unit or said.high != catalog.high:
        return False
    return said.low is None or said.low == (catalog.low if catalog.low is not None else said.low)


# -- comparisons ----------------------------------------------------------------------------
# (dimension, lower: cheaper/smaller/lighter, superlative) of each comparative
_COMPARATIVES_EN = {
    "cheaper": ("price", True, False),
    "less expensive": ("price", True, False),
    "more affordable": ("price", True, False),
    "lower priced": ("price", True, False),
    "cost less": ("price", True, False),
    "costs less": ("price", True, False),
    "cheapest": ("price", True, True),
    "least expensive": ("price", True, True),
    "most affordable": ("price", True, True),
    "lowest priced": ("price", True, True),
    "dearer": ("price", False, False),
    "pricier": ("price", False, False),
    "costlier": ("price", False, False),
    "more expensive": ("price", False, False),
    "higher priced": ("price", False, False),
    "cost more": ("price", False, False),
    "costs more": ("price", False, False),
    "dearest": ("price", False, True),
    "priciest": ("price", False, True),
    "most expensive": ("price", False, True),
    "highest priced": ("price", False, True),
    "bigger": ("size", False, False),
    "larger": ("size", False, False),
    "biggest": ("size", False, True),
    "largest": ("size", False, True),
    "smaller": ("size", True, False),
    "smallest": ("size", True, True),
    "lighter": ("weight", True, False),
    "lightest": ("weight", True, True),
    "heavier": ("weight", False, False),
    "heaviest": ("weight", False, True),
}
_COMPARATIVE_EN = re.compile(
    r"\b(?:" + "|".join(w.replace(" ", r"[\s-]+") for w in _COMPARATIVES_EN) + r")\b", re.I
)
# Chinese: prices only ("最大的亮点", "更重要的是" are no comparisons of size or weight)
_ADJECTIVES_ZH = {"便宜": ("price", True), "实惠": ("price", True), "贵": ("price", False)}
_ADJECTIVE_ZH = "|".join(_ADJECTIVES_ZH)
_COMPARATIVE_ZH = re.compile(
    rf"(?P<most>更|最)(?P<a>{_ADJECTIVE_ZH})|(?P<b>便宜|贵)(?:一些|一点|些|点)"
)
_THAN_ZH = re.compile(r"(?P<neg>不|并不|没)?(?:比|不如|没有)")
_NEGATED_EN = re.compile(r"(?:\b(?:not|no|never)|n't)(?:\s+\w+){0,2}\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class _Comparison:
    at: int  # where the comparative is (the subject is named before it)
    text: str
    dimension: str  # "price", "size" or "weight"
    lower: bool  # cheaper, smaller, lighter
    most: bool  # the cheapest
    negated: bool
    against: Product | None  # what it is compared with ("than the grinder", "比磨豆机")
    against_expected: bool  # "than ..." or "比 ..." was said (an object that is no product)


def _comparisons(said: Said) -> list[_Comparison]:
    text, spans, out = said.text, said.spans, []
    for m in _COMPARATIVE_EN.finditer(text):
        word = re.sub(r"[\s-]+", " ", m.group(0).lower())
        dimension, lower, most = _COMPARATIVES_EN[word]
        than = re.match(r"\s+than\b", text[m.end() :])
        against = None
        if than:
            after = [s for s in spans if s[0] >= m.end() + than.end()]
            against = after[0][2] if after else None
        negated = _NEGATED_EN.search(text[max(0, m.start() - 24) : m.start()]) is not None
        out.append(
            _Comparison(
                m.start(), m.group(0), dimension, lower, most, negated, against, than is not None
            )
        )
    for m in _THAN_ZH.finditer(text):  # "A比B便宜", "A不比B贵", "A没有B便宜", "A不如B实惠"
        after = [s for s in spans if m.end() <= s[0] <= m.end() + 2]
        if not after:
            continue
        rest = text[after[0][1] : after[0][1] + 8]
        adj = re.match(rf"\W*(?:那么|这么|更|还|要|再)?(?P<a>{_ADJECTIVE_ZH})", rest)
        if adj is None:
            continue
        dimension, lower = _ADJECTIVES_ZH[adj["a"]]
        negated = m["neg"] is not None or m.group(0).endswith(("不如", "没有"))
        said_as = text[m.start() : after[0][1] + adj.end()]  # "比保温杯便宜"
        out.append(
            _Comparison(m.start(), said_as, dimension, lower, False, negated, after[0][2], True)
        )
    taken = [(c.at, c.at + len(c.text) + 12) for c in out]
    for m in _COMPARATIVE_ZH.finditer(text):
        if _overlaps(m.start(), m.end(), taken):
            continue
        dimension, lower = _ADJECTIVES_ZH[m["a"] or m["b"]]
        most = m["most"] == "最"
        negated = re.search(r"(?:不|没有?)\s*$", text[max(0, m.start() - 3) : m.start()])
        out.append(
            _Comparison(
                m.start(), m.group(0), dimension, lower, most, negated is not None, None, False
            )
        )
    return out


def _measure(product: Product, dimension: str, kn: Knowledge) -> float | None:
    if dimension == "price":
        return product.price
    facts = kn.facts.get(product.id)
    if facts is None:
        return None
    return facts.measure(_CAPACITY_ML if dimension == "size" else _WEIGHT_G)


def comparison(said: Said, kn: Knowledge) -> tuple[bool, str] | None:
    """(False, why) for a comparison the catalog contradicts; (True, what) for one it has no
    figures for; None when every comparison between catalog products holds."""
    for c in _comparisons(said):
        if c.against_expected and c.against is None:
            continue  # "cheaper than a café latte": not two catalog products
        named = [s for s in said.spans if c.against is None or s[2].id != c.against.id]
        before = [s for s in named if s[0] < c.at]
        after = [s for s in named if s[0] > c.at]
        others = [p for p in said.everyone if c.against is None or p.id != c.against.id]
        if before or after:
            subject = (before[-1] if before else after[0])[2]
        elif len(others) == 1 and c.against is not None:
            subject = others[0]
        else:
            continue  # "it's cheaper": nothing to say what is
        if c.most:
            pool = said.everyone if len(said.everyone) >= 2 else list(kn.catalog.product)
            against = [p for p in pool if p.id != subject.id]
        elif c.against is not None:
            against = [c.against]
        else:
            against = [p for p in said.everyone if p.id != subject.id]
        if not against:
            continue
        products = [subject, *against]
        if c.dimension == "price" and len({p.currency for p in products}) > 1:
            continue
        values = [_measure(p, c.dimension, kn) for p in products]
        if any(v is None for v in values):
            return True, c.text
        mine, theirs = values[0], values[1:]
        holds = all((mine < v) if c.lower else (mine > v) for v in theirs)
        if c.most:
            holds = all((mine <= v) if c.lower else (mine >= v) for v in theirs)
        if c.negated:
            holds = not holds
        if not holds:
            listed = ", ".join(f"{p.name} {v:g}" for p, v in zip(products, values, strict=True))
            return False, f"false comparison {c.text!r} for the {subject.name} ({listed})"
    return None
