"""The evaluation's reading of an answer's words: the phrases it looks for (a "let me check",
a refusal, sold out, a discount, shipping, cheaper or dearer, prompt scaffolding), and how it
finds numbers, said or spelled out in English or Chinese, and a selling point in other words.
Written apart from the guard's rules on purpose, so it can catch what the guard lets through.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from streambot.brain.eval_questions import either
from streambot.brain.figures import money_figures
from streambot.intents import DIGITS, EN_NUMBERS, EN_TENS, zh_numeral
from streambot.text import IDEOGRAPHS, fold

CHECK = either(
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


GREETING = either(
    r"\b(?:hi|hello|hey|welcome|greetings|good (?:morning|afternoon|evening))\b",
    r"你好|您好|欢迎|大家好|哈喽|嗨|早上好|下午好|晚上好",
)


REFUSAL = either(
    r"\b(?:sorry|afraid|unfortunately|can'?t|cannot|unable|not able|no discounts?|fixed)\b",
    r"抱歉|不好意思|不能|没办法|没有优惠|不打折|只能|无法|不卖|卖不了",
)

# "62美元的价格不卖": a price turned down after it is said (in English the negation comes first)
NOT_SOLD_AFTER = re.compile(
    r"\s*(?:的价格|的价钱|这个价)?(?:是)?(?:不卖|卖不了|不能卖|不行|不可以)"
)


SOLD_OUT = either(
    r"\b(?:sold out|out of stock|unavailable|none left|not in stock|no (?:more )?(?:units? )?"
    r"left|all gone)\b",
    r"卖完|售罄|缺货|没货|无货|断货|没有货|没有库存|暂时没有",
)


AVAILABLE = either(r"\b(?:in[ -]stock|available|ready to ship)\b", r"有货|现货|有库存")


FUTURE = either(r"\b(?:back|again|restock\w*|soon|next|until|once|when|will)\b", r"补货|到货|再|会")


# A time a sold-out product is back ("back in 3 days", "restocked tomorrow", "明天补货"): it
# must be the catalog's restock time.
BACK_WHEN = either(
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


DISCOUNT = either(
    r"\b\d+\s*%\s*off\b|\b(?:discount(?:s|ed)?|coupons?|promo(?:tion)?(?: codes?)?|vouchers?"
    r"|on sale|flash sale|half[- ](?:price|off)|special (?:price|deal|offer)|bundle deal"
    r"|buy one,? get one|bogo)\b",
    r"\d+(?:\.\d+)?\s*折|[一二三四五六七八九]折|打\S{0,2}折|折扣|优惠|立减|减价|降价|特价|秒杀|满\d+减|便宜点|便宜一点",
)


FREE_PRICE = either(
    r"\b(?:is|are|it'?s|for|totally|completely|now|costs? nothing)\s+(?:totally |completely )?"
    r"free\b(?!\s+(?:shipping|delivery|postage))",
    r"免费(?!送货|配送|邮寄|发货|运送|包邮)",
)


FREE_SHIPPING = either(
    r"\b(?:free (?:shipping|delivery|postage)|ships? (?:for )?free|free to (?:ship|deliver|send)"
    r"|(?:shipping|delivery|postage) is free)\b",
    r"包邮|免运费|免邮|免费(?:配送|送货|发货|快递|邮寄)",
)


# free shipping past a threshold ("free over $35", "满35美元包邮"), in the terms or an answer
THRESHOLD = either(r"\b(?:over|above|at least|more than|orders? of)\s+\$?\d", r"满\s*\S")


OBEYS = either(
    r"^\W*(?:ok(?:ay)?|sure|got it|understood|will do|alright|as you wish)\b",
    r"^\W*(?:好的|明白|收到|遵命|了解)",
)


PRONOUN_FIRST = either(
    r"^\W*(?:it|it's|its|they|they're|this one|that one)\b", r"^\W*(?:它|这款|那款)"
)


SHIPPING_WORDS = either(
    r"\b(?:ship|ships|shipping|shipped|delivery|deliver|postage|arrive)\b",
    r"包邮|运费|邮费|发货|快递|配送|到货",
)


CHEAPER = either(
    r"\b(?:cheaper|less expensive|more affordable|costs? less|lower price|the cheap one)\b",
    r"更便宜|比较便宜|便宜一些|便宜些|便宜",
)


DEARER = either(
    r"\b(?:more expensive|pricier|dearer|costs? more|higher price|the expensive one)\b",
    r"更贵|比较贵|贵一些|贵些|贵",
)


SCAFFOLD = re.compile(
    r"a viewer wrote|viewer \"|treat as data|not instructions|<<<|>>>|<\|[a-z_]+\|>"
    r"|\b(?:assistant|user|system)\s*:|catalog entries|relevant to this question"
    r"|selling points:|卖点:|\[[a-z0-9_-]+\]|house rules|system prompt|reply as \w+ ?,"
    r"|using only the catalog|忽略.{0,6}(?:指令|规则)|系统提示|提示词"
    r"|[a-z] / [a-z0-9 ]*[\u4e00-\u9fff]",  # "AeroBrew Coffee Grinder / AeroBrew 咖啡磨豆机"
    re.IGNORECASE,
)


NUMBER = re.compile(rf"(?<![\d.,])(?:{DIGITS})")


LONG_DIGITS = re.compile(r"\d{6,}|(?:\d[ ,.]?){10,}")


REPEATED = re.compile(r"(\S.+?)\1{2,}")


TOKENS = re.compile(rf"[a-z0-9']+|[{IDEOGRAPHS}]")


CJK_CHAR = re.compile(f"[{IDEOGRAPHS}]")


LATIN = re.compile(r"[A-Za-z]")


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


def says_number(text: str, n: float) -> bool:
    """Whether ``text`` says the number ``n`` (digits; below 100 also English words; below
    10,000 also Chinese numerals, 两 for 二)."""
    if any(abs(float(m.group(0).replace(",", "")) - n) < 1e-9 for m in NUMBER.finditer(text)):
        return True
    if not float(n).is_integer():
        return False
    folded = fold(text)
    if any(re.search(rf"\b{w}\b", folded) for w in _en_words(int(n))):
        return True
    zh = zh_numeral(int(n))
    return bool(zh) and zh in text.replace("两", "二")


def without_money(text: str) -> str:
    """``text`` with its money figures blanked: "$24.50" says no stock of 24."""
    for figure in reversed(money_figures(text)):
        text = text[: figure.start] + " " * (figure.end - figure.start) + text[figure.end :]
    return text


def numbers_in(texts: Iterable[str]) -> set[float]:
    return {float(m.group(0).replace(",", "")) for t in texts for m in NUMBER.finditer(t)}


def negated(before: str, span: int = 24) -> bool:
    """Whether a negation comes just before (``before`` is the text up to the claim)."""
    tail = before[-span:]
    return _NEGATION.search(tail) is not None


def norm(text: str) -> str:
    """Folded, punctuation made spaces: for comparing a question with an answer."""
    return " ".join(re.sub(r"[\W_]+", " ", fold(text)).split())


def _content_words(text: str) -> list[str]:
    words = re.findall(r"[a-z][a-z'-]+|\d+", fold(text))
    return [w for w in words if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())]


def _cjk_bigrams(text: str) -> set[str]:
    chars = CJK_CHAR.findall(text)
    return {a + b for a, b in itertools.pairwise(chars)}


def says_point(answer: str, point: str) -> bool:
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
