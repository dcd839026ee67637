"""Streaming sentence splitter for English and Chinese.

The voice can start as soon as something is speakable, so the first clause of a reply is
released at its first comma-like break; later text goes out a whole sentence at a time
(fewer, more natural breaks). A full stop between digits ("$39.99") or a comma inside a number
("1,299") is not a break; a line break always is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from streambot.text import has_cjk

# always end a sentence; a line break too: a model's new line is a new item (a real 0.5B ran a
# whole catalog entry on after a price with no stop but line breaks)
_HARD_ENDS = set("。！？!?…；;\n")
_SOFT_END = "."  # ends a sentence only when followed by a space (not "39.99", "v2.1")
_CLAUSE_BREAKS = set("，、,：:")
_CLOSERS = set("\"'”’)）」』]}》")
SENTENCE_ENDS = frozenset(_HARD_ENDS | {_SOFT_END})  # the one set of sentence ends
_CLAUSE_END = re.compile(
    "[" + re.escape("".join(sorted(_HARD_ENDS | _CLAUSE_BREAKS))) + r"]+|\.(?=\s|$)"
)


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends where the splitter ends a sentence (closing quotes and brackets
    looked through)."""
    stripped = text.rstrip().rstrip("".join(_CLOSERS))
    return bool(stripped) and stripped[-1] in SENTENCE_ENDS


def split_clauses(text: str) -> list[str]:
    """``text``'s clauses: its pieces between sentence ends and clause breaks, as the
    splitter knows them (a "." ends one only before a space), stripped, empty ones left out."""
    return [c.strip() for c in _CLAUSE_END.split(text) if c.strip()]


def closed(text: str) -> str:
    """``text`` ending as a sentence does: a clause break it was cut at ("目前有42个磨豆机，")
    becomes a full stop in its script ("。" after CJK, else "."); text that ends a sentence, or
    is empty, is as it was."""
    body = text.rstrip()
    if not body or ends_sentence(body):
        return body
    body = body.rstrip("".join(_CLAUSE_BREAKS)).rstrip()
    if not body:
        return body
    return body + ("。" if has_cjk(body[-1]) or body[-1] in "）」』》" else ".")


class SentenceSplitter:
    def __init__(
        self,
        first_clause_min_chars: int = 8,
        max_chars: int = 220,
        holds_first_clause: Callable[[str], bool] | None = None,
    ) -> None:
        """``holds_first_clause``: a first clause it is true of is not released early but
        with its sentence (the output guard holds an apology: what follows is often refused)."""
        self._buffer = ""
        self._released_any = False
        self._first_clause_min = first_clause_min_chars
        self._max_chars = max_chars
        self._holds = holds_first_clause

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; return the chunks that are now complete."""
        self._buffer += delta
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            chunk, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if chunk:
                out.append(chunk)
                self._released_any = True
        return out

    def flush(self) -> list[str]:
        """End of stream: whatever is left is the last sentence."""
        chunk, self._buffer = self._buffer.strip(), ""
        return [chunk] if chunk else []

    def _find_cut(self) -> int | None:
        text = self._buffer
        for i, ch in enumerate(text):
            nxt = text[i + 1] if i + 1 < len(text) else None
            if ch in _HARD_ENDS:
                return self._after_closers(i + 1)
            if ch == _SOFT_END:
                if nxt is None:
                    return None  # cannot tell "3." from "3.5" yet
                if nxt.isspace() or nxt in _CLOSERS:
                    return self._after_closers(i + 1)
            if not self._released_any and ch in _CLAUSE_BREAKS:
                if ch in ",:" and (nxt is None or nxt.isdigit()):
                    continue  # "1,299" or not yet known
                clause = text[:i].strip()
                if _weight(clause) >= self._first_clause_min and not (
                    self._holds is not None and self._holds(clause)
                ):
                    return i + 1
        if len(text) > self._max_chars:
            space = text.rfind(" ", 0, self._max_chars)
            return space + 1 if space > 0 else self._max_chars
        return None

    def _after_closers(self, index: int) -> int:
        while index < len(self._buffer) and self._buffer[index] in _CLOSERS:
            index += 1
        return index


def _weight(text: str) -> int:
    """Length in Latin-letter units: a CJK character carries about two letters' worth of speech."""
    return sum(2 if ord(ch) >= 0x2E80 else 1 for ch in text)


def split_sentences(text: str, early_first_clause: bool = True) -> list[str]:
    """Split finished text into speakable sentences (the first clause early, as when streaming)."""
    splitter = SentenceSplitter(first_clause_min_chars=8 if early_first_clause else 10**9)
    return splitter.feed(text) + splitter.flush()
