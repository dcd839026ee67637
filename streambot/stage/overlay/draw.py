"""Draws the overlays as RGBA images with Pillow: the AI label, the caption, the product card
and the deal countdown. Sizes follow the frame's height, so a 1080p stream gets the same
layout as a 720p one. Drawing takes milliseconds, so it runs off the presenter's clock
(overlay/director.py); only the finished layers are blended per frame.
"""

from __future__ import annotations

import bisect
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from PIL import Image, ImageDraw, ImageFont

from streambot.catalog import Product, format_price
from streambot.stage.overlay.fonts import FontSet
from streambot.text import normalise  # a stranger's text as shown: no bidi or hidden chars

log = logging.getLogger(__name__)

Font: TypeAlias = ImageFont.FreeTypeFont | ImageFont.ImageFont
WHITE = (255, 255, 255, 255)
SOFT = (225, 228, 235, 255)
PRICE = (255, 214, 64, 255)
SOLD_OUT = (255, 110, 110, 255)
PANEL = (16, 18, 24, 200)


def _breaks_after(ch: str) -> bool:
    """A line may break after a space and around any wide (CJK) character."""
    return ch == " " or unicodedata.east_asian_width(ch) in ("W", "F")


def wrap(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """``text`` broken into at most ``max_lines`` lines no wider than ``max_width`` (at
    spaces, or between CJK characters); the last line ends with "…" if text was left out."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines:
        if font.getlength(rest) <= max_width:
            lines.append(rest)
            rest = ""
            break
        # The longest prefix that fits, found by bisection (a prefix is never narrower than a
        # shorter one): a few measurements instead of one per character, as this thread's
        # Python holds the GIL that the presenter's clock waits for.
        cut = bisect.bisect_right(
            range(1, len(rest) + 1), max_width, key=lambda i: font.getlength(rest[:i])
        )
        last_break = next(
            (
                i
                for i in range(cut, 0, -1)
                if _breaks_after(rest[i - 1]) or (i < len(rest) and _breaks_after(rest[i]))
            ),
            0,
        )
        cut = last_break or max(cut, 1)  # a word wider than the line is cut where it must be
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest and lines:
        last = lines[-1]
        while last and font.getlength(last + "…") > max_width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return lines


def _line_height(font: Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    _, top, _, bottom = font.getbbox("Ag")  # a bitmap font has no metrics
    return int(bottom - top)


@dataclass
class Painter:
    """Draws overlays for frames of ``height`` pixels (``width`` bounds the caption)."""

    fonts: FontSet
    width: int
    height: int

    def px(self, share: float) -> int:
        return max(1, round(self.height * share))

    def _panel(self, size: tuple[int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        image = Image.new("RGBA", size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        draw.rounded_rectangle((0, 0, size[0] - 1, size[1] - 1), self.px(0.012), fill=PANEL)
        return image, draw

    def _text_block(
        self, lines: list[tuple[str, Font, tuple[int, ...]]], width: int | None = None
    ) -> Image.Image:
        pad, gap = self.px(0.014), self.px(0.004)
        inner = width - 2 * pad if width else max(round(f.getlength(t)) for t, f, _ in lines)
        heights = [_line_height(f) for _, f, _ in lines]
        size = (inner + 2 * pad, sum(heights) + gap * (len(lines) - 1) + 2 * pad)
        image, draw = self._panel(size)
        y = pad
        for (text, font, colour), h in zip(lines, heights, strict=True):
            draw.text((pad, y), text, font=font, fill=colour)
            y += h + gap
        return image

    def label(self, text: str) -> Image.Image | None:
        text = normalise(text)
        if not text:
            return None
        return self._text_block([(text, self.fonts.get(self.px(0.03)), WHITE)])

    def caption(self, text: str) -> Image.Image | None:
        text = normalise(text)
        if not text:
            return None
        font = self.fonts.get(self.px(0.042))
        pad = self.px(0.014)
        max_width = round(self.width * 0.86) - 2 * pad
        lines = wrap(text, font, max_width, max_lines=2)
        return self._text_block([(line, font, WHITE) for line in lines])

    def countdown(self, text: str) -> Image.Image | None:
        text = normalise(text)
        if not text:
            return None
        return self._text_block([(text, self.fonts.get(self.px(0.04)), PRICE)])

    def card(self, product: Product, lang: str, picture: Image.Image | None) -> Image.Image:
        """The product's card: picture, name, price, stock and shipping, in ``lang``."""
        width = self.px(0.42)
        pad = self.px(0.014)
        inner = width - 2 * pad
        zh = lang == "zh"
        name_font, price_font = self.fonts.get(self.px(0.036)), self.fonts.get(self.px(0.058))
        small = self.fonts.get(self.px(0.027))
        lines: list[tuple[str, Font, tuple[int, ...]]] = []
        name = normalise(product.name_zh if zh else product.name)
        lines += [(line, name_font, WHITE) for line in wrap(name, name_font, inner, 2)]
        lines.append((format_price(product, lang), price_font, PRICE))
        if product.stock > 0:
            lines.append(
                ((f"库存 {product.stock}" if zh else f"In stock: {product.stock}"), small, SOFT)
            )
        else:
            restock = normalise(product.restock_zh if zh else product.restock)
            sold = "已售罄" if zh else "Sold out"
            lines.append((f"{sold} · {restock}" if restock else sold, small, SOLD_OUT))
        shipping = normalise(product.shipping_zh if zh else product.shipping)
        if shipping:
            shipping = f"发货：{shipping}" if zh else f"Shipping: {shipping}"
            lines += [(line, small, SOFT) for line in wrap(shipping, small, inner, 2)]
        text = self._text_block(lines, width)
        if picture is None:
            return text
        thumb = picture.convert("RGBA")
        thumb.thumbnail((inner, round(inner * 0.75)))
        card = Image.new("RGBA", (width, text.height + thumb.height + pad), (0, 0, 0, 0))
        card.paste(self._panel((width, card.height))[0], (0, 0))
        card.alpha_composite(thumb, ((width - thumb.width) // 2, pad))
        card.alpha_composite(text, (0, thumb.height + pad))
        return card


class PictureCache:
    """Product pictures, loaded once per file version; a missing or broken file is said once
    and the card is drawn without it."""

    def __init__(self) -> None:
        self._pictures: dict[str, tuple[int, Image.Image]] = {}
        self._warned: set[str] = set()

    def get(self, path: str) -> Image.Image | None:
        if not path:
            return None
        try:
            stamp = Path(path).stat().st_mtime_ns
            cached = self._pictures.get(path)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            with Image.open(path) as image:
                picture = image.convert("RGBA")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("overlay: product picture %s cannot be shown: %s", path, exc)
            return None
        self._pictures[path] = (stamp, picture)
        return picture
