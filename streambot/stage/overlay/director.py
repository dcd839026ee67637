"""Follows the host's turns and keeps the overlays true: the caption and product card of the
turn being said, the product's current catalog figures, the deal countdown and the AI label.

Drawing runs in a worker thread and the finished layer is swapped in on the event loop, so the
presenter's clock never waits for Pillow; a slot's older drawing that finishes after a newer
one is dropped. The card is redrawn when the catalog's figures for its product change (read
every ``POLL_S``: an edited price is on the card within a quarter second), the countdown once
a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime

from PIL import Image

from streambot.catalog import LiveCatalog, Product
from streambot.clock import Clock
from streambot.config import OverlayConfig
from streambot.stage.caption import Captions
from streambot.stage.director import product_for
from streambot.stage.overlay.compositor import CAPTION, Compositor
from streambot.stage.overlay.draw import Painter, PictureCache
from streambot.stage.overlay.fonts import FontSet, find_font
from streambot.stage.overlay.layer import Layer
from streambot.tasks import Background
from streambot.turn import Turn, TurnObserver

log = logging.getLogger(__name__)
POLL_S = 0.25


def build_compositor(config: OverlayConfig, width: int, height: int) -> Compositor:
    corners = {
        "label": config.label.corner,
        "countdown": config.countdown.corner,
        "card": config.card.corner,
    }
    return Compositor(width, height, corners)


def format_left(seconds: float) -> str:
    """Time left as m:ss, or h:mm:ss from an hour up (whole seconds, rounded up)."""
    total = max(0, math.ceil(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class OverlayDirector(TurnObserver):
    def __init__(
        self,
        config: OverlayConfig,
        compositor: Compositor,
        catalog: LiveCatalog,
        clock: Clock,
        fonts: FontSet | None = None,
    ) -> None:
        self.config, self.compositor, self.live, self.clock = config, compositor, catalog, clock
        self.captions = Captions(catalog)
        self.fonts = fonts or FontSet(find_font(config.font))
        self.painter = Painter(self.fonts, compositor.width, compositor.height)
        self.pictures = PictureCache()
        self._generation: dict[str, int] = {}
        self.background = Background("overlay drawing")
        self._card: tuple[Product, str] | None = None  # (product as drawn, language)
        self._deadline: float | None = None  # clock time the countdown ends at
        self._countdown_text = config.countdown.text
        self._countdown_shown: str | None = None
        if config.label.enabled:  # drawn now, so the very first frame carries it
            self.compositor.show("label", self.painter.label(config.label.text))
        if config.countdown.ends_at:
            ends = datetime.fromisoformat(config.countdown.ends_at).timestamp()
            self.countdown_until(clock.now() + ends - time.time())

    # -- turns ------------------------------------------------------------------------------
    def turn_started(self, turn: Turn) -> None:
        if self.config.caption.enabled:
            caption = self.captions.caption(turn)
            self._draw(CAPTION, lambda: self.painter.caption(caption))
        if self.config.card.enabled:
            product = product_for(turn, self.live.current)
            self._show_card(product, turn.lang)

    def turn_ended(self, turn: Turn) -> None:
        if self.config.caption.enabled:
            self._draw(CAPTION, lambda: None)
        if self.config.card.enabled:
            self._show_card(None, turn.lang)

    # -- the deal countdown ---------------------------------------------------------------
    def countdown_until(self, deadline: float | None, text: str | None = None) -> None:
        """Count down to ``deadline`` (clock time; None: stop); ``text`` with ``{time}``."""
        self._deadline = deadline
        self._countdown_text = text or self.config.countdown.text
        self._countdown_shown = None
        self._tick_countdown()

    def _tick_countdown(self) -> None:
        if self._deadline is None or self.clock.now() >= self._deadline:
            if self._countdown_shown is not None or self._deadline is not None:
                self._deadline, self._countdown_shown = None, None
                self._draw("countdown", lambda: None)
            return
        left = format_left(self._deadline - self.clock.now())
        text = self._countdown_text.replace("{time}", left)
        if text != self._countdown_shown:
            self._countdown_shown = text
            self._draw("countdown", lambda: self.painter.countdown(text))

    # -- the card ---------------------------------------------------------------------------
    def _show_card(self, product: Product | None, lang: str) -> None:
        self._card = None if product is None else (product, lang)
        if product is None:
            self._draw("card", lambda: None)
            return
        pictures, painter = self.pictures, self.painter  # the picture is read off the loop too
        self._draw("card", lambda: painter.card(product, lang, pictures.get(product.image)))

    def _refresh_card(self) -> None:
        """Redraw the card if the catalog's figures for its product changed (or it is gone)."""
        if self._card is None:
            return
        shown, lang = self._card
        now = self.live.current.by_id(shown.id)
        if now != shown:
            self._show_card(now, lang)

    # -- drawing off the loop -------------------------------------------------------------
    def _draw(self, slot: str, paint: Callable[[], Image.Image | None]) -> None:
        generation = self._generation[slot] = self._generation.get(slot, 0) + 1

        def render() -> tuple[Image.Image | None, Layer | None]:
            image = paint()
            return image, (Layer.from_image(image, 0, 0) if image is not None else None)

        async def draw() -> None:
            try:
                image, layer = await asyncio.to_thread(render)
            except Exception:  # a bad picture or font must never reach the stream
                log.exception("overlay: drawing the %s failed", slot)
                return
            if self._generation.get(slot) == generation:  # not overtaken by a newer drawing
                self.compositor.show(slot, image, layer)

        self.background.spawn(draw(), name=f"overlay-{slot}")

    async def settle(self) -> None:
        """Wait until every drawing asked for so far is shown (tests, tools)."""
        await self.background.settle()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the catalog and the countdown until ``stop``."""
        while not stop.is_set():
            try:
                self._refresh_card()
                self._tick_countdown()
            except Exception:
                log.exception("overlay: refreshing failed; trying again")
            await self.clock.sleep(POLL_S)
