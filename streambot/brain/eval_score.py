"""How the evaluation scores one answer: ``score(answer, question, catalog)`` says what it got
right and wrong (``Verdict``): facts missing, wrong figures (a money figure that is no right
one, a number that is none of the product's facts), unsupported claims (a discount, a shipping
destination, a warranty or a colour the catalog does not have, a sold-out product called
available or back at another time, a comparison the wrong way round, "it's free"), an echo of
the question, garbage (digit runs, repeated fragments, prompt scaffolding), an answer in the
wrong language. It reads money the way the guard does (``guard.money_figures``), so the two
cannot disagree about what a figure is; the rest is its own, so it can catch what the guard
lets through."""

from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streambot.brain.eval_questions import (
    COLOURS,
    DESTINATIONS,
    WARRANTY,
    Fact,
    Question,
    either,
    product_texts,
)
from streambot.brain.guard import (
    ReplyGuard,
    money_figures,
    same_money,
    unique_products,
)
from streambot.brain.knowledge import subjects
from streambot.catalog import Catalog, Product
from streambot.intents import DIGITS, EN_NUMBERS, EN_TENS, zh_numeral
from streambot.sentences import split_sentences
from streambot.text import IDEOGRAPHS, fold


@dataclass
class Verdict:
    missing: list[str] = field(default_factory=list)  # required facts not said
    wrong_figures: list[str] = field(default_factory=list)  # each wrong figure said
    unsupported: list[str] = field(default_factory=list)  # each unsupported or false claim
    garbage: list[str] = field(default_factory=list)  # why the answer is garbage
    echo: bool = False  # the answer repeats the question
    wrong_language: bool = False  # a Chinese question answered without Chinese, or vice versa

    @property
    def correct(self) -> bool:
        return not (
            self.missing
            or self.wrong_figures
            or self.unsupported
            or self.garbage
            or self.echo
            or self.wrong_language
        )

    def problems(self) -> list[str]:
        out = [f"missing {m}" for m in self.missing]
        out += [f"wrong figure {w}" for w in self.wrong_figures]
        out += [f"unsupported: {u}" for u in self.unsupported]
        out += [f"garbage: {g}" for g in self.garbage]
        out += ["echoes the question"] * self.echo + ["wrong language"] * self.wrong_language
        return out


_CHECK = either(
    r"\b(?:let me (?:check|find out|ask|confirm|look)|i'?ll (?:check|find out|ask|confirm|look)"
    r"|i will (?:check|find out|ask|confirm)|(?:need|have) to check|double[- ]check"
    r"|not (?:sure|certain)|unsure|(?:don't|do not) know|(?:doesn't|does not|don't|do not) "
    r"(?:say|mention|list|specify|state|have (?:that|the|any|those|this))"
    r"|no (?:info|information|details|mention)|(?:isn't|is not|aren't|are not|not) "
    r"(?:listed|mentioned|stated|specified)|can'?t (?:confirm|say)|cannot (?:confirm|say)"
    r"|get back to you|find out for you)\b",
    r"查一下|查查|确认一下|帮你确认|核实|不确定|不太清楚|不清楚|没有写|没写|没有说明|没有提到|没提到"
    r"|没有相关信息|没有这方面|暂时不知道|不知道|稍后回复|问一下|了解一下",
)


_GREETING = either(
    r"\b(?:hi|hello|hey|welcome|greetings|good (?:morning|afternoon|evening))\b",
    r"你好|您好|欢迎|大家好|哈喽|嗨|早上好|下午好|晚上好",
)


_REFUSAL = either(
    r"\b(?:sorry|afraid|unfortunately|can'?t|cannot|unable|not able|no discounts?|fixed)\b",
    r"抱歉|不好意思|不能|没办法|没有优惠|不打折|只能|无法",
)


_SOLD_OUT = either(
    r"\b(?:sold out|out of stock|unavailable|none left|not in stock|no (?:more )?(?:units? )?"
    r"left|all gone)\b",
    r"卖完|售罄|缺货|没货|无货|断货|没有货|没有库存|暂时没有",
)


_AVAILABLE = either(r"\b(?:in[ -]stock|available|ready to ship)\b", r"有货|现货|有库存")


_FUTURE = either(
    r"\b(?:back|again|restock\w*|soon|next|until|once|when|will)\b", r"补货|到货|再|会"
)


