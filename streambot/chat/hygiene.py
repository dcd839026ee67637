"""Make a stranger's message safe to store: applied to every message at the edge, in ingest.

A JSON body may carry a lone surrogate escape (``"\\ud800"`` is valid JSON) that UTF-8, and so
SQLite, cannot hold; a platform may send the same. Such code points are replaced with U+FFFD,
per message, with a note for the log, so one bad message never fails its source. Secrets
pasted into chat are masked before they reach the store, as they are in the log.
"""

from __future__ import annotations

import re
import reprlib

from streambot.events import ChatMessage
from streambot.logs import redact

_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"
_MAX_META_DEPTH = 8  # platform details are shallow; deeper junk is dropped, not walked


_PREVIEW = reprlib.Repr()  # bounded in size and depth, whatever a stranger sends
_PREVIEW.maxstring = _PREVIEW.maxother = 200
_PREVIEW.maxlevel = 4


def preview(value: object) -> str:
    """A short repr of a stranger's decoded object (huge or deeply nested ones included)."""
    return _PREVIEW.repr(value)[:200]


def storable(text: str) -> str:
    """``text`` with every lone surrogate replaced, so it encodes as UTF-8."""
    return _SURROGATE.sub(REPLACEMENT, text)


def _clean_value(value: object, depth: int = 0) -> object:
    if isinstance(value, str):
        return storable(value)
    if depth >= _MAX_META_DEPTH:
        return None
    if isinstance(value, dict):
        return {storable(str(k)): _clean_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_value(v, depth + 1) for v in value]
    return value


def clean_message(msg: ChatMessage) -> list[str]:
    """Clean ``msg`` in place; return what was changed (empty when nothing was)."""
    notes = []
    for name in ("user", "text", "source", "currency", "user_id"):
        value = getattr(msg, name)
        if isinstance(value, str) and _SURROGATE.search(value):
            setattr(msg, name, storable(value))
            notes.append(f"lone surrogates in '{name}' replaced with U+FFFD")
    if msg.meta:
        msg.meta = _clean_value(msg.meta)  # type: ignore[assignment]
    masked = redact(msg.text)
    if masked != msg.text:
        msg.text = masked
        notes.append("a secret in the text was masked")
    return notes
