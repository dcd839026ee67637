"""Runs a sales script: which segment is next, when it is due, and the operator's commands.

The host asks the runner whenever it has nothing to answer. Questions always come first: the
script only speaks when the inbox is empty, so a question pauses it and the next segment
follows once chat is quiet again. A segment is done only when it was played to its end; one
interrupted by a question is said again (resuming where the script left off), one skipped by
the operator (``!skip``, ``!script next``) is not. Times are on the host's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from streambot.catalog import Catalog, LiveCatalog, as_live
from streambot.script.model import Script, ScriptLine, Segment, UnfilledField

log = logging.getLogger(__name__)


class ScriptRunner:
    def __init__(
        self,
        script: Script,
        default_quiet_s: float,
        catalog: Catalog | LiveCatalog,
        on_countdown: Callable[[float, str], None] | None = None,
    ) -> None:
        """``catalog``: where the lines' figures come from, read as it is at each line;
        ``on_countdown(deadline, text)``: a countdown segment started (the overlay shows it)."""
        self.script, self.default_quiet_s = script, default_quiet_s
        self.live = as_live(catalog)
        self.on_countdown = on_countdown
        self.position = 0
        self.paused = False
        self.loops = 0
        self.finished = False  # a script without loop ran its last segment
        self._said: dict[str, int] = {}  # segment id -> times played
        self._answers = 0  # answers since the last segment
        self._last_segment_end: float | None = None
        self._hold_until = 0.0  # a Q&A break: no segment before this
        # segment id -> why it was skipped, until it is said again (the panel shows these;
        # each is logged once, not at every pass of a looping script)
        self.skipped: dict[str, str] = {}
        self._unsaid = 0  # segments skipped in a row

    @property
    def current(self) -> Segment:
        return self.script.segment[self.position]

    # -- when ---------------------------------------------------------------------------------
    def due_in(self, now: float, last_activity: float) -> float | None:
        """Seconds until the current segment is due (<= 0: now), given when chat or the host
        was last active; None while paused, finished, or waiting for answers."""
        if self.paused or self.finished:
            return None
        segment = self.current
        if segment.trigger == "answers":
            if self._answers < segment.answers:
                return None
            due = now
        elif segment.trigger == "time":
            base = self._last_segment_end if self._last_segment_end is not None else last_activity
            due = base + segment.after_s
        else:
            due = last_activity + (segment.quiet_s or self.default_quiet_s)
        return max(due, self._hold_until) - now

    def answered(self) -> None:
        """The host answered a question (the ``answers`` trigger counts these)."""
        self._answers += 1

    # -- what ---------------------------------------------------------------------------------
    def line(self, lang: str, pitch_topic: Callable[[], str]) -> ScriptLine:
        """The current segment's words in ``lang`` (or the language it is written in), with
        today's figures; a pitch segment's product is ``pitch_topic()`` when it names none."""
        segment = self.current
        product_id = segment.product or (pitch_topic() if segment.is_pitch else None)
        product = self.live.current.by_id(segment.product) if segment.product else None
        text, skipped = "", ""
        if segment.product and product is None:  # removed from the catalog since the load
            skipped = f"product {segment.product!r} is no longer in the catalog"
        elif not segment.is_pitch:
            text, lang = segment.words(lang)
            try:
                text = segment.fill(text, product, lang)
            except UnfilledField as exc:
                text, skipped = "", str(exc)
        said = self._said.get(segment.id, 0)
        line = ScriptLine(segment, text, lang, product_id, said, skipped=skipped)
        if skipped:
            if self.skipped.get(segment.id) != skipped:
                log.warning("script segment %r skipped: %s", segment.id, skipped)
            self.skipped[segment.id] = skipped
        else:
            self.skipped.pop(segment.id, None)
        if segment.is_pitch:
            line.spoken_as = "written"  # by the brain, from the catalog
        return line

    def started(self, line: ScriptLine, now: float) -> None:
        """The line's turn starts: a countdown segment starts its deal countdown."""
        segment = line.segment
        if segment.kind == "countdown" and self.on_countdown is not None:
            self.on_countdown(now + segment.duration_s, segment.countdown_text)

    def ended(self, line: ScriptLine, played: bool, now: float, skipped: bool = False) -> None:
        """The line's turn ended: played (or skipped) moves on, anything else (interrupted,
        failed) says it again."""
        if not played and not skipped:
            return
        segment = line.segment
        self._unsaid = self._unsaid + 1 if line.skipped else 0
        if self._unsaid >= len(self.script.segment):  # nothing can be said: wait, do not spin
            self._hold_until = now + self.default_quiet_s
        if segment.id == self.current.id:  # not moved by a command meanwhile
            if not line.skipped:
                self._said[segment.id] = self._said.get(segment.id, 0) + 1
            if segment.kind == "qa" and not skipped:
                self._hold_until = now + segment.duration_s
            self._advance()
        self._answers = 0
        self._last_segment_end = now

    def _advance(self) -> None:
        if self.position + 1 < len(self.script.segment):
            self.position += 1
        elif self.script.loop:
            self.position, self.loops = 0, self.loops + 1
        else:
            self.finished = True

    # -- the operator -------------------------------------------------------------------------
    def command(self, args: str) -> str | None:
        """``!script pause|resume|next|goto <segment>``: None when done, else why not."""
        word, _, rest = args.strip().partition(" ")
        if word == "pause":
            self.paused = True
        elif word == "resume":
            self.paused = self.finished = False
            self._hold_until = 0.0
        elif word == "next":
            self._hold_until = 0.0
            self.finished = False
            self._advance()
        elif word == "goto":
            index = self.script.index_of(rest.strip())
            if index is None:
                ids = ", ".join(s.id for s in self.script.segment)
                return f"no segment {rest.strip()!r} in the script (segments: {ids})"
            self.position, self.finished, self._hold_until = index, False, 0.0
        else:
            return f"unknown script command {word!r}: use pause, resume, next or goto <segment>"
        log.info(
            "script: %s -> segment %r%s",
            args.strip(),
            self.current.id,
            " (paused)" if self.paused else "",
        )
        return None