# A time a sold-out product is back ("back in 3 days", "restocked tomorrow", "明天补货"): it
# must be the catalog's restock time.
_BACK_WHEN = either(
    r"\b(?:back|restock(?:ed|s)?|in stock again|available again)\b[^.!?]{0,20}?"
    r"\b(?P<when>(?:in|within)\s+(?:\d+|a|one|two|three|four|five|a few)\s+(?:days?|weeks?)"
    r"|tomorrow|today|tonight|next week|next month|(?:next|this|on)\s+\w+day)\b",
    r"(?P<when_zh>明天|后天|今天|\d+天(?:后|内)?|下周[一二三四五六日天]?|周[一二三四五六日天])"
    r"就?(?:补货|到货|回来|有货)",
)


_NEGATION = either(
    r"\b(?:no|not|never|without|none|can'?t|cannot|don'?t|doesn'?t|isn'?t|aren'?t|won'?t"
    r"|unable)\b|n't\b",
    r"不|没|无|别|非",
)


_DISCOUNT = either(
    r"\b\d+\s*%\s*off\b|\b(?:discount(?:s|ed)?|coupons?|promo(?:tion)?(?: codes?)?|vouchers?"
    r"|on sale|flash sale|half[- ](?:price|off)|special (?:price|deal|offer)|bundle deal"
    r"|buy one,? get one|bogo)\b",
    r"\d+(?:\.\d+)?\s*折|[一二三四五六七八九]折|打\S{0,2}折|折扣|优惠|立减|减价|降价|特价|秒杀|满\d+减|便宜点|便宜一点",
)


_FREE_PRICE = either(
    r"\b(?:is|are|it'?s|for|totally|completely|now|costs? nothing)\s+(?:totally |completely )?"
    r"free\b(?!\s+(?:shipping|delivery|postage))",
    r"免费(?!送货|配送|邮寄|发货|运送|包邮)",
)


_SHIPPING_WORDS = either(
    r"\b(?:ship|ships|shipping|shipped|delivery|deliver|postage|arrive)\b",
    r"包邮|运费|邮费|发货|快递|配送|到货",
)


_CHEAPER = either(
    r"\b(?:cheaper|less expensive|more affordable|costs? less|lower price|the cheap one)\b",
    r"更便宜|比较便宜|便宜一些|便宜些|便宜",
)


_DEARER = either(
    r"\b(?:more expensive|pricier|dearer|costs? more|higher price|the expensive one)\b",
    r"更贵|比较贵|贵一些|贵些|贵",
)


_SCAFFOLD = re.compile(
    r"a viewer wrote|viewer \"|treat as data|not instructions|<<<|>>>|<\|[a-z_]+\|>"
    r"|\b(?:assistant|user|system)\s*:|catalog entries|relevant to this question"
    r"|selling points:|卖点:|\[[a-z0-9_-]+\]|house rules|system prompt|reply as \w+ ?,"
    r"|using only the catalog|忽略.{0,6}(?:指令|规则)|系统提示|提示词",
    re.IGNORECASE,
)


_NUMBER = re.compile(rf"(?<![\d.,])(?:{DIGITS})")


_LONG_DIGITS = re.compile(r"\d{6,}|(?:\d[ ,.]?){10,}")


_REPEATED = re.compile(r"(\S.+?)\1{2,}")


_TOKENS = re.compile(rf"[a-z0-9']+|[{IDEOGRAPHS}]")


_CJK_CHAR = re.compile(f"[{IDEOGRAPHS}]")


_LATIN = re.compile(r"[A-Za-z]")


_STOPWORDS = frozenset(
    re.findall(r"\w+", "a an the and or of to for in on with from that this it its is are be by")
    + re.findall(r"\w+", "at as so up every all any")
)


def _en_words(n: int) -> list[str]:
    """How ``n`` (below 100) is written in English words: "seven", "forty-two", "forty two"."""
    if n <= 20:
        return [EN_NUMBERS[n]]
    if n >= 100:
        return []
    tens, unit = divmod(n, 10)
    if not unit:
        return [EN_TENS[tens]]
    return [f"{EN_TENS[tens]}-{EN_NUMBERS[unit]}", f"{EN_TENS[tens]} {EN_NUMBERS[unit]}"]


def _says_number(text: str, n: float) -> bool:
    """Whether ``text`` says the number ``n`` (digits; below 100 also English words; below
    10,000 also Chinese numerals, 两 for 二)."""
    if any(abs(float(m.group(0).replace(",", "")) - n) < 1e-9 for m in _NUMBER.finditer(text)):
        return True
    if not float(n).is_integer():
        return False
    folded = fold(text)
    if any(re.search(rf"\b{w}\b", folded) for w in _en_words(int(n))):
        return True
    zh = zh_numeral(int(n))
    return bool(zh) and zh in text.replace("两", "二")


