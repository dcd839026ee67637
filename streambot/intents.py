"""What a chat message asks about the products (price, stock, shipping, features) and whether
it is a greeting, in English and Chinese; and, for the catalog brain's answers, which way it
compares prices, how many it wants (``quantity``), and what it asks that a catalog has no
field for (``asked_detail``: where it ships to, a warranty, colours, size). A leaf module:
triage ranks messages by it and the catalog brain answers by it.

It holds the rules the brains share about numbers too, each written once: numbers in digits,
English words and Chinese numerals (``zh_number``, ``zh_numeral``, ``en_number``), the
quantities a text counts (``quantities``: the catalog brain reads a question's, the output
guard every one in a sentence), and what the host says where the catalog is silent
(``CHECK_EN``, ``CHECK_ZH``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streambot.money import WORDS, alternation
from streambot.text import IDEOGRAPHS, fold

_INTENTS_EN = {
    "price": (
        r"\b(price|prices|cost|costs|how much|expensive|cheap|discount|deal|total|altogether)\b"
        r"|\$"
    ),
    "stock": r"\b(stock|available|availability|left|sold out|inventory|any more|remaining)\b",
    "shipping": (
        r"\b(ship|ships|shipped|shipping|deliver|delivers|delivered|delivery|arrive|arrives"
        r"|arriving|arrival|postage|how long|how soon)\b"
    ),
    # "good" but not "good evening": a greeting is no features question
    "features": (
        r"\b(feature|features|special|good(?! (?:morning|afternoon|evening|night|day)\b)|spec"
        r"|specs|details|tell me|what does|why|worth)\b"
    ),
}
_INTENTS_ZH = {
    "price": r"多少钱|价格|价钱|几块|多少元|贵|便宜|优惠|折扣",
    "stock": r"库存|有货|还有|现货|卖完|几件|没货|缺货",
    "shipping": (
        r"发货|快递|包邮|运费|几天|到货|物流|寄|送达|到手"
        r"|(?:多久|多长时间|什么时候|啥时候|哪天)(?:才|能|可以|会)?(?:到|收到|送到)"
    ),
    "features": r"特点|功能|怎么样|好用|介绍|区别|优点|卖点|值得",
}
_GREETING_EN = r"^\W*(hi|hello|hey|yo|good (morning|afternoon|evening)|greetings)\b"
_GREETING_ZH = r"你好|大家好|哈喽|嗨|早上好|晚上好|下午好|主播好"


_COMPILED_INTENTS = {
    "zh": [(name, re.compile(p)) for name, p in _INTENTS_ZH.items()],
    "en": [(name, re.compile(p, re.IGNORECASE)) for name, p in _INTENTS_EN.items()],
}
_COMPILED_GREETING = {"zh": re.compile(_GREETING_ZH), "en": re.compile(_GREETING_EN, re.I)}


def detect_intents(text: str, lang: str) -> list[str]:
    """The product questions ``text`` asks ("price", "stock", "shipping", "features")."""
    table = _COMPILED_INTENTS["zh" if lang == "zh" else "en"]
    return [name for name, pattern in table if pattern.search(text)]


def is_greeting(text: str, lang: str) -> bool:
    return _COMPILED_GREETING["zh" if lang == "zh" else "en"].search(text) is not None


# -- comparisons ------------------------------------------------------------------------------
_CHEAPER = {
    "en": r"\b(?:cheaper|cheapest|less expensive|least expensive|more affordable|most affordable"
    r"|costs? less|lower price)\b",
    "zh": r"便宜|实惠",
}
_DEARER = {
    "en": r"\b(?:more expensive|most expensive|pricier|priciest|dearer|dearest|costs? more"
    r"|higher price)\b",
    "zh": r"贵",
}
_YES_NO = {
    "en": r"^\W*(?:is|are|was|does|do|would|will|isn't|aren't|doesn't)\b",
    "zh": r"吗|是不是|是否",
}
_COMPILED_CHEAPER = {k: re.compile(p, re.I) for k, p in _CHEAPER.items()}
_COMPILED_DEARER = {k: re.compile(p, re.I) for k, p in _DEARER.items()}
_COMPILED_YES_NO = {k: re.compile(p, re.I) for k, p in _YES_NO.items()}


def _key(lang: str) -> str:
    return "zh" if lang == "zh" else "en"


def price_comparison(text: str, lang: str) -> str | None:
    """Which way ``text`` compares prices: "cheaper" ("which is cheaper", "哪个便宜"; also when
    it asks both ways, the order answers both), "dearer" ("is X more expensive than Y",
    "X比Y贵吗"), or None. Only a comparison when it names two products or more."""
    if _COMPILED_CHEAPER[_key(lang)].search(text):
        return "cheaper"
    if _COMPILED_DEARER[_key(lang)].search(text):
        return "dearer"
    return None


def asks_yes_no(text: str, lang: str) -> bool:
    """Whether ``text`` is a yes-or-no question ("Is X cheaper than Y?", "X比Y贵吗？")."""
    return _COMPILED_YES_NO[_key(lang)].search(text) is not None


# -- numbers ----------------------------------------------------------------------------------
# A figure in digits: "12", "1,299.50".
DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
EN_NUMBERS = re.findall(
    r"\w+",
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty",
)
EN_TENS = re.findall(r"\w+", "_ _ twenty thirty forty fifty sixty seventy eighty ninety")
_EN_VALUES = {w: n for n, w in enumerate(EN_NUMBERS)}
_EN_VALUES |= {w: 10 * n for n, w in enumerate(EN_TENS) if n >= 2}
# A number below 100 in English words: "seven", "forty-two", "forty two" (no \b around it).
EN_NUMBER = (
    rf"(?:{'|'.join(EN_TENS[2:])})(?:[- ](?:{'|'.join(EN_NUMBERS[1:10])}))?"
    rf"|{'|'.join(sorted(EN_NUMBERS, key=len, reverse=True))}"
)
ZH_DIGITS = {c: "零一二三四五六七八九".index(c) for c in "零一二三四五六七八九"}
ZH_DIGITS |= {"〇": 0, "两": 2}
ZH_NUMERALS = "零〇一二两三四五六七八九十百千万"
ZH_NUMERAL = f"[{ZH_NUMERALS}]"  # one character of a number in Chinese numerals
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000}


def zh_number(text: str) -> int:
    """A number in Chinese numerals below 100 million: "两" -> 2, "十二" -> 12, "一百零五" ->
    105, "一千二百九十九" -> 1299 (digits as they are)."""
    if text.isdigit():
        return int(text)
    total, section, digit = 0, 0, 0
    for char in text:
        if char in ZH_DIGITS:
            digit = ZH_DIGITS[char]
        elif char == "万":
            total += (section + digit) * 10_000
            section, digit = 0, 0
        else:  # 十 百 千: a bare 十 ("十五") is one ten
            section += (digit or 1) * _ZH_UNITS[char]
            digit = 0
    return total + section + digit


def zh_numeral(n: int) -> str:
    """``n`` (below 10,000) in Chinese numerals: 7 -> 七, 12 -> 十二, 105 -> 一百零五; "" for
    10,000 and more."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n >= 10_000:
        return ""
    out, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十")):
        digit, n = divmod(n, value)
        if digit:
            out += ("零" if zero else "") + digits[digit] + unit
            zero = False
        elif out:
            zero = True
    if n:
        out += ("零" if zero else "") + digits[n]
    return out[1:] if out.startswith("一十") else out


