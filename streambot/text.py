"""The text rules every part of the host shares, each defined once (a leaf module).

* ``fold``: the *comparable* form that checks and matching compare: NFKC (full-width and
  other compatibility forms become plain ones), invisible format characters removed
  (zero-width space and joiners, soft hyphen, bidi controls), case folded, whitespace runs
  made one space. Screening passes its own table to map look-alike letters as well.
* ``normalise``: the *display* form of a stranger's text that is quoted or said aloud: NFKC,
  line breaks and tabs made spaces, control, format, surrogate and private-use characters
  removed, whitespace runs made one space; case kept.
* ``is_cjk`` / ``has_cjk``: CJK ideographs (what makes a message Chinese).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping

# CJK ideographs: Extension A, the unified block, the compatibility ideographs, and the whole
# Supplementary and Tertiary Ideographic Planes (Extensions B to J and the compatibility
# supplement; their unassigned code points are reserved for ideographs).
IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
# Characters of text written without spaces between words: the ideographs, radicals, CJK
# punctuation, kana, bopomofo, Hangul compatibility jamo, CJK vertical and small forms, and
# the half- and full-width forms.
UNSPACED = IDEOGRAPHS + "\u2e80-\u33ff\ufe30-\ufe4f\uff00-\uffef"

_IDEOGRAPH = re.compile(f"[{IDEOGRAPHS}]")
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co"})


def is_cjk(char: str) -> bool:
    """Whether ``char`` (one character) is a CJK ideograph."""
    return len(char) == 1 and _IDEOGRAPH.match(char) is not None


def has_cjk(text: str) -> bool:
    """Whether ``text`` contains a CJK ideograph."""
    return _IDEOGRAPH.search(text) is not None


class CharTable(dict[int, "str | None"]):
    """A ``str.translate`` table worked out by ``rule`` on first sight of each character
    (None: remove it). Bounded: past ``cap`` entries, new characters are worked out each time
    instead of remembered (a stranger can send every code point there is)."""

    def __init__(self, rule: Callable[[str], str | None], cap: int = 65_536) -> None:
        super().__init__()
        self.rule, self.cap = rule, cap

    def __missing__(self, code: int) -> str | None:
        value = self.rule(chr(code))
        if len(self) < self.cap:
            self[code] = value
        return value


def is_format(char: str) -> bool:
    """Whether ``char`` is an invisible format character (zero-width, bidi, soft hyphen)."""
    return unicodedata.category(char) == "Cf"


def _without_format(char: str) -> str | None:
    return None if is_format(char) else char


def _visible(char: str) -> str | None:
    if char.isspace():
        return " "
    return None if unicodedata.category(char) in _INVISIBLE else char


WITHOUT_FORMAT = CharTable(_without_format)
_VISIBLE = CharTable(_visible)


def fold(text: str, table: Mapping[int, str | None] = WITHOUT_FORMAT) -> str:
    """The comparable form of ``text`` (see the module docstring). ``table``: applied after
    NFKC; it must remove format characters too (``WITHOUT_FORMAT`` does only that)."""
    if text.isascii():  # most chat: NFKC and format characters cannot apply
        return " ".join(text.casefold().split())
    text = unicodedata.normalize("NFKC", text).translate(table)
    return " ".join(text.casefold().split())


def normalise(text: str) -> str:
    """The display form of ``text``: one line of visible characters (see the module
    docstring)."""
    if text.isascii() and text.isprintable():
        return " ".join(text.split())
    return " ".join(unicodedata.normalize("NFKC", text).translate(_VISIBLE).split())
