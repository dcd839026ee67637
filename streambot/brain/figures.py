"""The figures of a sentence the guard reads: numbers in either language (digits, English
words, Chinese numerals), figures with their units ("12 hours", "40档", "five color
temperatures"), shipping times ("1 to 2 days", "1天", "next day"), and money ("$89.99",
"99元", "二十四块五": ``money_figures``, read the same way by the guard and the evaluation)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from streambot import money
from streambot.catalog import Product
from streambot.intents import (
    DIGITS,
    EN_NUMBER,
    ZH_DIGITS,
    ZH_NUMERAL,
    ZH_NUMERALS,
    en_number,
    zh_number,
)


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


def overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
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
        if overlaps(m.start("n"), m.end("n"), skip):
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
        if overlaps(m.start(), m.end(), [*skip, *taken, *idioms]):
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
_SHIPPING_EN = r"ship|ships|shipped|shipping|postage|deliver(?:s|ed|y)?"
_SHIPPING_ZH = r"发货|快递|配送|包邮|邮寄"
# a sentence about when an order arrives: its shipping time is the catalog's
SHIP_TALK = re.compile(
    rf"\b(?:{_SHIPPING_EN}|dispatch(?:ed|es)?|arriv(?:e|es|ed|al)|at your door)\b"
    rf"|{_SHIPPING_ZH}|发出|寄出|到货|送达|到手|收到|物流",
    re.IGNORECASE,
)
# a sentence about what shipping costs: a money figure in it may be a fee or a threshold
# ("free over $35", "满35美元包邮"), never a price to correct
SHIPPING_MONEY_TALK = re.compile(
    rf"\b(?:{_SHIPPING_EN}|free|orders?)\b|{_SHIPPING_ZH}|运费|邮费|满", re.IGNORECASE
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
SHIP_WORDS = re.compile(
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


# -- money ----------------------------------------------------------------------------------
_WORDS_ZH = tuple(w for w in money.WORDS if not w.isascii())
_WORDS_EN = (*money.CODES, *(w for w in money.WORDS if w.isascii()))
_MONEY = re.compile(
    rf"(?P<sym>{money.alternation(money.SIGNS)})\s?(?P<a>{DIGITS})"
    rf"|(?<![A-Za-z])(?P<code>{money.alternation(money.CODES)})\s?(?P<b>{DIGITS})"
    rf"|(?<![\d.,])(?P<c>{DIGITS})\s*(?P<unit>{money.alternation(_WORDS_ZH)}"
    rf"|(?:{money.alternation(_WORDS_EN)})(?![A-Za-z]))",
    re.IGNORECASE,
)


def _currencies(marker: str) -> frozenset[str]:
    """The codes a money marker may mean ("$": every dollar; "¥": the yuan, see money)."""
    return frozenset(c.code for c in money.meaning(marker)) or frozenset({marker.upper()})


@dataclass(frozen=True)
class MoneyFigure:
    """A money figure in a sentence, as ``money_figures`` reads it."""

    start: int
    end: int
    text: str
    value: float
    currencies: frozenset[str] | None  # None: no currency said
    fee: bool = False  # said as a fee ("运费是8元", "shipping fee: $5"), not a price


# Prices in Chinese numerals: "二十四块五", "八十九块九毛九", "一千二百九十九元".
_ZH_MONEY = re.compile(
    rf"(?P<int>{ZH_NUMERAL}+)(?:点(?P<dec>[零〇一二三四五六七八九]+))?"
    rf"\s*(?P<unit>{money.alternation(_WORDS_ZH)})"
    r"(?:(?P<jiao>[零一二两三四五六七八九])(?:毛|角)?(?:(?P<fen>[一二两三四五六七八九])分?)?)?"
)


def money_figures(text: str) -> list[MoneyFigure]:
    """The money figures in ``text``, in order: "$89.99", "89.99 dollars", "¥99", "99元",
    "24.50美元", "USD 20", in Chinese numerals "二十四块五", and a fee's bare figure ("运费是8",
    no currency said). What the guard checks and the evaluation scores are read by this one
    rule."""
    out = []
    for m in _MONEY.finditer(text):
        number = m.group("a") or m.group("b") or m.group("c")
        marker = (m.group("sym") or m.group("code") or m.group("unit") or "").lower()
        currencies = _currencies(marker)
        value = float(number.replace(",", ""))
        out.append(MoneyFigure(m.start(), m.end(), m.group(0), value, currencies))
    for m in _ZH_MONEY.finditer(text):
        value = float(zh_number(m.group("int")))
        if m.group("dec"):
            value += float("0." + "".join(str(ZH_DIGITS[c]) for c in m.group("dec")))
        if m.group("jiao"):  # 块五 / 块五毛 / 块九毛九: tenths, then hundredths
            value += ZH_DIGITS[m.group("jiao")] / 10
            if m.group("fen"):
                value += ZH_DIGITS[m.group("fen")] / 100
        currencies = _currencies(m["unit"])
        out.append(MoneyFigure(m.start(), m.end(), m.group(0), round(value, 2), currencies))
    return sorted(_mark_fees(text, out), key=lambda money: money.start)


# A figure right after a fee's name is the fee, never a price, with or without a currency:
# a student wrote "SonicBuds Pro 蓝牙耳机的发货费用是129" (the buds' price as a shipping fee)
_FEE_BEFORE = re.compile(
    r"(?:运费|邮费|快递费|发货费|配送费|邮寄费|\bshipping (?:fee|cost|charge)s?|\bpostage"
    r"|\bdelivery (?:fee|charge)s?)用?"
    r"\s*(?:是|为|要|只要|:|：|\bis\b|\bare\b|\bof\b|\bcosts?\b)?\s*$",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(
    rf"(?<![\d.,])(?P<n>{DIGITS})(?![\d.,]*\s*(?:%|天|日|个|小时|days?\b|hours?\b|business))",
    re.IGNORECASE,
)


def _mark_fees(text: str, said: list[MoneyFigure]) -> list[MoneyFigure]:
    """``said`` with each figure after a fee's name marked a fee, and the fees' bare figures
    ("运费是8": money, no currency said) added."""
    out = [replace(f, fee=_FEE_BEFORE.search(text[: f.start]) is not None) for f in said]
    for m in _BARE_NUMBER.finditer(text):
        start, end = m.span("n")
        if _FEE_BEFORE.search(text[:start]) and not any(f.start <= start < f.end for f in said):
            value = float(m["n"].replace(",", ""))
            out.append(MoneyFigure(start, end, m["n"], value, None, fee=True))
    return out


def same_amount(figure: MoneyFigure, value: float) -> bool:
    """Whether ``figure``'s number is ``value`` (to the cent), whatever its currency."""
    return abs(figure.value - value) < 0.005


