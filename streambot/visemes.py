"""Visemes (mouth shapes) from espeak-ng phoneme mnemonics, aligned to video frames.

Loudness alone keeps the lips apart on a loud "m"; the phoneme track says when the lips must
close (p, b, m), touch the teeth (f, v), round (o, u, w) or spread (i, e). The mouth face
combines both: loudness sets how far the mouth opens, the viseme sets its shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

REST, CLOSED, LIP_TEETH, ROUND, SPREAD, OPEN = (
    "rest",
    "closed",
    "lip-teeth",
    "round",
    "spread",
    "open",
)
VISEMES = (REST, CLOSED, LIP_TEETH, ROUND, SPREAD, OPEN)

_STRESS_AND_TONE = re.compile(r"^[\'\",%=]+|[0-9]+$")


def viseme_of(phoneme: str) -> str:
    """Map one espeak phoneme mnemonic (English or Mandarin voices) to a viseme."""
    p = _STRESS_AND_TONE.sub("", phoneme)
    if not p or p.startswith("_") or p in (";", "|"):
        return REST
    head = p[0]
    if head in "pbm":
        return CLOSED
    if head in "fv":
        return LIP_TEETH
    if head in "wuoOU" or p in ("y", "y:", "Y"):
        return ROUND
    if head in "ieIjE":
        return SPREAD
    if head in "aA@V03&":
        return OPEN
    return OPEN if any(ch in "aA" for ch in p) else SPREAD if head in "sztdnlrSZTDxkgh" else OPEN


def frame_visemes(events: Sequence[tuple[float, str]], frames: int, fps: int) -> list[str]:
    """The viseme at the middle of each frame, from (start seconds, phoneme) events in order."""
    out: list[str] = []
    i, current = 0, REST
    for k in range(frames):
        middle = (k + 0.5) / fps
        while i < len(events) and events[i][0] <= middle:
            current = viseme_of(events[i][1])
            i += 1
        out.append(current)
    return out