def _without_money(text: str) -> str:
    """``text`` with its money figures blanked: "$24.50" says no stock of 24."""
    for figure in reversed(money_figures(text)):
        text = text[: figure.start] + " " * (figure.end - figure.start) + text[figure.end :]
    return text


def _numbers_in(texts: Iterable[str]) -> set[float]:
    return {float(m.group(0).replace(",", "")) for t in texts for m in _NUMBER.finditer(t)}


def _negated(before: str, span: int = 24) -> bool:
    """Whether a negation comes just before (``before`` is the text up to the claim)."""
    tail = before[-span:]
    return _NEGATION.search(tail) is not None


def _norm(text: str) -> str:
    """Folded, punctuation made spaces: for comparing a question with an answer."""
    return " ".join(re.sub(r"[\W_]+", " ", fold(text)).split())


def _content_words(text: str) -> list[str]:
    words = re.findall(r"[a-z][a-z'-]+|\d+", fold(text))
    return [w for w in words if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())]


def _cjk_bigrams(text: str) -> set[str]:
    chars = _CJK_CHAR.findall(text)
    return {a + b for a, b in itertools.pairwise(chars)}


def _says_point(answer: str, point: str) -> bool:
    """A selling point, said in words of its own or near them: 60% of its content words (the
    first five letters of each, for "grind"/"grinding"), or half of its Chinese bigrams."""
    bigrams = _cjk_bigrams(point)
    if bigrams:
        return len(bigrams & _cjk_bigrams(answer)) >= 0.5 * len(bigrams)
    words = _content_words(point)
    if not words:
        return False
    folded = fold(answer)
    found = sum(1 for w in words if w[:5] in folded)
    return found >= 0.6 * len(words)