def en_number(text: str) -> int | None:
    """The value of a whole number in digits or English words ("12", "twelve", "forty-two",
    "forty two"); None for none."""
    if text.isdigit():
        return int(text)
    parts = re.split(r"[- ]", text.lower())
    if not all(p in _EN_VALUES for p in parts):
        return None
    return sum(_EN_VALUES[p] for p in parts)


# -- quantities -------------------------------------------------------------------------------
# what may follow a number that counts something else: money, time, measures, percentages
_NOT_COUNTED_EN = (
    r"%|percent|dollars?|bucks|usd|yuan|yen|euros?|pounds?|cents?|seconds?|minutes?|hours?"
    r"|days?|weeks?|months?|years?|am|pm|o'?clock|settings?|times?|stars?|ml|l|oz|g|kg|lbs?"
    r"|cm|mm|m|inch(?:es)?|hz|mah|w|watts?|gb|tb|colou?rs?|modes?|levels?|speeds?"
)
_QUANTITY_EN = re.compile(
    # "x3", "×3", "3x": said as a count
    r"(?<!\w)[x×]\s*(?P<x>\d{1,6})\b|(?<![\w$€£¥￥.,])(?P<y>\d{1,6})\s*[x×](?!\w)"
    # "2", "two": a bare number
    rf"|(?<![\w$€£¥￥.,])(?P<n>\d{{1,6}}|(?:{EN_NUMBER})\b)(?![\w.,]*\d)"
    rf"(?!\s*(?:{_NOT_COUNTED_EN})\b)(?!\s*%)(?!\s*(?:to|or|-|–)\s*\d)",
    re.IGNORECASE,
)
ZH_MEASURES = "个件台只套瓶份副支盏把盒双条张本包箱袋对杯"
# what a measure word may count that is no item: "两个月", "三个小时"
_NOT_COUNTED_ZH = "月|小时|星期|钟头|工作日"
_ZH_COUNT = rf"\d{{1,6}}|{ZH_NUMERAL}+"
_MONEY_ZH = alternation(tuple(w for w in WORDS if not w.isascii()))  # "只要99元" is a price
_QUANTITY_ZH = re.compile(
    # "两个", "3件": a number and a measure word
    rf"(?<![A-Za-z0-9.,第{ZH_NUMERALS}])(?P<n>{_ZH_COUNT})\s*[{ZH_MEASURES}](?!{_NOT_COUNTED_ZH})"
    # "买3", "要两": a number after a verb of buying (not "只要99元", "需要2到3天")
    rf"|(?:买|(?<![需只])要|拿|来|订|下单)\s*(?P<m>{_ZH_COUNT})(?![\d{ZH_NUMERALS}]|\.\d)"
    rf"(?!\s*(?:[分天小周月年点次档折块元毛角岁号下些共起样般]|{_MONEY_ZH}))"
    rf"(?![{ZH_MEASURES}](?:{_NOT_COUNTED_ZH}))(?!\s*(?:到|至|-|~|～)\s*[\d{ZH_NUMERALS}])"
)


