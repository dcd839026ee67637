"""One normalisation and one set of rules for every word from chat the host might repeat.

Strangers write "b u y  f o l l o w e r s", "ｂｕｙ", "bu\u200dy", "bцy" (Cyrillic) or base64 to
slip past a filter. Everything is compared in a *folded* form: ``streambot.text.fold`` (NFKC,
format characters removed, case folded, spaces collapsed) with, in addition, letters of other
scripts that look like Latin ones mapped to those (Unicode's confusables data via
``confusable_homoglyphs``). Banned
words are also matched on the *squashed* form (letters and digits only), so spacing and
punctuation cannot split them, and inside any base64 run that decodes to text.

The same rules screen message text (triage), the names the host says aloud (greetings, thanks,
fallbacks: a name that fails is replaced by "friend") and, for banned words, every sentence an
LLM wants to say (the output guard).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

from confusable_homoglyphs import categories, confusables

from streambot.text import CharTable, is_format, normalise
from streambot.text import fold as _fold

# Scripts whose look-alikes of Latin letters are mapped (Cyrillic "о", Greek "ο", ...). CJK
# and Latin itself are left alone, and digits are never mapped to letters: "1" stays a figure.
_KEEP_SCRIPTS = frozenset({"LATIN", "COMMON", "INHERITED", "HAN", "HIRAGANA", "KATAKANA"})
_MAX_FOLDED = 4000  # longer text is cut before screening (triage refuses it anyway)


@functools.lru_cache(maxsize=8192)
def _latin_lookalike(char: str) -> str:
    """The Latin letter ``char`` is made to look like, or ``char`` itself."""
    if char.isascii() or char.isdigit():
        return char
    try:
        script = categories.alias(char)
    except Exception:  # characters the data does not know
        return char
    if script in _KEEP_SCRIPTS:
        return char
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"])
    for entry in found or ():
        for glyph in entry["homoglyphs"]:
            candidate = glyph["c"]
            if len(candidate) == 1 and candidate.isascii() and candidate.isalpha():
                return candidate.lower()
    return char


# Applied after NFKC, before case folding (an upper-case look-alike maps to its Latin letter).
_FOLD_TABLE = CharTable(lambda c: None if is_format(c) else _latin_lookalike(c))


def fold(text: str) -> str:
    """The comparable form of ``text`` (see the module docstring)."""
    return _fold(text[:_MAX_FOLDED], _FOLD_TABLE)


def squash(folded: str) -> str:
    """Only the letters and digits of a folded text: no spacing or punctuation trick splits."""
    return "".join(ch for ch in folded if ch.isalnum())


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def decoded_payloads(text: str, limit: int = 8) -> list[str]:
    """Text hidden as base64 (standard or URL-safe) in ``text``: each run of 12+ base64
    characters that decodes to printable UTF-8."""
    found = []
    for match in _BASE64_RUN.finditer(text):
        run = match.group(0)
        run = run + "=" * (-len(run) % 4)
        decoder = base64.urlsafe_b64decode if "-" in run or "_" in run else base64.b64decode
        try:
            raw = decoder(run)
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if decoded and sum(ch.isprintable() or ch.isspace() for ch in decoded) >= 0.9 * len(
            decoded
        ):
            found.append(decoded)
        if len(found) >= limit:
            break
    return found


URL = re.compile(
    r"(https?://|www\.)\S+"
    r"|\b[a-z0-9-]+\s*\.\s*(com|net|org|io|ly|gg|cn|tv|me|xyz|top|link|shop|vip)(/\S*)?\b"
    r"|\b[a-z0-9-]+\s+dot\s+(com|net|org|io|cn|tv|me|xyz|top|link|shop|vip)\b"
    r"|(点|點)\s*(com|net|cn)\b",
    re.IGNORECASE,
)
INJECTION = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|rules|prompts?|guidelines)\b",
            r"\bsystem prompt\b",
            r"\byou are now\b",
            r"\b(pretend|act) (to be|as if|like you)\b",
            r"\b(jailbreak|developer mode|dan mode)\b",
            r"(忽略|无视|忘记).{0,10}(指令|规则|设定|提示)",
            r"你现在是|系统提示|扮演",
        )
    ),
    re.IGNORECASE,
)
# A figure in a name ("lamp is 1 dollar", "九块九"): digits in any script, money signs and words,
# percentages, and Chinese numerals with a money or count unit.
FIGURE = re.compile(
    r"\d|[$€£¥￥%]|\b(dollars?|bucks|cents?|yuan|usd|rmb|cny|eur|price|free|off|sale)\b"
    r"|[零〇一二两三四五六七八九十百千万][零〇一二两三四五六七八九十百千万]*\s*(元|块|毛|角|折|件|个|美元)"
    r"|免费|包邮|价格|优惠|折扣|特价",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def _squashed(product_name: str) -> str:
    """A catalog name folded and squashed (names are checked against every product's)."""
    return squash(fold(product_name))


MAX_NAME_CHARS = 20
MAX_NAME_WORDS = 3


class Screen:
    """The rules, built once from the triage settings (see the module docstring)."""

    def __init__(self, banned_words: Iterable[str], drop_urls: bool = True) -> None:
        folded = [fold(w) for w in banned_words if w.strip()]
        self.banned = sorted({w for w in folded if w}, key=len, reverse=True)
        self._banned_squashed = [(w, squash(w)) for w in self.banned if squash(w)]
        self.drop_urls = drop_urls

    @staticmethod
    def views(text: str) -> list[str]:
        """The folded text (first), and the folded text of anything hidden in it as base64.
        Every check takes them, so a caller folds a text once for all of them."""
        return [fold(text), *(fold(p) for p in decoded_payloads(text))]

    def banned_word(self, text: str, views: list[str] | None = None) -> str | None:
        """The banned word ``text`` contains, however it is spelled, or None. ``views``:
        ``views(text)`` when the caller already has them."""
        for view in views if views is not None else self.views(text):
            squashed = squash(view)
            for word, word_squashed in self._banned_squashed:
                if word in view or word_squashed in squashed:
                    return word
        return None

    def has_url(self, text: str, views: list[str] | None = None) -> bool:
        views = views if views is not None else self.views(text)
        return any(URL.search(view) for view in views)  # case-insensitive: folded is enough

    def injection(self, text: str, views: list[str] | None = None) -> bool:
        views = views if views is not None else self.views(text)
        return any(INJECTION.search(view) for view in views)

    def reject_reason(self, text: str, views: list[str] | None = None) -> str | None:
        """Why triage must not answer ``text`` (banned word, URL, injection), or None."""
        views = views if views is not None else self.views(text)  # folded once for every rule
        if self.banned_word(text, views) is not None:
            return "banned word"
        if self.drop_urls and self.has_url(text, views):
            return "contains a URL"
        if self.injection(text, views):
            return "prompt injection attempt"
        return None

    def name_reject_reason(self, user: str, product_names: Sequence[str] = ()) -> str | None:
        """Why ``user`` must not be said aloud, or None. Stricter than text: a name is said
        without context, so no figures, no product names, short and plain."""
        name = user.strip().lstrip("@")
        views = self.views(name)
        folded = views[0]
        if not folded:
            return "empty"
        if len(name) > MAX_NAME_CHARS or len(folded.split()) > MAX_NAME_WORDS:
            return "too long to say"
        # NFKC only: a zero-width or bidi character must be seen here, to be refused.
        if not all(ch.isalnum() or ch in " -_'." for ch in unicodedata.normalize("NFKC", name)):
            return "symbols"
        if self.banned_word(name, views) is not None:
            return "banned word"
        if self.has_url(name, views):
            return "a link"
        if any(FIGURE.search(view) for view in views):
            return "a figure"
        if self.injection(name, views):
            return "an instruction"
        squashed = squash(folded)
        for product in product_names:
            if (p := _squashed(product)) and len(p) >= 3 and p in squashed:
                return "a product name"
        return None

    def speakable_name(self, user: str, product_names: Sequence[str] = ()) -> str | None:
        """``user`` as the host may say it, or None when it fails the name rules."""
        if self.name_reject_reason(user, product_names) is not None:
            return None
        return normalise(user.strip().lstrip("@"))
