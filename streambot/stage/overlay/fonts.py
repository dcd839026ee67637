"""The overlay's font: one that draws Chinese as well as Latin text, found on this machine.

Overlays show viewers' questions and product names in both languages, so the font must carry
CJK glyphs. Nothing is downloaded: the font comes from ``[overlay] font`` when given, else the
Noto Sans CJK SC that the ``mplfonts`` package (a dependency) ships in its wheel, else a
system Noto/Source Han/WenQuanYi font (Debian's ``fonts-noto-cjk``). Only when none of those
exists is Pillow's built-in Latin font used, and that is said once as a warning: Chinese text
would show as empty boxes.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

# The mplfonts wheel's file, relative to its package folder (found without importing the
# package: importing it would load matplotlib). Not mpl-font, which ships the same file but
# also a top-level ``tests`` package that shadows a project's own tests.
PACKAGED = ("mplfonts", "fonts/NotoSansCJKsc-Regular.otf")
SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch noto-fonts-cjk
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora
    "/usr/share/fonts/opentype/source-han-sans/SourceHanSans-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/System/Library/Fonts/PingFang.ttc",  # macOS
    "C:/Windows/Fonts/msyh.ttc",  # Windows: Microsoft YaHei
)
CJK_PROBE = "价格库存"  # glyphs every Simplified Chinese font has


class FontError(Exception):
    """The configured font cannot be used; the message names the file and the problem."""


def packaged_font() -> Path | None:
    """The Noto Sans CJK SC file inside the installed mplfonts package, if it is there."""
    package, relative = PACKAGED
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    return None


def find_font(configured: str = "") -> Path | None:
    """The font file overlays are drawn with: ``configured``, else the first one found."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise FontError(f"overlay.font: {configured!r} is not a file")
        return path
    packaged = packaged_font()
    if packaged is not None:
        return packaged
    return next((Path(p) for p in SYSTEM_FONTS if Path(p).is_file()), None)


class FontSet:
    """Fonts of one file at the sizes asked for (loading a 16 MB CJK font takes ~10 ms)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is None:
            log.warning(
                "overlay: no CJK font found; using Pillow's Latin font, so Chinese text "
                "shows as boxes. Install streambot with its dependencies (mplfonts ships "
                "Noto Sans CJK SC), Debian's fonts-noto-cjk, or set [overlay] font"
            )
        else:
            try:
                self.get(16)
            except OSError as exc:
                raise FontError(f"overlay.font: {path} cannot be read as a font: {exc}") from None
            if not self.draws(CJK_PROBE):
                log.warning("overlay: %s has no Chinese glyphs; Chinese text shows as boxes", path)

    @lru_cache(maxsize=32)  # noqa: B019 - a FontSet lives as long as the process
    def get(self, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        size = max(6, int(size))
        if self.path is None:
            return ImageFont.load_default(size)
        return ImageFont.truetype(str(self.path), size)

    def draws(self, text: str, size: int = 32) -> bool:
        """Whether every character of ``text`` has a glyph of its own in this font (not the
        font's "missing glyph" box, which all missing characters share)."""
        font = self.get(size)
        missing = _glyph(font, "\U0010fffd")  # a private-use code point no font draws
        return all(_glyph(font, ch) != missing for ch in text if not ch.isspace())


def _glyph(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, ch: str) -> bytes:
    left, top, right, bottom = font.getbbox(ch)
    image = Image.new("L", (max(1, int(right - left)), max(1, int(bottom - top))))
    ImageDraw.Draw(image).text((-left, -top), ch, font=font, fill=255)
    return image.tobytes() + bytes(str(image.size), "ascii")
