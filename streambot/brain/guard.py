"""The output guard: every sentence an LLM says is checked against the catalog before it is spoken.

``ReplyGuard.check`` looks at one sentence:

* money figures ("$89.99", "89.99 dollars", "¥99", "99元", "24.50美元", "USD 20") must be the
  price of a product the sentence is about (the products it names, or else the products of the
  question), or a figure from that product's shipping terms in a sentence about shipping;
* stock figures ("7 left", "only 7", "还剩7件") must be the product's stock, and a sold-out
  product must not be called available ("in stock", "有货"), nor an in-stock one sold out;
* no banned words, no links, no invented discounts, no sign of prompt injection or of the
  instructions leaking ("ignore previous instructions", "system prompt", the house rules
  themselves);
* the rules of ``claims`` (from real small models' mistakes): totals for a quantity, comparisons,
  unit figures, shipping and restock times against the product's own facts, near misses of a
  catalog name, the viewer's language (names aside), and babble (echoes of the question,
  repeats of what was just said or of this reply, digit runs, repeated fragments, prompt
  scaffolding). A claim the catalog does not support (a shipping
  destination, a warranty, returns, a colour) makes the sentence "Let me check that for you."
  ("我帮您确认一下。").

A wrong figure is corrected in place when that is unambiguous (one figure of its kind in the
sentence, one product involved, no quantity in sight: a wrong total is never "corrected" to
the unit price); anything else wrong rejects the sentence. A stock question answered "... is
in stock." gets the count filled in after those words, from the catalog.

``GuardedBrain`` (brain/guarded.py) runs an inner brain through it, sentence by sentence.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from streambot import money
from streambot.brain import claims
from streambot.brain.babble import NEGATION, babble, said_again, wrong_language
from streambot.brain.figures import (
    SHIPPING_MONEY_TALK,
    MoneyFigure,
    money_figures,
    same_amount,
    same_figure,
    shipping_terms,
    without_restated_money,
)
from streambot.brain.knowledge import Knowledge, Said, quantities, subjects
from streambot.brain.prompt import CLOSE, OPEN
from streambot.catalog import Catalog, Product, format_price
from streambot.intents import (
    CHECK_EN,
    CHECK_ZH,
    asks_about_a_product,
    detect_intents,
)
from streambot.lang import detect_lang
from streambot.screening import Screen, screen_fold
from streambot.text import fold, has_cjk

log = logging.getLogger(__name__)


@dataclass
class GuardVerdict:
    ok: bool
    text: str  # the sentence to speak: unchanged, or corrected (the original when rejected)
    reason: str | None  # None: nothing wrong; else what was corrected or why it was rejected


# -- money ----------------------------------------------------------------------------------
# a shipping threshold ("free over $35") is a figure of the shipping terms, not a price
_THRESHOLD_BEFORE = re.compile(r"(?:\b(?:over|above|more than|at least|from)|满|超过)\s*$", re.I)
# "in total", "一共": with a quantity in sight the figure is the total, not the unit price
_TOTAL_TALK = re.compile(
    r"\b(?:in total|total|altogether|combined|in all|comes? to)\b|一共|总共|合计|总价|加起来"
    r"|\bfor\s+(?:only\s+|just\s+)?(?=[$€£¥]|\d)",  # "two for $89.99": a price for the two
    re.I,
)
# an opening clause that starts with a pronoun and names nothing, set against a product named
# after it: "It costs $24.50, while the AeroBrew Coffee Grinder costs $89.99." (the real 1.5B,
# after "The SnowPeak Thermo Bottle is cheaper."): "it" is what the reply named before
_PRONOUN_OPENING = re.compile(
    r"^\W*(?:(?:it|it's|its|they|they're|this one|that one)\b|它|这款|这个|那款)", re.I
)
_CONTRAST = re.compile(
    r"[,;，；]\s*(?:(?:while|whereas|but|and|compared to|unlike)\b|而|但|相比|和)", re.I
)
_EACH_TALK = re.compile(r"\b(?:each|apiece|per|a piece|one costs)\b|每个|每件|单价|一个", re.I)


# -- stock ----------------------------------------------------------------------------------
_NOT_STOCK_WORDS = frozenset(
    re.findall(
        r"\w+",
        "second seconds minute minutes hour hours day days week weeks month months year years "
        "setting settings color colors colour colours temperature temperatures mode modes size "
        "sizes percent times grind levels level hz mah watts ml oz inch inches cm mm",
    )
)
_STOCK_EN = [
    # "7 left", "7 bottles left", "42 in stock", "15 units available"
    re.compile(
        r"(?<![\d.,$€£¥￥])\b(?P<n>\d+)\s+(?P<words>(?:[A-Za-z'-]+\s+){0,3}?)"
        r"(?:left|remaining|in stock|available|on hand)\b",
        re.IGNORECASE,
    ),
    # "the stock is 42", "stock of 7", "in stock: 7" (a real 0.5B: "The stock is 42件")
    re.compile(
        r"\bstock(?:\s+(?:is|of|level is|count is|right now is|now is|left is)|\s*:)\s*"
        r"(?P<n>\d+)(?![\d.,]\d)",
        re.IGNORECASE,
    ),
    # "only 7!", "just 7 units", "we have 7 of them"
    re.compile(
        r"\b(?:only|just|have|got|down to)\s+(?P<n>\d+)(?![\d.,]\d)"
        r"(?=\s*(?:[.!?;:)]|,(?!\d)|$|(?:units?|pieces?|items?|pcs|of them)\b))",
        re.IGNORECASE,
    ),
]
_UNITS_ZH = "件|个|台|只|套|瓶|份|副|支|盏|对"
_STOCK_ZH = [
    re.compile(
        rf"(?:剩下?|剩余|库存(?:还有|只有|仅有|有|为|是)?|最后)\s*(?P<n>\d+)\s*(?:{_UNITS_ZH})?"
    ),
    re.compile(
        rf"(?:还有|只有|仅有|有|现货)\s*(?P<n>\d+)\s*(?:{_UNITS_ZH})(?!颜色|款|种|型号|档|小时|天|月)"
    ),
]
_AVAILABLE = re.compile(
    r"\b(?:in[ -]stock|available|ready to ship|still have (?:it|them|some|plenty)|have plenty)\b"
    r"|有货|现货|在售|有库存|可以下单|能买到?",
    re.IGNORECASE,
)
_AVAILABLE_NEGATED_BEFORE = re.compile(
    r"(?:\b(?:not|no|no longer|never|out of|sold out|back|again|once|until|when|will be|won't)\b"
    r"|n't\b)[^.!?。！？]{0,12}$"
    r"|(?:没|无|不|缺|暂无|卖完|售罄|补货|到货|才|再|会|下周|以后|之后)[^.!?。！？，,]{0,3}$",
    re.IGNORECASE,
)
_AVAILABLE_LATER = re.compile(
    r"^[^.!?。！？]{0,6}\b(?:again|soon|next|from|after|starting|later|by)\b", re.I
)
_SOLD_OUT = re.compile(
    r"\b(?:sold out|out of stock|unavailable|no longer available|none left|all gone)\b"
    r"|(?:\bnot|n't)\s+(?:currently\s+|yet\s+|now\s+)?(?:in stock|available)\b"  # a real 1.5B
    # "not available for $62" turns a price down (the real 1.5B, to a discount request)
    r"(?!\s+(?:for|at)\s+(?:[$€£¥\d]|that price|this price))"
    r"|卖完|售罄|缺货|没货|无货|断货|没有货|没有库存",
    re.IGNORECASE,
)

# -- everything else ------------------------------------------------------------------------
_LEAK = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|rules|prompts?|"
        r"guidelines)\b",
        r"\bsystem (?:prompt|message|instructions?)\b",
        r"\bhouse rules?\b",
        r"\bmy (?:instructions|guidelines|programming|prompt|rules)\b",
        r"\bI (?:was|am|have been|'ve been) (?:told|instructed|programmed|prompted) to\b",
        r"\b(?:developer mode|jailbreak|dan mode)\b",
        r"\byou are now\b",
        r"\btreat (?:it |this |them )?as data\b|\bquoted data\b|relevant to this question",
        r"(?:忽略|无视|忘记).{0,10}(?:指令|规则|设定|提示)",
        r"系统提示|提示词|我的指令|内部规则",
    )
] + [re.compile(re.escape(OPEN)), re.compile(re.escape(CLOSE))]
_DISCOUNT = re.compile(
    r"\b\d+\s*%\s*off\b|\b(?:discount(?:ed)?|coupons?|promo codes?|vouchers?|flash sale|"
    r"half (?:price|off)|buy one,? get one|bogo|special price)\b|\bdown from\b"
    r"|\b(?:save|saving)\s+(?:[$€£¥]\s?\d|\d+\s*%)"
    r"|\b(?:was|originally|regularly|normally|usually)\s+(?:only\s+)?[$€£¥]\s?\d"
    r"|\d+(?:\.\d+)?\s*折|[一二三四五六七八九]折|打\S{0,2}折|折扣|优惠券|优惠|立减|减价|降价|原价|特价|秒杀|满\d+减",
    re.IGNORECASE,
)
# "No discount on the grinder." (the real 1.5B) is true
_NEGATION_BEFORE = re.compile(rf"{NEGATION}(?:\W*\w+){{0,3}}?\W*$", re.IGNORECASE)


DIGIT = re.compile(r"\d")  # a sentence with one in it states a figure


class _Reject(Exception):
    pass


def _referred_before(said: Said, context: list[Product]) -> tuple[int, list[Product]]:
    """(where the opening clause ends, the products it is about) for a sentence that opens
    with a pronoun, names no product in that clause, and sets it against one named after
    (``_CONTRAST``): the products the reply named before (``context``), not that one.
    (0, []) for any other sentence."""
    earlier = [p for p in context if p not in said.about]
    if not said.spans or not earlier or not _PRONOUN_OPENING.match(said.text):
        return 0, []
    contrast = _CONTRAST.search(said.text, 0, said.spans[0][0])
    return (contrast.start(), earlier) if contrast else (0, [])


# "in stock" ending a sentence, where the count can follow it (not a clause: the count may
# come in the next, which the streaming splitter hands over after this one)
_IN_STOCK_EN = re.compile(
    r"\b(?:in stock|available)(?:(?: right)? now| today)?(?=\s*(?:[.!]|$))", re.IGNORECASE
)
_IN_STOCK_ZH = re.compile(r"(?:有货|有库存)(?=[。！!]|$)")


def _add_the_count(said: Said, edits: list[tuple[int, int, str]], notes: list[str]) -> None:
    """A stock question answered "in stock" with no count gets the catalog's count after those
    words, as a slot the host fills: the real 1.5B said "The AeroBrew Coffee Grinder is in
    stock." to "Is it in stock?" and "... is still in stock." to "And how many are left?",
    whatever the prompt asked. Not where the count was said already in this reply."""
    sentence = said.text
    for pattern, clause in ((_IN_STOCK_EN, ", {} left"), (_IN_STOCK_ZH, "，还剩{}件")):
        for m in pattern.finditer(sentence):
            if _AVAILABLE_NEGATED_BEFORE.search(sentence[: m.start()]):
                continue
            said_of = subjects(m.start(), said.spans, said.about)
            if len(said_of) != 1 or said_of[0].stock == 0:
                return
            count = str(said_of[0].stock)
            if re.search(rf"(?<!\d){count}(?!\d)", f"{said.so_far} {' '.join(said.previous)}"):
                return
            edits.append((m.end(), m.end(), clause.format(count)))
            notes.append(f"the count added: {count} ({said_of[0].name})")
            return


def _corrected(
    sentence: str,
    edits: list[tuple[int, int, str]],
    said: Said,
    kn: Knowledge,
    asked_of_none: bool,
) -> str:
    """``sentence`` with the guard's ``edits`` (corrected figures) made, refused when they
    make it a repeat (a wrong price corrected can be the very sentence said just before), or
    when the viewer asked about no product (``asked_of_none``): a model that answers "主播好"
    with a product's price and stock, both wrong (a pruned 0.5B did), recites what it does
    not know, and the catalog brain greets instead."""
    if edits and asked_of_none:
        raise _Reject("a figure it had wrong, to a message about no product")
    for start, end, new in sorted(edits, reverse=True):
        sentence = sentence[:start] + new + sentence[end:]
    if edits and (why := said_again(sentence, said, kn)) is not None:
        raise _Reject(f"{why} (once corrected)")
    return sentence


# the viewer's price turned down, the negation tied to it: "It's not available for $62.",
# "We can't do it for $62.", "It's $129, not $90.", "不能以62美元出售", "62美元的价格不卖" (the
# real 1.5B, to "Can I have the aerobrew for $62?"). Not "No, it's $62.": a bare "no", or
# more than a few words between, says the figure, it does not turn it down (and in "not $1
# but $0.50" the other figure is checked as ever).
_TURNED_DOWN_BEFORE = re.compile(
    r"(?:\b(?:not|cannot|unable to)|n['’]t)(?:(?:\s+[a-z]+){0,3}?\s+(?:for|at))?\s*$"
    r"|(?:不能|不可以|没法|无法|不是|不)(?:以|按|用)?\s*$",
    re.IGNORECASE,
)
_TURNED_DOWN_AFTER = re.compile(r"\s*(?:的价格|的价钱|的价)?(?:卖不了|不卖|不能卖|没法卖|不行)")


def _turned_down(sentence: str, fig: MoneyFigure, offers: Sequence[MoneyFigure]) -> bool:
    """Whether ``fig`` is a price the viewer offered (``offers``: the money figures of their
    words) that ``sentence`` turns down."""
    offered = any(same_figure(fig, offer) for offer in offers)
    return offered and (
        _TURNED_DOWN_BEFORE.search(sentence[: fig.start]) is not None
        or _TURNED_DOWN_AFTER.match(sentence, fig.end) is not None
    )


def _right_currency(
    fig: MoneyFigure,
    candidates: Sequence[Product],
    counts: AbstractSet[int],
    total: bool,
    shipping_talk: bool,
) -> str | None:
    """The currency of a right figure whose number ``fig`` says, or None: a candidate's price
    (unless the figure is a total), n x its price for a quantity in sight, or a figure of its
    shipping terms (for a fee, or in a sentence about shipping). The figure's own currency
    when it is one of them, else the first."""
    terms = shipping_terms(candidates)
    if fig.fee:
        rights = terms
    else:
        rights = [(p.price, p.currency) for p in candidates if not total]
        rights += [(round(n * p.price, 2), p.currency) for n in counts for p in candidates]
        rights += terms if shipping_talk else []
    codes = [code.upper() for value, code in rights if same_amount(fig, value)]
    said = [code for code in codes if fig.currencies is None or code in fig.currencies]
    return (said or codes or [None])[0]


class ReplyGuard:
    """Checks one spoken sentence at a time against the catalog (see the module docstring)."""

    def __init__(self, catalog: Catalog, banned_words: Sequence[str] = ()) -> None:
        self.catalog = catalog
        self.screen = Screen(banned_words)  # the same folding as triage's checks
        self._patterns_for: Catalog | None = None
        self._patterns: list[tuple[Product, list[re.Pattern[str]]]] = []
        self._knowledge: Knowledge | None = None

    @property
    def knowledge(self) -> Knowledge:
        """What the catalog lets the host say (``claims``), worked out once per catalog."""
        if self._knowledge is None or self._knowledge.catalog is not self.catalog:
            self._knowledge = Knowledge(self.catalog)
        return self._knowledge

    # -- product mentions -------------------------------------------------------------------
    def _mention_patterns(self) -> list[tuple[Product, list[re.Pattern[str]]]]:
        if self._patterns_for is not self.catalog:  # the catalog may be swapped on reload
            self._patterns = []
            for p in self.catalog.product:
                pats = [
                    re.compile(
                        rf"(?<![a-z0-9]){re.escape(a.lower())}(?:e?s)?(?![a-z0-9])", re.IGNORECASE
                    )
                    for a in [p.name, p.id, *p.aliases]
                    if a
                ]
                pats += [re.compile(re.escape(a)) for a in [p.name_zh, *p.aliases_zh] if a]
                self._patterns.append((p, pats))
            self._patterns_for = self.catalog
        return self._patterns

    def mentions(self, text: str) -> list[tuple[int, int, Product]]:
        """(start, end, product) of every product name or alias in ``text``, in order."""
        spans = [
            (m.start(), m.end(), product)
            for product, pats in self._mention_patterns()
            for pat in pats
            for m in pat.finditer(text)
        ]
        return sorted(spans, key=lambda s: (s[0], s[1]))

    # -- the check ----------------------------------------------------------------------------
    def check(
        self,
        sentence: str,
        products: Sequence[Product],
        lang: str,
        *,
        question: str = "",
        previous: str | Sequence[str] = (),
        so_far: str = "",
    ) -> GuardVerdict:
        """Check one sentence; ``products`` are those of the question (or the pitch topic),
        ``question`` the viewer's words it answers, ``previous`` what was said just before it
        (the last answer, this reply so far): neither is said back. ``so_far``: this reply
        until now, of which nothing is said twice (a fact or not)."""
        previous = [previous] if isinstance(previous, str) else list(previous)
        plain, restated = without_restated_money(sentence)
        try:
            text, notes = self._check(plain, list(products), lang, question, previous, so_far)
        except _Reject as exc:
            return GuardVerdict(False, sentence, str(exc))
        notes = [f"the figure said again left out: {again!r}" for again in restated] + notes
        return GuardVerdict(True, text, "; ".join(notes) if notes else None)

    def _check(
        self,
        sentence: str,
        context: list[Product],
        lang: str,
        question: str,
        previous: list[str],
        so_far: str,
    ) -> tuple[str, list[str]]:
        if self.screen.banned_word(sentence) is not None:
            raise _Reject("banned word")
        if self.screen.has_url(sentence):  # the host never reads out a link, whoever wrote it
            raise _Reject("a link")
        folded = screen_fold(sentence)
        if any(p.search(sentence) or p.search(folded) for p in _LEAK):
            raise _Reject("prompt injection or instructions leaking into the reply")
        for m in _DISCOUNT.finditer(sentence):
            if not _NEGATION_BEFORE.search(sentence[: m.start()]):
                raise _Reject(f"invented discount: {m.group(0)!r} (the catalog has none)")
        kn = self.knowledge
        spans = self.mentions(sentence)
        named = unique_products(p for _, _, p in spans)
        about = named or unique_products(context)
        everyone = unique_products([*named, *context])
        money_spans = [(f.start, f.end) for f in money_figures(sentence)]
        said = Said(sentence, spans, about, everyone, money_spans, question, previous, so_far)
        for rule in (babble, claims.near_miss):
            if (why := rule(said, kn)) is not None:
                raise _Reject(why)
        if (why := wrong_language(said, lang, kn)) is not None:
            raise _Reject(why)
        compared = claims.comparison(said, kn)
        if compared is not None and not compared[0]:
            raise _Reject(compared[1])
        claim = claims.unsupported(said, kn) or (compared[1] if compared else None)
        if claim is not None:  # said as a promise to check, not as a fact
            check = CHECK_ZH if has_cjk(sentence) else CHECK_EN
            return check, [f"unsupported claim {claim!r} (the catalog does not say it)"]
        edits: list[tuple[int, int, str]] = []
        notes: list[str] = []
        counts = quantities(sentence, kn) | quantities(question, kn)
        talks_of_none = bool(question) and not asks_about_a_product(question, lang)
        if not about and DIGIT.search(sentence) and talks_of_none:
            raise _Reject("a figure for no product in particular, to a question about none")
        referred = _referred_before(said, context)
        offers = money_figures(question)
        self._check_money(sentence, about, everyone, lang, edits, notes, counts, referred, offers)
        counted = self._check_stock(sentence, about, everyone, edits, notes)
        self._check_availability(sentence, spans, about)
        if not counted and "stock" in detect_intents(fold(question), lang):
            _add_the_count(said, edits, notes)
        for rule in (
            claims.not_sold,
            claims.shipping_time,
            claims.restock_time,
            claims.unit_figures,
        ):
            if (why := rule(said, kn)) is not None:
                raise _Reject(why)
        if (why := claims.stray_figures(said, kn, counts)) is not None:  # the least specific
            raise _Reject(why)
        return _corrected(sentence, edits, said, kn, talks_of_none), notes

    def _check_money(
        self,
        sentence: str,
        about: list[Product],
        everyone: list[Product],
        lang: str,
        edits: list[tuple[int, int, str]],
        notes: list[str],
        counts: AbstractSet[int] = frozenset(),
        referred: tuple[int, list[Product]] = (0, []),
        offers: Sequence[MoneyFigure] = (),
    ) -> None:
        """``counts``: the quantities in sight ("two bottles"): a figure that is n x a price
        is a right total, and a wrong one is refused, never corrected to the unit price.
        ``referred``: a figure before that offset is about those products (``_referred_before``).
        ``offers``: the viewer's own money figures, which may be turned down (``_turned_down``)."""
        figures = money_figures(sentence)
        named_or_any = about or list(self.catalog.product)  # about nothing: any catalog price
        shipping_talk = SHIPPING_MONEY_TALK.search(sentence) is not None
        a_total = bool(counts and _TOTAL_TALK.search(sentence) and not _EACH_TALK.search(sentence))
        for fig in figures:
            candidates = referred[1] if fig.end <= referred[0] else named_or_any
            # a quantity said before the figure makes it their total: "3个保温杯需要24.50美元。"
            # (the real 1.5B, to "3个保温杯一共多少钱？") says three cost one's price
            stated = quantities(sentence[: fig.start], self.knowledge) - {1}
            total = a_total or bool(stated and not _EACH_TALK.search(sentence))
            right = _right_currency(fig, candidates, counts, total, shipping_talk)
            if right is not None:
                if fig.currencies is not None and right not in fig.currencies:
                    # the catalog's figure in the wrong currency: the real 1.5B says "258元"
                    # of a $258 product in Chinese; the number stays, its currency is put right
                    said_as = money.format_money(fig.value, right, detect_lang(fig.text))
                    edits.append((fig.start, fig.end, said_as))
                    notes.append(f"currency of {fig.text} corrected to {said_as}")
                continue
            if fig.fee:  # said as a fee: one of the shipping terms' figures, or refused
                raise _Reject(f"shipping figure {fig.text}: {_shipping(candidates)}")
            if _turned_down(sentence, fig, offers):
                continue
            if counts:
                totals = ", ".join(
                    f"{n} x {format_price(p, 'en')} is "
                    f"{money.format_money(round(n * p.price, 2), p.currency, 'en')}"
                    for n in sorted(counts)
                    for p in candidates
                )
                raise _Reject(f"wrong total {fig.text}: {totals}")
            if shipping_talk:  # a fee or threshold, never corrected to a product's price
                raise _Reject(f"shipping figure {fig.text}: {_shipping(candidates)}")
            threshold = _THRESHOLD_BEFORE.search(sentence[: fig.start]) is not None
            denied = _NEGATION_BEFORE.search(sentence[: fig.start]) is not None
            # "We don't sell it for $62." corrected would deny the catalog's price: refused
            if len(figures) == 1 and len(everyone) == 1 and about and not (threshold or denied):
                product = everyone[0]
                # the figure's own style: "99元" becomes "89.99美元", "$1" becomes "$89.99"
                right = format_price(product, detect_lang(fig.text))
                edits.append((fig.start, fig.end, right))
                notes.append(f"price {fig.text} corrected to {right} ({product.name})")
                continue
            raise _Reject(f"wrong price {fig.text}: {_prices(candidates if about else [])}")

    def _check_stock(
        self,
        sentence: str,
        about: list[Product],
        everyone: list[Product],
        edits: list[tuple[int, int, str]],
        notes: list[str],
    ) -> bool:
        """Whether ``sentence`` says a stock figure; a wrong one is corrected or refused."""
        money = [(f.start, f.end) for f in money_figures(sentence)]
        claims: list[tuple[int, int, int]] = []  # (start, end, claimed) of each number
        for pattern in (*_STOCK_EN, *_STOCK_ZH):
            for m in pattern.finditer(sentence):
                start, end = m.span("n")
                if any(s < end and start < e for s, e in money):
                    continue
                words = (m.groupdict().get("words") or "").lower().split()
                if any(w.strip("'-") in _NOT_STOCK_WORDS for w in words):
                    continue
                if all(not (s < end and start < e) for s, e, _ in claims):
                    claims.append((start, end, int(m.group("n"))))
        if not claims:
            return False
        if not about:
            raise _Reject("stock figure for no product in particular")
        for start, end, claimed in claims:
            if any(p.stock == claimed for p in about):
                continue
            product = everyone[0]
            denied = _NEGATION_BEFORE.search(sentence[:start]) is not None  # as for a price
            if len(claims) == 1 and len(everyone) == 1 and product.stock > 0 and not denied:
                edits.append((start, end, str(product.stock)))
                notes.append(f"stock {claimed} corrected to {product.stock} ({product.name})")
                continue
            raise _Reject(f"wrong stock {claimed}: {_stocks(about)}")
        return True

    def _check_availability(
        self, sentence: str, spans: list[tuple[int, int, Product]], about: list[Product]
    ) -> None:
        for m in _AVAILABLE.finditer(sentence):
            before, after = sentence[: m.start()], sentence[m.end() :]
            if _AVAILABLE_NEGATED_BEFORE.search(before) or _AVAILABLE_LATER.search(after):
                continue
            for product in subjects(m.start(), spans, about):
                if product.stock == 0:
                    raise _Reject(
                        f"says the {product.name} is available ({m.group(0)!r}) but it is sold "
                        f"out, back {product.restock or 'soon'}"
                    )
        for m in _SOLD_OUT.finditer(sentence):
            if _NEGATION_BEFORE.search(sentence[: m.start()]):
                continue
            said_of = subjects(m.start(), spans, about)
            if said_of and all(p.stock > 0 for p in said_of):
                names = ", ".join(f"the {p.name} has {p.stock}" for p in said_of)
                raise _Reject(f"says sold out ({m.group(0)!r}) but {names} in stock")


def unique_products(products: Iterable[Product]) -> list[Product]:
    """``products`` in order, each once (by id)."""
    out: list[Product] = []
    for p in products:
        if all(p.id != q.id for q in out):
            out.append(p)
    return out


def _prices(products: Sequence[Product]) -> str:
    if not products:
        return "it is the price of no catalog product"
    return ", ".join(f"the {p.name} is {format_price(p, 'en')}" for p in products)


def _shipping(products: Sequence[Product]) -> str:
    return " / ".join(f"the {p.name} {p.shipping or 'has no shipping terms'}" for p in products)


def _stocks(products: Sequence[Product]) -> str:
    return ", ".join(
        f"the {p.name} has {p.stock} in stock" if p.stock else f"the {p.name} is sold out"
        for p in products
    )