def same_money(figure: MoneyFigure, value: float, currency: str) -> bool:
    """Whether ``figure`` is ``value`` in ``currency`` (a figure without a currency is any)."""
    if not same_amount(figure, value):
        return False
    return figure.currencies is None or currency.upper() in figure.currencies


def same_figure(a: MoneyFigure, b: MoneyFigure) -> bool:
    """Whether two money figures say the same amount in a currency both may mean (a figure
    without a currency may mean any): the viewer's "$62" said back as "62 dollars"."""
    if not same_amount(a, b.value):
        return False
    return a.currencies is None or b.currencies is None or bool(a.currencies & b.currencies)


_OPEN_BRACKET = re.compile(r"\s*[(（]\s*")
_CLOSE_BRACKET = re.compile(r"\s*[)）]")


def without_restated_money(text: str) -> tuple[str, list[str]]:
    """``text`` without a money figure said again in brackets right after the same amount,
    and those left out: "$179.98 (179.98美元)" (the real 1.5B glosses an English answer's
    figure in Chinese, and the other language refuses the sentence) is "$179.98". A bracket
    with any other amount or more words in it ("$179.98 ($89.99 each)") stays."""
    figures = money_figures(text)
    dropped: list[str] = []
    for said, again in reversed(list(itertools.pairwise(figures))):
        opened = _OPEN_BRACKET.fullmatch(text, said.end, again.start)
        closed = _CLOSE_BRACKET.match(text, again.end)
        if opened and closed and same_amount(again, said.value):
            dropped.append(text[said.end : closed.end()].strip())
            text = text[: said.end] + text[closed.end() :]
    return text, dropped[::-1]


def shipping_terms(products: Iterable[Product]) -> list[tuple[float, str]]:
    """(amount, currency) of each money figure of the products' shipping terms ("free over
    $35": a threshold; "运费8元": a fee), in the product's currency."""
    return [
        (term.value, p.currency)
        for p in products
        for term in money_figures(f"{p.shipping} {p.shipping_zh}")
    ]


def a_shipping_term(figure: MoneyFigure, products: Iterable[Product]) -> bool:
    """Whether ``figure`` is a money figure of the products' shipping terms ("free over $35")."""
    return any(same_money(figure, value, code) for value, code in shipping_terms(products))