@dataclass(frozen=True)
class Quantity:
    start: int
    end: int
    value: int
    bare: bool  # a number alone ("2", "two"), not said as a count ("x2", "两个", "买3")


def quantities(text: str, lang: str) -> list[Quantity]:
    """Every number in ``text`` that counts items, in order: "2 thermo bottles", "how much
    for two", "x3", "3x", "两个保温杯", "买3个". Money, times, measures and percentages ("$24",
    "2 days", "40 settings", "两个月", "2到4天") are not counted, nor ranges ("2 to 4") nor
    ordinals ("第2个"). An English number alone is ``bare``: what follows it says what it
    counts (``quantity`` reads a question with the product names taken out; the output guard
    wants a product after it)."""
    out = []
    if _key(lang) == "zh":
        for m in _QUANTITY_ZH.finditer(text):
            value = zh_number(m.group("n") or m.group("m"))
            out.append(Quantity(m.start(), m.end(), value, bare=False))
        return out
    for m in _QUANTITY_EN.finditer(text):
        word = m.group("x") or m.group("y") or m.group("n")
        value = en_number(word)
        if value is not None:
            out.append(Quantity(m.start(), m.end(), value, bare=m.group("n") is not None))
    return out


def quantity(text: str, lang: str) -> int | None:
    """How many items ``text`` asks about (the first of ``quantities``), or None when it counts
    none. Read it with the product names taken out: a name's own digits ("Pro 2") are no
    quantity."""
    found = quantities(text, lang)
    return found[0].value if found else None


