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
import contextlib
import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

from confusable_homoglyphs import categories, confusables
from publicsuffixlist import PSLFILE

from streambot.money import CODES, SIGNS, WORDS, alternation
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


def screen_fold(text: str) -> str:
    """The comparable form of ``text`` for screening: ``text.fold`` with look-alike letters
    mapped to Latin ones (see the module docstring), of at most ``_MAX_FOLDED`` characters."""
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


# A link whose dot is written as one ("shop.store", "shop。app") must end in a real top-level
# domain: any of the Public Suffix List's ICANN section (bundled in ``publicsuffixlist``, read
# once here, never downloaded), so "nice.thanks" is a typo, not a link. Some are English words
# (.how .now .lol .love .today): "ok.how" counts as a link, as a spammer may use any real one.
# One whose dot is spaced or spelled out ("spam . com", "shop dot example", "shop[.]ru") must end
# in one of ``_TLDS``: common and much-abused ones, but no English word, since "polka dot top",
# "got it. me too" or "hello. today" are no links.
_TLDS = (
    "com|net|org|info|biz|io|co|tv|cc|app|dev|xyz|vip|icu|online|site|website|ly|gg|uk|de|ru|"
    "cn|jp|fr|es|nl|br|au|ca|eu|kr|tw|hk|sg|ph|vn|th|pl|ua|cz|ch|se|dk|fi|ie|nz|za|mx|ar|cl|ws|"
    "su|ml|tk|ga|cf|gq|pw|example|invalid|localhost|onion"
)
_RESERVED_TLDS = ("example", "invalid", "localhost", "onion")  # RFC 2606 / 6761 / 7686


def _top_level_domains() -> frozenset[str]:
    """Every ICANN top-level label of the bundled Public Suffix List, lower case, IDNs both in
    Unicode ("在线") and in punycode ("xn--3ds443g"), and the reserved ``_RESERVED_TLDS``."""
    found: set[str] = set(_RESERVED_TLDS)
    icann = False
    with open(PSLFILE, encoding="utf-8") as rules:
        for line in rules:
            line = line.strip()
            if line == "// ===BEGIN ICANN DOMAINS===":
                icann = True
            elif line == "// ===END ICANN DOMAINS===":
                break
            elif icann and line and not line.startswith("//"):
                label = line.rsplit(".", 1)[-1].lstrip("!").lower()  # "*.ck", "!www.ck": ck
                found.add(label)
                if not label.isascii():
                    with contextlib.suppress(UnicodeError):  # IDNA 2003 refuses: Unicode only
                        found.add(label.encode("idna").decode("ascii"))
    return frozenset(found)


TOP_LEVEL_DOMAINS = _top_level_domains()
# Top-level domains that are also short English words: "ok.so how much", "hi.is it in stock" are
# typos. Right after a name's first label they count only before a path or port ("t.me/x").
_WORD_TLDS = frozenset(
    {"am", "as", "at", "be", "by", "do", "in", "is", "it", "me", "my", "no", "so", "to", "us"}
)
# a dot spaced on one side or both, an ideographic one, 点, "dot", or a bracketed dot
_SPELLED_DOT = (
    r"\s*(?:。|点|點)\s*|\s+\.\s*|\s*\.\s+|\s+dot\s+|\s*[(\[{<]\s*(?:dot|\.|。)\s*[)\]}>]\s*"
)
# The dot-written names come last: a match of theirs is only a candidate (``_is_link``), and at
# its position no other branch matched.
URL = re.compile(
    r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*://\S+|\bwww\s*[.。]\s*\S+"  # a scheme, or www.
    rf"|(?<![\w-])[\w-]+(?:{_SPELLED_DOT})(?:{_TLDS})(?![a-z0-9-])"
    rf"|(?:点|點)\s*(?:{_TLDS})(?![a-z0-9-])"
    rf"|(?<![\d.])\d{{1,3}}(?:(?:\.|{_SPELLED_DOT})\d{{1,3}}){{3}}(?!\d)"  # an IP address
    # a dot written as one ("e.g." and "3.5" end in no label of 2+ letters); a Unicode last
    # label only after a non-Latin letter ("shop.com优惠" is shop.com)
    # (each starts at a name's first label only: "a.a.a..." is tried once, not per label)
    r"|(?P<dotted>(?<![\w-])(?<![\w-]\.)[\w-]+(?:\.[\w-]+)*"
    r"\.(?:[a-z]{2,24}|xn--[a-z0-9-]+|[^\W\d_a-z]{2,24})(?![a-z0-9-]))"
    r"|(?P<ideographic>(?<![a-z0-9-])(?<![a-z0-9-]。)[a-z0-9-]+(?:。[a-z0-9-]+)*"
    r"。[a-z]{2,24}(?![a-z0-9-]))",
    re.IGNORECASE,
)


