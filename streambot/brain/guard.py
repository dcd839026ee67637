"""The output guard: every sentence an LLM says is checked against the catalog before it is spoken.

``ReplyGuard.check`` looks at one sentence:

* money figures ("$89.99", "89.99 dollars", "¥99", "99元", "24.50美元", "USD 20") must be the
  price of a product the sentence is about (the products it names, or else the products of the
  question), or a figure from that product's shipping terms in a sentence about shipping;
* stock figures ("7 left", "only 7", "还剩7件") must be the product's stock, and a sold-out
  product must not be called available ("in stock", "有货"), nor an in-stock one sold out;
* no banned words, no links, no invented discounts, no sign of prompt injection or of the
  instructions leaking ("ignore previous instructions", "system prompt", the house rules
  themselves).

A wrong figure is corrected in place when that is unambiguous (one figure of its kind in the
sentence, one product involved); anything else wrong rejects the sentence.

``GuardedBrain`` runs an inner brain (the LLM) through the guard sentence by sentence. The
first rejected sentence is never spoken: the inner brain is closed and the fallback brain (the
catalog brain, which states the exact figures) answers the turn instead.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from streambot import money
from streambot.brain.base import Brain
from streambot.brain.prompt import CLOSE, HOUSE_RULES, OPEN, STYLE_RULES
from streambot.brain.sentences import SentenceSplitter, split_sentences
from streambot.catalog import Catalog, LiveCatalog, Product, as_live, format_price
from streambot.screening import Screen, fold
from streambot.text import has_cjk
from streambot.turn import Turn, TurnKind

log = logging.getLogger(__name__)


@dataclass
class GuardVerdict:
    ok: bool
    text: str  # the sentence to speak: unchanged, or corrected (the original when rejected)
    reason: str | None  # None: nothing wrong; else what was corrected or why it was rejected


# -- money ----------------------------------------------------------------------------------
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_WORDS_ZH = tuple(w for w in money.WORDS if not w.isascii())
_WORDS_EN = (*money.CODES, *(w for w in money.WORDS if w.isascii()))
_MONEY = re.compile(
    rf"(?P<sym>{money.alternation(money.SIGNS)})\s?(?P<a>{_NUM})"
    rf"|(?<![A-Za-z])(?P<code>{money.alternation(money.CODES)})\s?(?P<b>{_NUM})"
    rf"|(?<![\d.,])(?P<c>{_NUM})\s*(?P<unit>{money.alternation(_WORDS_ZH)}"
    rf"|(?:{money.alternation(_WORDS_EN)})(?![A-Za-z]))",
    re.IGNORECASE,
)


def _currencies(marker: str) -> frozenset[str]:
    """The codes a money marker may mean ("$": every dollar; "¥": the yuan, see money)."""
    return frozenset(c.code for c in money.meaning(marker)) or frozenset({marker.upper()})


# a shipping threshold ("free over $35") is a figure of the shipping terms, not a price
_THRESHOLD_BEFORE = re.compile(r"(?:\b(?:over|above|more than|at least|from)|满|超过)\s*$", re.I)
_SHIPPING_TALK = re.compile(
    r"\b(?:ship|ships|shipping|shipped|postage|delivery|free|orders?)\b|包邮|运费|邮费|满|发货",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Money:
    start: int
    end: int
    text: str
    value: float
    currencies: frozenset[str] | None  # None: no currency said


# Prices in Chinese numerals: "二十四块五", "八十九块九毛九", "一千二百九十九元".
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_ZH_DIGITS |= {"七": 7, "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000}
_ZH_NUM = "[零〇一二两三四五六七八九十百千万]"
_ZH_MONEY = re.compile(
    rf"(?P<int>{_ZH_NUM}+)(?:点(?P<dec>[零〇一二三四五六七八九]+))?"
    rf"\s*(?P<unit>{money.alternation(_WORDS_ZH)})"
    r"(?:(?P<jiao>[零一二两三四五六七八九])(?:毛|角)?(?:(?P<fen>[一二两三四五六七八九])分?)?)?"
)


def _zh_integer(text: str) -> int:
    """A Chinese-numeral integer below 100 million: "一千二百九十九" -> 1299, "十五" -> 15."""
    total, section, digit = 0, 0, 0
    for char in text:
        if char in _ZH_DIGITS:
            digit = _ZH_DIGITS[char]
        elif char == "万":
            total += (section + digit) * 10_000
            section, digit = 0, 0
        else:  # 十 百 千: a bare 十 ("十五") means one ten
            section += (digit or 1) * _ZH_UNITS[char]
            digit = 0
    return total + section + digit


def _money(text: str) -> list[_Money]:
    out = []
    for m in _MONEY.finditer(text):
        number = m.group("a") or m.group("b") or m.group("c")
        marker = (m.group("sym") or m.group("code") or m.group("unit") or "").lower()
        currencies = _currencies(marker)
        value = float(number.replace(",", ""))
        out.append(_Money(m.start(), m.end(), m.group(0), value, currencies))
    for m in _ZH_MONEY.finditer(text):
        value = float(_zh_integer(m.group("int")))
        if m.group("dec"):
            value += float("0." + "".join(str(_ZH_DIGITS[c]) for c in m.group("dec")))
        if m.group("jiao"):  # 块五 / 块五毛 / 块九毛九: tenths, then hundredths
            value += _ZH_DIGITS[m.group("jiao")] / 10
            if m.group("fen"):
                value += _ZH_DIGITS[m.group("fen")] / 100
        out.append(_Money(m.start(), m.end(), m.group(0), round(value, 2), _currencies(m["unit"])))
    return sorted(out, key=lambda money: money.start)


def _same_money(figure: _Money, value: float, currency: str) -> bool:
    if abs(figure.value - value) >= 0.005:
        return False
    return figure.currencies is None or currency.upper() in figure.currencies


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
    r"\b(?:sold out|out of stock|unavailable|no longer available)\b|卖完|售罄|缺货|没货|无货|断货",
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
_NEGATION_BEFORE = re.compile(
    r"(?:\b(?:no|not|never|without)\b|n't\b|没有|没|不|无)(?:\W*\w+){0,3}?\W*$"
)
_WORD = re.compile(r"[a-z0-9]+")


def _shingles(text: str, n: int = 6) -> set[str]:
    """The runs of ``n`` words of a folded text."""
    words = _WORD.findall(text)
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


_INSTRUCTION_SHINGLES = set().union(*(_shingles(fold(r)) for r in HOUSE_RULES + STYLE_RULES))


class _Reject(Exception):
    pass


class ReplyGuard:
    """Checks one spoken sentence at a time against the catalog (see the module docstring)."""

    def __init__(self, catalog: Catalog, banned_words: Sequence[str] = ()) -> None:
        self.catalog = catalog
        self.screen = Screen(banned_words)  # the same folding as triage's checks
        self._patterns_for: Catalog | None = None
        self._patterns: list[tuple[Product, list[re.Pattern[str]]]] = []

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
    def check(self, sentence: str, products: Sequence[Product], lang: str) -> GuardVerdict:
        """Check one sentence; ``products`` are those of the question (or the pitch topic)."""
        try:
            text, notes = self._check(sentence, list(products), lang)
        except _Reject as exc:
            return GuardVerdict(False, sentence, str(exc))
        return GuardVerdict(True, text, "; ".join(notes) if notes else None)

    def _check(self, sentence: str, context: list[Product], lang: str) -> tuple[str, list[str]]:
        if self.screen.banned_word(sentence) is not None:
            raise _Reject("banned word")
        if self.screen.has_url(sentence):  # the host never reads out a link, whoever wrote it
            raise _Reject("a link")
        folded = fold(sentence)
        leaks = any(p.search(sentence) or p.search(folded) for p in _LEAK)
        if leaks or _shingles(folded) & _INSTRUCTION_SHINGLES:
            raise _Reject("prompt injection or instructions leaking into the reply")
        for m in _DISCOUNT.finditer(sentence):
            if not _NEGATION_BEFORE.search(sentence[: m.start()]):
                raise _Reject(f"invented discount: {m.group(0)!r} (the catalog has none)")
        spans = self.mentions(sentence)
        named = _unique(p for _, _, p in spans)
        about = named or _unique(context)
        everyone = _unique([*named, *context])
        edits: list[tuple[int, int, str]] = []
        notes: list[str] = []
        self._check_money(sentence, about, everyone, lang, edits, notes)
        self._check_stock(sentence, about, everyone, edits, notes)
        self._check_availability(sentence, spans, about)
        for start, end, new in sorted(edits, reverse=True):
            sentence = sentence[:start] + new + sentence[end:]
        return sentence, notes

    def _check_money(
        self,
        sentence: str,
        about: list[Product],
        everyone: list[Product],
        lang: str,
        edits: list[tuple[int, int, str]],
        notes: list[str],
    ) -> None:
        figures = _money(sentence)
        candidates = about or list(self.catalog.product)  # about nothing: any catalog price
        shipping_talk = _SHIPPING_TALK.search(sentence) is not None
        for fig in figures:
            if any(_same_money(fig, p.price, p.currency) for p in candidates):
                continue
            if shipping_talk and any(
                _same_money(fig, extra.value, p.currency)
                for p in candidates
                for extra in _money(f"{p.shipping} {p.shipping_zh}")
            ):
                continue
            threshold = _THRESHOLD_BEFORE.search(sentence[: fig.start]) is not None
            if len(figures) == 1 and len(everyone) == 1 and about and not threshold:
                product = everyone[0]
                # the figure's own style: "99元" becomes "89.99美元", "$1" becomes "$89.99"
                right = format_price(product, "zh" if has_cjk(fig.text) else "en")
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
    ) -> None:
        money = [(f.start, f.end) for f in _money(sentence)]
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
            return
        if not about:
            raise _Reject("stock figure for no product in particular")
        for start, end, claimed in claims:
            if any(p.stock == claimed for p in about):
                continue
            product = everyone[0]
            if len(claims) == 1 and len(everyone) == 1 and product.stock > 0:
                edits.append((start, end, str(product.stock)))
                notes.append(f"stock {claimed} corrected to {product.stock} ({product.name})")
                continue
            raise _Reject(f"wrong stock {claimed}: {_stocks(about)}")

    def _check_availability(
        self, sentence: str, spans: list[tuple[int, int, Product]], about: list[Product]
    ) -> None:
        for m in _AVAILABLE.finditer(sentence):
            before, after = sentence[: m.start()], sentence[m.end() :]
            if _AVAILABLE_NEGATED_BEFORE.search(before) or _AVAILABLE_LATER.search(after):
                continue
            for product in _subjects(m.start(), spans, about):
                if product.stock == 0:
                    raise _Reject(
                        f"says the {product.name} is available ({m.group(0)!r}) but it is sold "
                        f"out, back {product.restock or 'soon'}"
                    )
        for m in _SOLD_OUT.finditer(sentence):
            if _NEGATION_BEFORE.search(sentence[: m.start()]):
                continue
            subjects = _subjects(m.start(), spans, about)
            if subjects and all(p.stock > 0 for p in subjects):
                names = ", ".join(f"the {p.name} has {p.stock}" for p in subjects)
                raise _Reject(f"says sold out ({m.group(0)!r}) but {names} in stock")


def _unique(products) -> list[Product]:
    out: list[Product] = []
    for p in products:
        if all(p.id != q.id for q in out):
            out.append(p)
    return out


def _subjects(
    at: int, spans: list[tuple[int, int, Product]], about: list[Product]
) -> list[Product]:
    """The product a claim at ``at`` is about: the nearest one named before it (else after);
    with none named, every product the sentence may be about."""
    if not spans:
        return about
    before = [s for s in spans if s[0] < at]
    return [before[-1][2]] if before else [spans[0][2]]


def _prices(products: Sequence[Product]) -> str:
    if not products:
        return "it is the price of no catalog product"
    return ", ".join(f"the {p.name} is {format_price(p, 'en')}" for p in products)


def _stocks(products: Sequence[Product]) -> str:
    return ", ".join(
        f"the {p.name} has {p.stock} in stock" if p.stock else f"the {p.name} is sold out"
        for p in products
    )


async def _sentences(stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """The whole sentences of a stream of text deltas, each as soon as it is complete."""
    splitter = SentenceSplitter()
    async for delta in stream:
        for sentence in splitter.feed(delta):
            yield sentence
    for sentence in splitter.flush():
        yield sentence


# -- the guarded brain ------------------------------------------------------------------------
class GuardedBrain:
    """An inner brain (the LLM) whose every sentence passes the guard before it is spoken, with a
    fallback brain (the catalog brain) that answers whenever a sentence is rejected."""

    def __init__(
        self, inner: Brain, fallback: Brain, guard: ReplyGuard, catalog: Catalog | LiveCatalog
    ) -> None:
        """``catalog``: read at the start of each reply, and every sentence of that reply is
        checked against what was read (a live catalog follows its file)."""
        self.inner, self.fallback, self.guard = inner, fallback, guard
        self.live = as_live(catalog)
        self.catalog = self.live.current
        self.last_verdicts: list[tuple[str, str | None]] = []  # (sentence, reason) of a reply
        self.last_text = ""  # what the last reply actually said
        self.rejections = 0  # replies handed to the fallback, for metrics

    def pitch_topics(self) -> list[str]:
        return self.fallback.pitch_topics()

    def _question_products(self, turn: Turn) -> list[Product]:
        if turn.kind in (TurnKind.PITCH, TurnKind.SCRIPT):
            product = self.catalog.by_id(turn.topic) if turn.topic else None
            return [product] if product else []
        if turn.message is not None:
            return self.catalog.find(turn.message.text)
        return []

    async def _script_line(self, turn: Turn) -> AsyncIterator[str]:
        """A script line reworded by the inner brain, spoken only if every sentence of the
        rewording passes the guard; else the line as authored (the fallback says it). The
        whole rewording is checked before any of it is said, so a line is never half one,
        half the other."""
        products = self._question_products(turn)
        reworded: list[str] = []
        failed: str | None = None
        stream = self.inner.reply(turn)
        try:
            async with contextlib.aclosing(_sentences(stream)) as sentences:
                async for sentence in sentences:
                    failed = self._script_sentence(sentence, products, turn.lang, reworded)
                    if failed:
                        break
        except Exception:  # the LLM failed: the line is said as authored
            log.exception("inner brain failed rewording turn %d; said as authored", turn.id)
            failed = "inner brain failed"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if not failed and not reworded:
            failed = "the rewording was empty"
        if failed:
            self.rejections += 1
            self.last_verdicts.append(("", failed))
            log.info("script line of turn %d said as authored: %s", turn.id, failed)
            async for delta in self.fallback.reply(turn):
                self.last_text += delta
                yield delta
            return
        if turn.script is not None:
            turn.script.spoken_as = "reworded"
        for sentence in reworded:
            self.last_text += sentence + " "
            yield sentence + " "

    def _script_sentence(
        self, sentence: str, products: list[Product], lang: str, kept: list[str]
    ) -> str | None:
        """Check one sentence of a rewording: None and kept when it passes, else why not."""
        verdict = self.guard.check(sentence, products, lang)
        self.last_verdicts.append((sentence, verdict.reason))
        if not verdict.ok:
            return verdict.reason or "rejected"
        if verdict.text != sentence:  # a corrected figure: the author's line is safer
            return f"corrected: {verdict.reason}"
        kept.append(sentence)
        return None

    async def reply(self, turn: Turn) -> AsyncIterator[str]:
        self.last_verdicts, self.last_text = [], ""
        if turn.kind == TurnKind.SAY:  # the operator's own words: trusted, said as they are
            said = turn.topic or (turn.message.text if turn.message else "")
            for sentence in split_sentences(said):
                self.last_text += sentence + " "
                yield sentence + " "
            return
        self.catalog = self.guard.catalog = self.live.current  # one catalog for the whole reply
        if turn.kind == TurnKind.SCRIPT:
            async for delta in self._script_line(turn):
                yield delta
            return
        question = self._question_products(turn)
        recent: list[Product] = []  # products the reply itself named last
        splitter = SentenceSplitter()
        stream = self.inner.reply(turn)
        rejected = False
        try:
            done = False
            while not done and not rejected:
                try:
                    sentences = splitter.feed(await anext(stream))
                except StopAsyncIteration:
                    done, sentences = True, splitter.flush()
                except Exception:  # the LLM failed: the catalog brain answers instead
                    log.exception("inner brain failed on turn %d; the fallback answers", turn.id)
                    self.last_verdicts.append(("", "inner brain failed"))
                    rejected = True
                    break
                for sentence in sentences:
                    verdict = self.guard.check(sentence, _unique([*question, *recent]), turn.lang)
                    self.last_verdicts.append((sentence, verdict.reason))
                    if not verdict.ok:
                        log.warning("guard rejected %r: %s", sentence, verdict.reason)
                        rejected = True
                        break
                    if verdict.reason:
                        log.info("guard corrected %r: %s", sentence, verdict.reason)
                    named = _unique(p for _, _, p in self.guard.mentions(sentence))
                    recent = named or recent
                    self.last_text += verdict.text + " "
                    yield verdict.text + " "
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if rejected:
            self.rejections += 1
            async for delta in self.fallback.reply(turn):
                self.last_text += delta
                yield delta
