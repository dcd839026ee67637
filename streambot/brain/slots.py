"""Figures as slots: the LLM writes ``{thermo.price}`` and the host puts in the catalog's figure.

With ``[brain.llm] facts = "slots"`` the system prompt shows each product's figures as slots
(``brain/prompt.py``), so a figure is never typed by the model: ``SlotFillingBrain`` fills
every ``{<product id>.<field>}`` in the reply's stream with what the catalog says now, in the
turn's language (``catalog.product_fields``, the same values a sales script's ``{price}``
gets). A slot that names no product or field, or one the catalog has no value for, is left as
written: the reply guard refuses braces (prompt scaffolding), so it is never spoken.

The stream is filled as it arrives: text after an unclosed ``{`` is held back until the
brace closes (or it is clearly no slot: too long, or a character no slot has).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncGenerator

from streambot.brain.base import Brain, continues_replies
from streambot.catalog import FIELDS, Catalog, LiveCatalog, as_live, product_fields
from streambot.turn import Turn

_SLOT = re.compile(r"\{\s*([A-Za-z0-9_.-]+?)\s*[.:]\s*([a-z_]+)\s*\}")
_NOT_SLOT = re.compile(r"[^A-Za-z0-9_.:\s-]")  # after "{": no slot has this character
MAX_SLOT_CHARS = 80  # an id is at most 64 characters; longer is no slot


def slot(product_id: str, field: str) -> str:
    """How the prompt writes a slot: ``{thermo.price}``."""
    return "{" + f"{product_id}.{field}" + "}"


class SlotFiller:
    """Fills the slots of one reply's deltas; ``feed`` each delta, then ``flush``."""

    def __init__(self, catalog: Catalog, lang: str) -> None:
        self.catalog, self.lang = catalog, lang
        self._held = ""

    def _fill(self, match: re.Match[str]) -> str:
        product = self.catalog.by_id(match.group(1))
        field = match.group(2)
        if product is None or field not in FIELDS:
            return match.group(0)
        return product_fields(product, self.lang)[field] or match.group(0)

    def feed(self, delta: str) -> str:
        """The text ready to say: ``delta`` after what was held, slots filled, less an open
        slot at its end (held until it closes)."""
        text = self._held + delta
        cut = text.rfind("{")
        if cut >= 0 and "}" not in text[cut:]:
            tail = text[cut + 1 :]
            if len(tail) < MAX_SLOT_CHARS and not _NOT_SLOT.search(tail):
                self._held = text[cut:]
                return _SLOT.sub(self._fill, text[:cut])
        self._held = ""
        return _SLOT.sub(self._fill, text)

    def flush(self) -> str:
        """What is held at the end of the reply (an unclosed brace, as written)."""
        held, self._held = self._held, ""
        return held


class SlotFillingBrain:
    """An LLM brain whose ``{id.field}`` slots are filled from the live catalog."""

    def __init__(self, inner: Brain, catalog: Catalog | LiveCatalog) -> None:
        self.inner, self.live = inner, as_live(catalog)
        self._prefill = continues_replies(inner)

    def pitch_topics(self) -> list[str]:
        return self.inner.pitch_topics()

    async def reply(self, turn: Turn, prefill: str = "") -> AsyncGenerator[str, None]:
        filler = SlotFiller(self.live.current, turn.lang)
        stream = (
            self.inner.reply(turn, prefill=prefill)  # type: ignore[call-arg]
            if prefill and self._prefill
            else self.inner.reply(turn)
        )
        async with contextlib.aclosing(stream):  # closed with this reply: the model stops
            async for delta in stream:
                if text := filler.feed(delta):
                    yield text
        if text := filler.flush():
            yield text