def _is_link(match: re.Match[str]) -> bool:
    """Whether a ``URL`` match is a link: any but a dot-written name's is; that one is when a
    label after its first is a top-level domain ("shop.com.then" is shop.com), or a path or a
    port follows it ("shop.anything/sale")."""
    name, dot = (match["dotted"], ".") if match["dotted"] else (match["ideographic"], "。")
    if name is None:
        return True
    after = match.string[match.end() : match.end() + 2]
    if after[:1] == "/" or (after[:1] == ":" and after[1:].isdigit()):
        return True
    labels = name.lower().split(dot)
    return any(
        label in TOP_LEVEL_DOMAINS and (i > 1 or label not in _WORD_TLDS)
        for i, label in enumerate(labels[1:], 1)
    )


def has_link(text: str) -> bool:
    """Whether folded ``text`` holds a link (``URL``, each candidate checked by ``_is_link``)."""
    pos = 0
    while (match := URL.search(text, pos)) is not None:
        if _is_link(match):
            return True
        pos = match.start() + 1  # the name's other positions: no dot-written name starts there
    return False


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
# Orders to the host besides an injection ("SYSTEM:", "repeat it", "告诉大家"): a message that
# gives them is not answered first (brain/catalog.py: the turn is the guarded LLM's or the
# fallback's), and the host never says them back (brain/babble.py).
_ORDERS = re.compile(
    r"^\s*(?:system|assistant|admin|developer)\s*[:：]|\brepeat (?:it|this|after me)\b"
    r"|\b(?:say|tell (?:everyone|everybody|the viewers)) (?:that )?(?:the |it|this)"
    r"|开发者模式|快说|说出来|告诉大家",
    re.IGNORECASE,
)


def gives_orders(text: str) -> bool:
    """Whether viewer ``text`` reads as orders to the host (see ``_ORDERS``)."""
    folded = screen_fold(text)
    return bool(INJECTION.search(folded) or _ORDERS.search(folded))


# A figure ("lamp is 1 dollar", "九块九"): digits in any script, the currency table's signs,
# codes and English words, percentages, price words, and Chinese numerals with a money or count
# unit (a Chinese money word alone is no figure: "元" is common in names).
_MONEY_EN = alternation((*CODES, *(w for w in WORDS if w.isascii())))
FIGURE = re.compile(
    rf"\d|%|{alternation(SIGNS)}|\b(?:{_MONEY_EN}|cents?|price|free|off|sale)\b"
    r"|[零〇一二两三四五六七八九十百千万][零〇一二两三四五六七八九十百千万]*\s*(元|块|毛|角|折|件|个|美元)"
    r"|免费|包邮|价格|优惠|折扣|特价",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=4096)
def _squashed(product_name: str) -> str:
    """A catalog name folded and squashed (names are checked against every product's)."""
    return squash(screen_fold(product_name))


MAX_NAME_CHARS = 20
MAX_NAME_WORDS = 3


class Screen:
    """The rules, built once from the triage settings (see the module docstring)."""

    def __init__(self, banned_words: Iterable[str], drop_urls: bool = True) -> None:
        folded = [screen_fold(w) for w in banned_words if w.strip()]
        self.banned = sorted({w for w in folded if w}, key=len, reverse=True)
        self._banned_squashed = [(w, squash(w)) for w in self.banned if squash(w)]
        self.drop_urls = drop_urls

    @staticmethod
    def views(text: str) -> list[str]:
        """The folded text (first), and the folded text of anything hidden in it as base64.
        Every check takes them, so a caller folds a text once for all of them."""
        return [screen_fold(text), *(screen_fold(p) for p in decoded_payloads(text))]

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
        return any(has_link(view) for view in views)  # case-insensitive: folded is enough

    @staticmethod
    def has_figure(text: str, views: list[str] | None = None) -> bool:
        """A number, money sign or word, or a price word ("free", "off", "包邮") in ``text``."""
        views = views if views is not None else Screen.views(text)
        return any(FIGURE.search(view) for view in views)

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
        if self.has_figure(name, views):
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