# -- what a catalog has no field for ----------------------------------------------------------
DETAILS = ("destination", "warranty", "colour", "size")
# What the host says where the catalog is silent: the catalog brain for a detail it has no
# field for, the output guard in place of a claim the catalog does not support.
CHECK_EN = "Let me check that for you."
CHECK_ZH = "我帮您确认一下。"
CHECK_PHRASES = (CHECK_EN, CHECK_ZH)
_COLOUR_NAMES = (
    "red|blue|green|black|white|pink|purple|yellow|orange|grey|gray|silver|gold|beige|brown"
    "|navy|rose gold"
)
_DETAILS = {
    "en": {
        # "ship it to Canada", "deliver to the UK", "internationally"; not "take to arrive"
        "destination": (
            r"\b(?:ship|ships|shipping|shipped|deliver|delivers|delivery|send|sent|post|mail)"
            r"\s+(?:\S+\s+){0,4}?to\s+(?!(?:you|me|us|my|your|our|him|her|them|arrive|get|be"
            r"|reach|ship|deliver|come|take|receive)\b)[a-z]"
            r"|\b(?:international(?:ly)?|overseas|abroad|worldwide|other countries)\b"
        ),
        "warranty": (
            r"\b(?:warrant(?:y|ies|ied)|guarantee[ds]?|refunds?|returns?|return policy"
            r"|money[- ]back|repairs?)\b"
        ),
        "colour": (
            rf"\b(?:colou?rs?(?!\s*temperature)|colou?red|colou?rways?"
            rf"|(?:come|comes|available|have it|get it|in)\s+(?:{_COLOUR_NAMES}))\b"
        ),
        "size": (
            r"\b(?:size|sizes|sized|dimensions?|how big|bigger|smaller|larger|weight|weighs?"
            r"|how heavy|heavier|lighter|capacity)\b"
        ),
    },
    "zh": {
        # "寄到加拿大", "海外"; not "送到家" nor "多久能送到"
        "destination": (
            rf"(?:寄|发|送|运|邮)(?:到|往|去)(?![家手门货吗呢了么嘛])(?=[{IDEOGRAPHS}])"
            r"|海外|国外|国际|境外|全球|全世界|出国"
        ),
        "warranty": r"保修|质保|保固|退货|退款|退换|包退|包换|三包|售后",
        "colour": r"颜色|色彩|什么色|哪些色|几种色|[红蓝绿黑白粉紫黄橙灰银金棕]色(?!温)",
        "size": r"尺寸|大小|多大|多重|重量|容量|体积|规格",
    },
}
_COMPILED_DETAILS = {
    lang: {name: re.compile(p, re.IGNORECASE) for name, p in table.items()}
    for lang, table in _DETAILS.items()
}


def asks_about_a_product(text: str, lang: str) -> bool:
    """``text`` asks a product question (a price, stock, shipping, what it is like, a detail
    the catalog may not have) whether or not it names the product."""
    folded = fold(text)
    return bool(detect_intents(folded, lang) or asked_detail(folded, lang))


def asked_detail(text: str, lang: str) -> str | None:
    """What ``text`` asks that a catalog has no field for, the first of ``DETAILS``: where it
    ships to ("destination"), a warranty or returns, colours, size or weight; None for none."""
    table = _COMPILED_DETAILS[_key(lang)]
    return next((name for name in DETAILS if table[name].search(text)), None)


def says_detail(text: str, detail: str, lang: str) -> bool:
    """Whether ``text`` (a product's selling point or shipping terms) says something about
    ``detail``, by the same words a question asks it with."""
    return _COMPILED_DETAILS[_key(lang)][detail].search(text) is not None
