"""Tiny language detection: the host speaks English and Chinese."""

from __future__ import annotations

import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_lang(text: str) -> str:
    """``"zh"`` when the text contains CJK ideographs, else ``"en"``."""
    return "zh" if _CJK.search(text) else "en"
