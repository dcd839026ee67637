"""What a caption shows of a viewer's question: OBS's caption and the overlay's are the same.

A caption puts a stranger's words on the broadcast beside the host, so they pass the rules of
what the host says: no link (``screening.URL``, the one link rule), no figure
(``screening.FIGURE``, the name rule's: "the lamp is 1 dollar today, is that right?" would put
a false price on screen, "FREE with code X" a false deal), and nothing the output guard would
not say against the catalog as it is now (an availability claim it contradicts, a discount,
instructions). A question that fails shows only its asker's name, when that passed the name
rules (``ChatMessage.spoken_name``); the host still answers it aloud, with the catalog's
figures.
"""

from __future__ import annotations

from streambot.brain.guard import ReplyGuard
from streambot.catalog import Catalog, LiveCatalog, as_live
from streambot.sentences import split_sentences
from streambot.turn import Turn, TurnKind

MAX_CAPTION = 120


class Captions:
    def __init__(self, catalog: Catalog | LiveCatalog) -> None:
        """``catalog``: what a question's claims are checked against (read at each caption)."""
        self.live = as_live(catalog)
        self.guard = ReplyGuard(self.live.current)

    def may_show(self, text: str, lang: str) -> bool:
        """Whether a viewer's ``text`` may be drawn on the broadcast."""
        screen = self.guard.screen
        views = screen.views(text)  # folded once; the whole text, as a sentence split may cut
        if screen.has_url(text, views) or screen.has_figure(text, views):  # a link's dots
            return False
        catalog = self.guard.catalog = self.live.current
        products = catalog.find(text)
        for sentence in split_sentences(text, early_first_clause=False):
            verdict = self.guard.check(sentence, products, lang)
            if not verdict.ok or verdict.text != sentence:  # a corrected claim was a false one
                return False
        return True

    def caption(self, turn: Turn) -> str:
        """An answer's caption: "name: question", the name or the question alone when only
        one may be shown; "" for other turns."""
        if turn.kind != TurnKind.ANSWER or turn.message is None:
            return ""
        name = turn.message.spoken_name or ""  # a name that failed the name rules is not shown
        text = " ".join(turn.message.text.split())
        if not self.may_show(text, turn.lang):
            return name
        text = text if len(text) <= MAX_CAPTION else text[: MAX_CAPTION - 1] + "…"
        return f"{name}: {text}" if name else text
