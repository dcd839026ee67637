"""The output guard's claim rules: what real small models got wrong on the demo catalog
(issue 30; ``tests/fixtures/real_llm_outputs.toml``), each checked against the facts of the
products a sentence is about (brain/knowledge.py; its figures: brain/figures.py; babble and
language: brain/babble.py). ``guard.ReplyGuard`` calls them on each sentence.

* comparisons ("cheaper", "the most expensive", "更便宜", "比…贵", "lighter", "bigger")
  between catalog products must hold for the catalog's prices (or weights, capacities); one
  the catalog has no figures for is a claim it does not support;
* claims the catalog does not support (shipping destinations, warranties, returns, policies,
  colours, gifts, free shipping, a product or order called free: "it's free", "免费送")
  unless the products' own facts say them (the shipping terms say free; a price of 0), and
  a reply opening with "Yes" to a question about one of them ("Do you ship to Canada?"): the
  sentence is replaced by ``intents.CHECK_EN`` / ``CHECK_ZH``;
* unit figures ("12 hours", "40 settings", "500 ml", "3种颜色") must be among the facts of the
  product the sentence is about, shipping times ("1 to 2 days", "1天", "next day") the
  product's shipping terms, and restock times ("back in 3 days", "明天补货") its restock time;
* names: a near miss of a catalog name ("SnowPeek", "冰峰保温杯") is refused;
* "not sold here" (the house rule for what the catalog lacks) is refused of a catalog product
  and in answer to a question that asks for nothing to buy: the real 0.5B, asked its name,
  said "Bao is not sold here today.";
* a number that is none of the catalog's figures nor a quantity in sight ("I am a 24/7 live
  speaker", "$59. 50 per hour") is refused (``stray_figures``, checked last: the rules above
  name the problem better when they apply).

Totals for a quantity ("two", "2", "两个": n x a price is a right total, never corrected to
the unit price) are the guard's money rule, with ``knowledge.quantities``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streambot.brain.figures import (
    SHIP_TALK,
    SHIP_WORDS,
    Days,
    figures,
    overlaps,
    shipping_times,
)
from streambot.brain.knowledge import (
    CAPACITY_ML,
    CJK_RUN,
    FUNCTION_ZH,
    WEIGHT_G,
    WORD,
    Facts,
    Knowledge,
    Said,
    base_word,
    distance,
    facts_pool,
    hamming,
    normal,
    subjects,
)
from streambot.catalog import Product
from streambot.intents import asked_detail, says_detail
from streambot.lang import detect_lang
from streambot.screening import screen_fold
from streambot.text import fold


# -- names ----------------------------------------------------------------------------------
def near_miss(said: Said, kn: Knowledge) -> str | None:
    """A word that is almost a catalog name but is none ("SnowPeek", "冰峰保温杯")."""
    words = [base_word(w) for w in WORD.findall(screen_fold(said.text))]
    pairs = [a + b for a, b in itertools.pairwise(words) if a.isalpha() and b.isalpha()]
    for word in [*(w for w in words if w.isalpha()), *pairs]:
        if len(word) < 5 or word in kn.words or word in kn.brands:
            continue
        for brand in kn.brands:
            limit = 1 if len(brand) < 8 else 2
            if distance(word, brand, limit) <= limit:
                return f"{word!r} is not a catalog name (the name is {brand!r})"
        if (pair := _blend(word, kn.brands)) is not None:
            return f"{word!r} is not a catalog name (it blends {pair[0]!r} and {pair[1]!r})"
    if (glued := _glued(words, kn)) is not None:
        return glued
    for name in kn.full_names:
        k, target = len(name), " ".join(name)
        for i in range(len(words) - k + 1):
            window = " ".join(words[i : i + k])
            limit = 2 if len(target) >= 10 else 1
            if window != target and distance(window, target, limit) <= limit:
                return f"{window!r} is not a catalog name (the name is {target!r})"
    for run in CJK_RUN.finditer(said.text):
        chars = run.group(0)
        for name in kn.zh_names:
            for i in range(len(chars) - len(name) + 1):
                window = chars[i : i + len(name)]
                if hamming(window, name) == 1 and _foreign(window, kn):
                    return f"{window!r} is not a catalog name (the name is {name!r})"
        for core in kn.zh_cores:
            for i in range(len(chars) - len(core)):
                window, after = chars[i : i + len(core)], chars[i + len(core) :].lstrip("的")
                kind = any(after.startswith(k) for k in kn.zh_kinds)
                if kind and hamming(window, core) == 1 and _foreign(window, kn):
                    return f"{window!r} is not a catalog name (the name is {core!r})"
    return None


def _glued(words: Sequence[str], kn: Knowledge) -> str | None:
    """A word of a catalog name with letters run into its front, before the name's next word
    (a real pruned 0.5B's "Ierothermo Bottle", of "SnowPeak Thermo Bottle"), as a reason."""
    for name in kn.full_names:
        for first, second in itertools.pairwise(name):
            for said, after in itertools.pairwise(words):
                glued = len(said) >= len(first) + 2 and said.endswith(first)
                if after == second and glued and said not in kn.words:
                    target = " ".join(name)
                    return f"'{said} {after}' is not a catalog name (the name is {target!r})"
    return None


def _blend(word: str, brands: Iterable[str]) -> tuple[str, str] | None:
    """The two catalog names ``word`` is made of, the start of one and the end of another
    (a real pruned 0.5B's "AeroBuds", from AeroBrew and SonicBuds), or None."""
    names = list(brands)
    if any(name in word for name in names):  # a catalog name with a word run into it
        return None
    for cut in range(3, len(word) - 2):
        head, tail = word[:cut], word[cut:]
        first = next((a for a in names if a.startswith(head) and len(a) > cut), None)
        last = next((b for b in names if b.endswith(tail) and len(b) > len(tail)), None)
        if first is not None and last is not None and first != last:
            return first, last
    return None


def _foreign(window: str, kn: Knowledge) -> bool:
    """Chinese that is not the catalog's own wording ("雪峰保温杯"), nor two pieces of it
    ("蓝牙耳塞"), nor built of function words ("护眼的灯")."""
    if window in kn.zh_text or any(c in FUNCTION_ZH for c in window):
        return False
    return not any(
        window[:i] in kn.zh_text and window[i:] in kn.zh_text for i in range(2, len(window) - 1)
    )


# -- claims the catalog does not support ----------------------------------------------------
# free shipping past a threshold, said or in the terms ("free over $35")
_FREE_PAST = r"free (?:over|above|on orders|for orders|with orders)"
_CLAIMS_EN = re.compile(
    r"\b(?:(?P<warranty>warrant(?:y|ies|eed)|guarantee[ds]?|money[- ]back)"
    r"|(?P<returns>(?:free|easy|hassle[- ]free|\d+[- ]days?|accepts?|offers?|no)\s+returns?"
    r"|returns? (?:policy|window|are (?:free|easy|accepted))|return (?:it|them) (?:within|for)"
    r"|returnable|refunds?|refundable|exchanges?|exchangeable)"
    r"|(?P<policy>polic(?:y|ies)|free trial|trial period)"
    r"|(?P<gift>free gifts?|gift (?:box|set|card)s?|bundled?)"
    r"|(?P<free>ships? (?:for )?free|free (?:shipping|delivery|postage)"
    r"|(?:shipping|delivery) is free|free to (?:ship|deliver|send)"
    rf"|{_FREE_PAST})"
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
# shipping free only past a threshold ("free over $35", "满35美元包邮"): free shipping said
# without its condition is not so for one item (the real 0.5B: "... ships in 1 to 2 days, free
# over $35. 7 units are available, and it's free to ship." of a $24.50 bottle)
_FREE_IF = re.compile(rf"{_FREE_PAST}|满")
_CONDITION = re.compile(
    r"\b(?:over|above|orders? of|at least|more than)\s+(?:us)?\$?\s?\d"
    r"|满\s*[\d一二三四五六七八九十百两]",
    re.IGNORECASE,
)


def _supported(kind: str, claim: str, facts: Facts, sentence: str) -> bool:
    """Whether a product's own facts say what ``claim``, said in ``sentence``, says."""
    claim = normal(claim)
    if kind == "price":  # a product called free: only one the catalog prices at nothing
        return facts.price == 0
    if kind == "free":  # free shipping: the shipping terms say free, in either language,
        says_free = (  # and where they set a threshold, the sentence names it
            ("free" in facts.shipping)
            if claim.isascii()
            else any(w in facts.shipping for w in _FREE_ZH)
        )
        return says_free and (
            not _FREE_IF.search(facts.shipping) or bool(_CONDITION.search(sentence))
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
            facts = facts_pool(said, m.start(), kn)
            if not any(_supported(kind, m.group(0), f, said.text) for f in facts):
                return m.group(0)
    return _yes_to_what_is_not_said(said, kn)


_YES = re.compile(
    r"^\W*(?:(?:yes|yeah|yep|sure|of course|absolutely|definitely|certainly)\b"
    r"|是的|可以|当然|没问题|能的|有的)",
    re.IGNORECASE,
)


# "comes in ..." to a colour or size question names a variant: the real 1.5B answered "What
# colours does the SnowPeak Thermo Bottle come in?" with "... comes in leak-proof lids."
_VARIANT = re.compile(
    r"\b(?:comes?|(?:is|are) (?:available|offered|sold)) in\b(?! handy)"
    r"|有(?:多种|几种|[\d一二三四五六七八九十]+种)",
    re.IGNORECASE,
)


def _yes_to_what_is_not_said(said: Said, kn: Knowledge) -> str | None:
    """A reply opening with "Yes" to a question about what a catalog has no field for (does
    it ship to Canada, is there a warranty) makes that claim without its words: the real
    1.5B answered "Do you ship the grinder to Canada?" with "Yes, you can have the AeroBrew
    Coffee Grinder for $89.99." So does a sentence naming a variant ("comes in ...") to a
    colour or size question. Supported where the product's own text speaks of it."""
    if not said.question:
        return None
    yes = not said.so_far and _YES.match(said.text) is not None
    if not yes and not _VARIANT.search(said.text):
        return None
    lang = detect_lang(said.question)
    detail = asked_detail(fold(said.question), lang)
    if detail is None or not (yes or detail in ("colour", "size")):
        return None
    pool = facts_pool(said, 0, kn)
    if any(says_detail(f.text, detail, "en") or says_detail(f.text, detail, "zh") for f in pool):
        return None
    return f"yes to a {detail} question" if yes else f"a {detail} the catalog does not name"


# -- unit figures and shipping times --------------------------------------------------------
def unit_figures(said: Said, kn: Knowledge) -> str | None:
    """A figure with a unit that is none of the facts of the product it is about."""
    for figure in figures(said.text, said.money):
        pool = facts_pool(said, figure.start, kn)
        if not all(
            any(v in f.values and figure.units & f.units for facts in pool for f in facts.figures)
            for v in figure.values
        ):
            names = ", ".join(p.name for p in subjects(figure.start, said.spans, said.about))
            return f"{figure.text!r} is none of the facts of {names or 'any product'}"
    return None


def shipping_time(said: Said, kn: Knowledge) -> str | None:
    """A shipping time ("1天", "in 2 days", "next day") that is not the product's."""
    if not SHIP_TALK.search(said.text):
        return None
    for days in shipping_times(said.text):
        pool = facts_pool(said, said.text.find(days.text), kn)
        if not any(_same_days(days, d) for facts in pool for d in facts.days):
            terms = " / ".join(facts.shipping for facts in pool)
            return f"shipping time {days.text!r}: the catalog says {terms}"
    for m in SHIP_WORDS.finditer(said.text):
        pool = facts_pool(said, m.start(), kn)
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
# A day said with its qualifier ("next Friday", "this Friday", "Friday"; "下周五", "周五"): a
# claim is the catalog's only when the whole phrase is (a real 1.5B said "back in stock on
# Friday" of a lamp back next Friday).
_RESTOCK_WHEN = re.compile(
    r"\b(?:(?:next|this|coming)\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|weekend)\b|\b(?:tomorrow|tonight|today|next week|next month|this week"
    r"|end of the (?:week|month))\b"
    r"|[下这本]?(?:周|星期|礼拜)[一二三四五六日天末]|明天|后天|今天|今晚|下周|下个?月|月底|这周|本周",
    re.IGNORECASE,
)


def _restock_phrases(facts: Facts) -> set[str]:
    return {screen_fold(m.group(0)) for m in _RESTOCK_WHEN.finditer(facts.restock)}


def restock_time(said: Said, kn: Knowledge) -> str | None:
    """A time a product is back ("back in 3 days", "restocked tomorrow", "明天补货") that is
    not the catalog's restock time for it."""
    if not _RESTOCK_TALK.search(said.text) or SHIP_TALK.search(said.text):
        return None  # a shipping time is shipping_time's
    for days in shipping_times(said.text):
        pool = facts_pool(said, said.text.find(days.text), kn)
        if not any(_same_days(days, d) for facts in pool for d in facts.restock_days):
            return f"restock time {days.text!r}: the catalog says {_restocks(pool)}"
    for m in _RESTOCK_WHEN.finditer(said.text):
        pool = facts_pool(said, m.start(), kn)
        if not any(screen_fold(m.group(0)) in _restock_phrases(facts) for facts in pool):
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
# a question that asks which one ("哪个便宜？"), answered with a bare adjective after a name
# ("AeroBrew咖啡磨豆机便宜，价格是89.99美元。", the real 1.5B in bfloat16, spoken): the answer
# says that one is the cheapest of them
_WHICH_ZH = re.compile(r"哪(?:个|款|一个|一款|种)")
_BARE_ZH = re.compile(rf"(?<![不没更最太])(?:很|比较|较)?(?P<a>{_ADJECTIVE_ZH})(?!一些|一点|些|点)")
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
        end = after[0][1]
        for s in spans:  # its other name after it ("SnowPeak Thermo Bottle / 雪峰保温杯")
            if s[0] >= end and s[2].id == after[0][2].id and not text[end : s[0]].strip(" /"):
                end = s[1]
        rest = text[end : end + 8]
        adj = re.match(rf"\W*(?:那么|这么|更|还|要|再)?(?P<a>{_ADJECTIVE_ZH})", rest)
        if adj is None:
            continue
        dimension, lower = _ADJECTIVES_ZH[adj["a"]]
        negated = m["neg"] is not None or m.group(0).endswith(("不如", "没有"))
        said_as = text[m.start() : end + adj.end()]  # "比保温杯便宜"
        out.append(
            _Comparison(m.start(), said_as, dimension, lower, False, negated, after[0][2], True)
        )
    taken = [(c.at, c.at + len(c.text) + 12) for c in out]
    for m in _COMPARATIVE_ZH.finditer(text):
        if overlaps(m.start(), m.end(), taken):
            continue
        dimension, lower = _ADJECTIVES_ZH[m["a"] or m["b"]]
        most = m["most"] == "最"
        negated = re.search(r"(?:不|没有?)\s*$", text[max(0, m.start() - 3) : m.start()])
        out.append(
            _Comparison(
                m.start(), m.group(0), dimension, lower, most, negated is not None, None, False
            )
        )
    if _WHICH_ZH.search(said.question):  # "哪个便宜？" "磨豆机便宜。": the cheaper of them
        taken = [(c.at, c.at + len(c.text)) for c in out]
        for m in _BARE_ZH.finditer(text):
            if overlaps(m.start(), m.end(), taken):
                continue
            dimension, lower = _ADJECTIVES_ZH[m["a"]]
            out.append(
                _Comparison(m.start(), m.group(0), dimension, lower, True, False, None, False)
            )
    return out


def _measure(product: Product, dimension: str, kn: Knowledge) -> float | None:
    if dimension == "price":
        return product.price
    facts = kn.facts.get(product.id)
    if facts is None:
        return None
    return facts.measure(CAPACITY_ML if dimension == "size" else WEIGHT_G)


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
        values = [v for p in products if (v := _measure(p, c.dimension, kn)) is not None]
        if len(values) < len(products):
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


# -- numbers the catalog does not have --------------------------------------------------------
# -- "not sold here" -----------------------------------------------------------------------
_NOT_SOLD = re.compile(
    r"\bnot\s+(?:sold|carried|offered|available)\s+here\b"
    r"|\b(?:don't|do not|doesn't|does not)\s+(?:sell|carry|offer)\b"
    r"|不卖|没有卖|没卖|不在售|不出售|不销售",
    re.IGNORECASE,
)
# a price turned down, not the product: "不，62美元的价格不卖。" (the real 1.5B, asked to sell
# the grinder for $62), "这个价不卖", "we don't sell it for $62"
_A_PRICE_BEFORE = re.compile(r"(?:价格?|价钱|[\d.]+\s*(?:美元|元|块钱?))[^，。,.!！？?]{0,3}$")
_A_PRICE_AFTER = re.compile(
    r"^\s*(?:(?:it|them|this|that|one)\s+)?(?:for|at)\s+(?:us)?\$\s?\d", re.IGNORECASE
)
# a question that may be answered "not sold here": it asks whether something is sold
_ASKS_TO_BUY = re.compile(
    r"\b(?:sells?|selling|sold|carry|carries|have|has|got|offer|buy|stock|get|any)\b"
    r"|卖|买|有没有|有.{0,12}吗|出售",
    re.IGNORECASE,
)


def not_sold(said: Said, kn: Knowledge) -> str | None:
    """ "Not sold here" said of a catalog product (it is sold), or to a viewer who asked
    for nothing to buy (the house rule read back: "what's your name?" -> "Bao is not sold
    here today.")."""
    m = _NOT_SOLD.search(said.text)
    if m is None:
        return None
    if _A_PRICE_BEFORE.search(said.text[: m.start()]) or _A_PRICE_AFTER.match(said.text[m.end() :]):
        return None  # a price refused, the product still sold
    sold = [p for p in subjects(m.start(), said.spans, said.about) if p.price > 0]
    if sold:
        return f"says {m.group(0)!r} of the {sold[0].name}, which the catalog sells"
    if said.question and not _ASKS_TO_BUY.search(screen_fold(said.question)):
        return f"says {m.group(0)!r} to a question that asks for nothing to buy"
    return None


_NUMBER_RUN = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?!\w)")  # not inside a word ("IPX5")


def stray_figures(said: Said, kn: Knowledge, counts: set[int]) -> str | None:
    """A number that is none of the catalog's (a price, a stock, a day count, a number in a
    product's facts or names) nor a quantity in sight (``counts``): a real pruned 0.5B's "I am
    a 24/7 live speaker" and "$59. 50 per hour". Money has its own rule."""
    for m in _NUMBER_RUN.finditer(said.text):
        if overlaps(m.start(), m.end(), said.money):
            continue
        value = float(m.group(0).replace(",", ""))
        if value in kn.numbers or (value.is_integer() and int(value) in counts):
            continue
        return f"{m.group(0)!r} is no figure of the catalog"
    return None
