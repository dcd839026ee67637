"""Tiny language detection: the host speaks English and Chinese."""

from __future__ import annotations

from streambot.text import has_cjk


def detect_lang(text: str) -> str:
    """``"zh"`` when the text contains CJK ideographs, else ``"en"``."""
    return "zh" if has_cjk(text) else "en"
