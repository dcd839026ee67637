"""The one currency table: how each currency is written, read, said aloud and rounded.

A leaf module. The catalog writes prices with it (``format_price``), the output guard reads
money figures in a sentence with it, and the voice says them with it, so the three cannot
disagree about what "¥" or "日元" means.

"¥" is both the yuan's and the yen's sign. In everything the host says it means the yuan
only: the catalog writes a yen price as "500 yen" (never "¥500"), the guard reads "¥500" as
yuan (so an LLM's "¥500" for a yen product is corrected or refused), and the voice says
"500 yuan". One meaning end to end is what keeps the spoken word right; the alternative, a
voice that guesses the sign from the stream's currency, is wrong in any catalog that sells in
both, and needs the voice to know the catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Currency:
    code: str  # ISO 4217, as the catalog's ``currency`` field
    digits: int  # the minor unit: 2 (cents), 0 (the yen has none)
    en: str  # how the catalog writes a price in English: "${}"
    zh: str  # ... and in Chinese: "{}美元"
    said: tuple[str, str]  # the unit aloud, one and many: ("dollar", "dollars")
    minor_said: tuple[str, str] = ("", "")  # the minor unit aloud: ("cent", "cents")
    signs: tuple[str, ...] = ()  # written before the amount and read as this currency
    codes: tuple[str, ...] = ()  # other codes written like the ISO one ("RMB")
    # Words after the amount read as this currency. Not "pound": "5 pounds" is a weight.
    words: tuple[str, ...] = ()


def _dollar(code: str, zh: str) -> Currency:
    """A dollar other than the US one: "$" and "dollars" may mean it too."""
    return Currency(
        code,
        2,
        "{} " + code,
        "{}" + zh,
        ("dollar", "dollars"),
        ("cent", "cents"),
        ("$",),
        words=("dollar", "dollars", "bucks", zh),
    )


# The first currency a sign or word belongs to is the one the voice says it as.
CURRENCIES: tuple[Currency, ...] = (
    Currency(
        "USD",
        2,
        "${}",
        "{}美元",
        ("dollar", "dollars"),
        ("cent", "cents"),
        ("US$", "$"),
        words=("dollar", "dollars", "bucks", "美元", "美金"),
    ),
    Currency(
        "CNY",
        2,
        "¥{}",
        "{}元",
        ("yuan", "yuan"),
        ("fen", "fen"),
        ("¥", "￥"),
        ("RMB",),
        ("yuan", "元", "块", "块钱"),
    ),
    Currency(
        "EUR",
        2,
        "€{}",
        "{}欧元",
        ("euro", "euros"),
        ("cent", "cents"),
        ("€",),
        words=("euro", "euros", "欧元"),
    ),
    Currency(
        "GBP", 2, "£{}", "{}英镑", ("pound", "pounds"), ("penny", "pence"), ("£",), words=("英镑",)
    ),
    Currency("JPY", 0, "{} yen", "{}日元", ("yen", "yen"), words=("yen", "日元")),
    _dollar("CAD", "加元"),
    _dollar("AUD", "澳元"),
    _dollar("NZD", "新西兰元"),
    _dollar("HKD", "港元"),
    _dollar("SGD", "新加坡元"),
    _dollar("TWD", "新台币"),
)
BY_CODE = {c.code: c for c in CURRENCIES}


SIGNS = tuple(s for c in CURRENCIES for s in c.signs)
CODES = tuple(code for c in CURRENCIES for code in (c.code, *c.codes))
WORDS = tuple(w for c in CURRENCIES for w in c.words)


def alternation(items: tuple[str, ...]) -> str:
    """A regex alternation of ``items``, escaped, the longest first ("块钱" before "块")."""
    return "|".join(re.escape(i) for i in sorted(set(items), key=len, reverse=True))


def markers(currency: Currency) -> tuple[str, ...]:
    """Everything that names ``currency`` beside an amount: signs, codes, words."""
    return (*currency.signs, currency.code, *currency.codes, *currency.words)


def meaning(marker: str) -> tuple[Currency, ...]:
    """The currencies a sign, code or word may mean (case does not matter), first the one it
    is said as; () for none."""
    key = marker.casefold()
    return tuple(c for c in CURRENCIES if key in {m.casefold() for m in markers(c)})


def minor_digits(code: str) -> int:
    """Decimals a price in ``code`` may have (2 for a currency not in the table)."""
    currency = BY_CODE.get(code)
    return currency.digits if currency is not None else 2


def decimals(amount: float) -> int:
    """The decimals ``amount`` is written with at its shortest: 89.995 -> 3, 500.0 -> 0."""
    exponent = Decimal(repr(float(amount))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def format_amount(amount: float, code: str = "") -> str:
    """The amount as written: whole numbers without decimals, else the currency's digits."""
    if float(amount).is_integer():
        return f"{amount:.0f}"
    return f"{amount:.{minor_digits(code)}f}"


def format_money(amount: float, code: str, lang: str) -> str:
    """ "$89.99", "500 yen", "89.99美元"; a currency not in the table as "12 XYZ"."""
    currency = BY_CODE.get(code)
    if currency is None:
        return f"{format_amount(amount, code)} {code}"
    return (currency.zh if lang == "zh" else currency.en).format(format_amount(amount, code))