# -- scoring ----------------------------------------------------------------------------------
class _Scorer:
    """One answer against one question and the catalog."""

    def __init__(self, answer: str, question: Question, catalog: Catalog) -> None:
        self.answer, self.q, self.catalog = answer, question, catalog
        self.guard = ReplyGuard(catalog)  # for its product mentions, nothing else
        self.asked = [p for pid in question.products if (p := catalog.by_id(pid)) is not None]
        self.sentences = split_sentences(answer, early_first_clause=False)
        self.mentioned = unique_products(p for _, _, p in self.guard.mentions(answer))
        self.verdict = Verdict()

    def score(self) -> Verdict:
        text = self.answer.strip()
        if not text:
            self.verdict.garbage.append("no answer")
            self.verdict.missing += [str(f) for f in self.q.expect]
            return self.verdict
        for fact in self.q.expect:
            if not self._has(fact):
                self.verdict.missing.append(str(fact))
        recent: list[Product] = []
        for sentence in self.sentences:
            spans = self.guard.mentions(sentence)
            named = unique_products(p for _, _, p in spans)
            scope = named or recent or self.asked
            self._figures(sentence, scope)
            self._claims(sentence, spans, scope)
            recent = named or recent
        self._garbage(text)
        self.verdict.echo = self._echoes(text)
        self.verdict.wrong_language = _wrong_language(text, self.q.lang)
        return self.verdict

    # required facts
    def _product(self, fact: Fact) -> Product | None:
        return self.catalog.by_id(fact.product) if fact.product else None

    def _has(self, fact: Fact) -> bool:
        p, text = self._product(fact), self.answer
        if fact.kind == "check":
            return _CHECK.search(text) is not None
        if fact.kind == "greeting":
            return _GREETING.search(text) is not None
        if p is None:
            return False
        if fact.kind in ("name", "cheaper", "dearer"):
            return any(q.id == p.id for q in self.mentioned)
        if fact.kind == "price":
            return any(same_money(f, p.price, p.currency) for f in money_figures(text))
        if fact.kind == "price_or_no":
            said = any(same_money(f, p.price, p.currency) for f in money_figures(text))
            return said or _REFUSAL.search(text) is not None
        if fact.kind == "total" and fact.value is not None:
            return any(same_money(f, fact.value, p.currency) for f in money_figures(text))
        if fact.kind == "stock":
            return _says_number(_without_money(text), p.stock) if p.stock else self._sold_out_said()
        if fact.kind == "restock":
            if not (p.restock or p.restock_zh):
                return self._sold_out_said() or re.search(r"\bsoon\b|很快", text) is not None
            return (bool(p.restock) and fold(p.restock) in fold(text)) or (
                bool(p.restock_zh) and fold(p.restock_zh) in fold(text)
            )
        if fact.kind == "shipping":
            return _says_shipping(_without_money(text), p)
        if fact.kind == "point":
            return any(_says_point(text, point) for point in (*p.points, *p.points_zh))
        raise ValueError(f"unknown fact kind {fact.kind!r}")

    def _sold_out_said(self) -> bool:
        return any(
            not _negated(self.answer[: m.start()], 12) for m in _SOLD_OUT.finditer(self.answer)
        )

    # figures
    def _figures(self, sentence: str, scope: list[Product]) -> None:
        figures = money_figures(sentence)
        totals = [f.value for f in self.q.expect if f.kind == "total" and f.value is not None]
        for fig in figures:
            if (count := _count_for(sentence[: fig.start])) is not None:  # "two for $89.99"
                if not any(same_money(fig, round(count * p.price, 2), p.currency) for p in scope):
                    self.verdict.wrong_figures.append(f"{fig.text} for {count}")
                continue
            right = any(same_money(fig, p.price, p.currency) for p in scope)
            right = right or any(same_money(fig, v, p.currency) for v in totals for p in self.asked)
            right = right or any(
                same_money(fig, extra.value, p.currency)
                for p in scope
                for extra in money_figures(f"{p.shipping} {p.shipping_zh}")
            )
            if not right:
                self.verdict.wrong_figures.append(fig.text)
        allowed = _numbers_in(t for p in scope for t in product_texts(p))
        allowed |= {float(p.price) for p in scope} | {float(p.stock) for p in scope}
        allowed |= set(self.q.numbers)
        taken = [(f.start, f.end) for f in figures]
        for m in _NUMBER.finditer(sentence):
            if any(s <= m.start() < e for s, e in taken):
                continue
            if float(m.group(0).replace(",", "")) not in allowed:
                self.verdict.wrong_figures.append(m.group(0))

    # claims
    def _claims(
        self, sentence: str, spans: list[tuple[int, int, Product]], scope: list[Product]
    ) -> None:
        unsupported = self.verdict.unsupported
        checked = _CHECK.search(sentence) is not None
        for m in _DISCOUNT.finditer(sentence):
            if not _negated(sentence[: m.start()]):
                unsupported.append(f"discount {m.group(0)!r}")
        shipping = _SHIPPING_WORDS.search(sentence) is not None
        for m in _FREE_PRICE.finditer(sentence):
            if not shipping and not _negated(sentence[: m.start()], 12):
                unsupported.append(f"free {m.group(0)!r}")
        topics = (
            ("destination", DESTINATIONS),
            ("warranty", WARRANTY),
            ("colour", COLOURS),
        )
        for topic, pattern in topics:
            m = pattern.search(sentence)
            if m and not checked:
                said = fold(m.group(0))
                if not any(said in fold(t) for p in scope for t in product_texts(p)):
                    unsupported.append(f"{topic} {m.group(0)!r}")
        self._availability(sentence, spans, scope)
        self._comparison(sentence, spans)

    def _availability(
        self, sentence: str, spans: list[tuple[int, int, Product]], scope: list[Product]
    ) -> None:
        future = _FUTURE.search(sentence) is not None
        for m in _AVAILABLE.finditer(sentence):
            if future or _negated(sentence[: m.start()], 16):
                continue
            for p in subjects(m.start(), spans, scope):
                if p.stock == 0:
                    self.verdict.unsupported.append(f"{p.id} available {m.group(0)!r}")
        for m in _SOLD_OUT.finditer(sentence):
            if _negated(sentence[: m.start()], 12):
                continue
            said_of = subjects(m.start(), spans, scope)
            if said_of and all(p.stock > 0 for p in said_of):
                self.verdict.unsupported.append(f"{said_of[0].id} sold out {m.group(0)!r}")
        for m in _BACK_WHEN.finditer(sentence):
            when = fold(m.group("when") or m.group("when_zh"))
            said_of = subjects(m.start(), spans, scope)
            if said_of and not any(when in fold(f"{p.restock} {p.restock_zh}") for p in said_of):
                self.verdict.unsupported.append(f"{said_of[0].id} back {when!r}")

    def _comparison(self, sentence: str, spans: list[tuple[int, int, Product]]) -> None:
        for pattern, cheaper in ((_CHEAPER, True), (_DEARER, False)):
            for m in pattern.finditer(sentence):
                if _negated(sentence[: m.start()], 8):
                    continue
                before = [s for s in spans if s[1] <= m.start()]
                after = [s for s in spans if s[0] >= m.end()]
                if before:
                    subject = before[-1][2]
                    others = [s[2] for s in after if s[2].id != subject.id]
                    others += [s[2] for s in before if s[2].id != subject.id]
                elif after:
                    subject, others = after[0][2], [s[2] for s in after[1:]]
                else:
                    continue
                others = others or [p for p in self.asked if p.id != subject.id]
                if not others or others[0].currency != subject.currency:
                    continue
                other = others[0]
                wrong = subject.price > other.price if cheaper else subject.price < other.price
                if wrong:
                    word = "cheaper" if cheaper else "dearer"
                    self.verdict.unsupported.append(f"{subject.id} {word} than {other.id}")
                break  # one comparison per sentence and direction

    # garbage
    def _garbage(self, text: str) -> None:
        garbage = self.verdict.garbage
        if m := _SCAFFOLD.search(text):
            garbage.append(f"scaffolding {m.group(0)!r}")
        allowed = {str(int(v)) for p in (*self.asked, *self.mentioned) for v in (p.stock, p.price)}
        for m in _LONG_DIGITS.finditer(text):
            if re.sub(r"\D", "", m.group(0)) not in allowed:
                garbage.append(f"digit run {m.group(0)!r}")
                break
        spaced = " ".join(text.split())
        for m in _REPEATED.finditer(spaced):
            if re.search(r"\w", m.group(1)) and len(m.group(0)) >= 6:
                garbage.append(f"repeated {m.group(1)!r}")
                break
        sentences = [_norm(s) for s in self.sentences if len(_norm(s)) >= 6]
        if len(sentences) != len(set(sentences)):
            garbage.append("a sentence said twice")
        tokens = _TOKENS.findall(self._names_out(fold(text)))
        grams = Counter(tuple(tokens[i : i + 5]) for i in range(len(tokens) - 4))
        if grams and max(grams.values()) >= 3:
            top = max(grams, key=grams.__getitem__)
            garbage.append(f"repeated {' '.join(top)!r}")

    def _echoes(self, answer: str) -> bool:
        """The answer repeats the question (product names compared as one word, since an
        answer names its product too): the whole question inside it (3 words, or 4 Chinese
        characters, at least), or one of its sentences nearly the question (85% alike, for a
        question of 4 words or 6 Chinese characters at least)."""
        q = _norm(self._names_out(fold(self.q.text)))
        words, chars = len(q.split()), len(_CJK_CHAR.findall(q))
        if words < 3 and chars < 4:
            return False
        if q in _norm(self._names_out(fold(answer))):
            return True
        if words < 4 and chars < 6:
            return False
        for sentence in self.sentences:
            s = _norm(self._names_out(fold(sentence)))
            if s and difflib.SequenceMatcher(None, s, q).ratio() >= 0.85:
                return True
        return False

    def _names_out(self, folded: str) -> str:
        """``folded`` with every product name and alias made one token (names repeat)."""
        names = sorted({fold(n) for n in self.catalog.names()}, key=len, reverse=True)
        for name in names:
            folded = folded.replace(name, " product ")
        return folded


