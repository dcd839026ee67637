"""Text normalisation for what a selling stream says, before phonemes.

espeak-ng reads "$89.99" as "dollar eighty-nine point nine nine" and "3-5 days" as "three
dash five days". A host must say "89 dollars and 99 cents" and "3 to 5 days", so prices,
currencies, ranges, percentages, units and model numbers are rewritten into words here;
plain numbers are left to espeak, which reads them well.
"""

from __future__ import annotations

import re

from streambot.money import CODES, SIGNS, WORDS, alternation, meaning

_UNITS = {
    "mAh": "milliamp hours",
    "kWh": "kilowatt hours",
    "Wh": "watt hours",
    "ml": "milliliters",
    "mL": "milliliters",
    "l": "liters",
    "L": "liters",
    "kg": "kilograms",
    "g": "grams",
    "mg": "milligrams",
    "lb": "pounds",
    "lbs": "pounds",
    "oz": "ounces",
    "km": "kilometers",
    "m": "meters",
    "cm": "centimeters",
    "mm": "millimeters",
    "in": "inches",
    "ft": "feet",
    "W": "watts",
    "kW": "kilowatts",
    "V": "volts",
    "mA": "milliamps",
    "A": "amps",
    "Hz": "hertz",
    "kHz": "kilohertz",
    "GHz": "gigahertz",
    "GB": "gigabytes",
    "TB": "terabytes",
    "MB": "megabytes",
    "h": "hours",
    "hr": "hours",
    "hrs": "hours",
    "min": "minutes",
    "mins": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "°C": "degrees Celsius",
    "°F": "degrees Fahrenheit",
}
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


def _amount(number: str) -> tuple[str, str]:
    whole, _, fraction = number.replace(",", "").partition(".")
    return whole, fraction


def say_money(number: str, marker: str) -> str:
    """ "89.99", "$" -> "89 dollars and 99 cents"; "5", "$" -> "5 dollars"; "500", "JPY" ->
    "500 yen". ``marker``: a sign, code or word of the currency table (``streambot.money``)."""
    currency = meaning(marker)[0]
    one, many = currency.said
    whole, fraction = _amount(number)
    unit = one if whole == "1" else many
    if not fraction or int(fraction) == 0:
        return f"{int(whole)} {unit}"
    if not currency.digits:  # no smaller unit (the yen): the amount as written
        return f"{int(whole)}.{fraction} {many}"
    cents = int((fraction + "0")[:2])
    sub = currency.minor_said[0] if cents == 1 else currency.minor_said[1]
    if int(whole) == 0:
        return f"{cents} {sub}"
    return f"{int(whole)} {unit} and {cents} {sub}"


_SIGN = alternation(SIGNS)
_CODE = alternation(CODES)
_NAME = alternation((*CODES, *WORDS))


def _money(text: str) -> str:
    # $89.99, $ 5, ¥99, US$5, JPY 500
    text = re.sub(
        rf"({_SIGN}|(?<![A-Za-z])(?:{_CODE}))\s?({_NUMBER})",
        lambda m: say_money(m[2], m[1]),
        text,
        flags=re.IGNORECASE,
    )
    # 99元, 20 USD, 15 euros, 500日元
    return re.sub(
        rf"({_NUMBER})\s?({_NAME})(?![A-Za-z])",
        lambda m: say_money(m[1], m[2]),
        text,
        flags=re.IGNORECASE,
    )


def _ranges(text: str) -> str:
    # "3-5 days", "10–20%": a dash between two numbers is "to" (not a minus, not a hyphen)
    return re.sub(rf"(?<![\w.])({_NUMBER})\s?[-–~]\s?({_NUMBER})(?![\w-])", r"\1 to \2", text)


def _percent(text: str) -> str:
    return re.sub(rf"({_NUMBER})\s?%", r"\1 percent", text)


def _units(text: str) -> str:
    names = "|".join(sorted(map(re.escape, _UNITS), key=len, reverse=True))
    return re.sub(
        rf"(?<![\w.])({_NUMBER})\s?({names})(?![\w])", lambda m: f"{m[1]} {_UNITS[m[2]]}", text
    )


def _model_numbers(text: str) -> str:
    """ "XR-200" -> "X R 200", "IPX5" -> "I P X 5": letters of a code are spelled out."""

    def spell(m: re.Match) -> str:
        letters = " ".join(m[1])
        return f"{letters} {m[2]}"

    return re.sub(r"\b([A-Z]{2,4})-?(\d+)\b", spell, text)


def normalize_text(text: str) -> str:
    """Rewrite prices, ranges, percentages, units and model codes as speakable words."""
    for step in (_money, _percent, _ranges, _units, _model_numbers):
        text = step(text)
    return re.sub(r"\s{2,}", " ", text).strip()