_COUNT_FOR = re.compile(
    rf"\b(\d+|{'|'.join(EN_NUMBERS[2:13])})\s+(?:[a-z'-]+\s+){{0,3}}?for\s+(?:only\s+|just\s+)?$",
    re.IGNORECASE,
)


def _count_for(before: str) -> int | None:
    """The count in "<count> [things] for " right before a money figure (2 and up), or None."""
    m = _COUNT_FOR.search(before)
    if m is None:
        return None
    word = m.group(1).lower()
    count = int(word) if word.isdigit() else EN_NUMBERS.index(word)
    return count if count >= 2 else None


def _says_shipping(text: str, p: Product) -> bool:
    """The shipping terms' own numbers that are not money (the days; a free-shipping
    threshold is optional); terms without such numbers: half their words."""
    for terms in (p.shipping, p.shipping_zh):
        if not terms:
            continue
        money = [(f.start, f.end) for f in money_figures(terms)]
        numbers = [
            float(m.group(0))
            for m in _NUMBER.finditer(terms)
            if not any(s <= m.start() < e for s, e in money)
        ]
        if numbers:
            if all(_says_number(text, n) for n in numbers):
                return True
        elif _says_point(text, terms):
            return True
    return False


def _wrong_language(answer: str, lang: str) -> bool:
    cjk, latin = len(_CJK_CHAR.findall(answer)), len(_LATIN.findall(answer))
    if lang == "zh":
        return cjk == 0
    return cjk > latin


def score(answer: str, question: Question, catalog: Catalog) -> Verdict:
    """What ``answer`` got right and wrong about ``question`` (see the module docstring)."""
    return _Scorer(answer, question, catalog).score()
