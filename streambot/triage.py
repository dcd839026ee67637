"""Triage v1: which chat messages the host answers, in which order, and why the rest are not.

Every rule returns a reason that is logged and stored with the message. Per-user state lives
in bounded LRU maps, so a flood of new user names cannot grow memory without limit.
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict, deque

from streambot.catalog import Catalog, LiveCatalog, as_live
from streambot.config import TriageConfig
from streambot.events import ChatMessage, Decision, Kind, Priority
from streambot.intents import detect_intents, is_greeting
from streambot.lang import detect_lang
from streambot.screening import Screen

_QUESTION_EN = re.compile(
    r"\?|^\s*(how|what|when|where|which|who|why|is|are|do|does|can|could|will|would|any)\b",
    re.IGNORECASE,
)
_QUESTION_ZH = re.compile(r"[？?]|吗|呢|多少|几|什么|怎么|哪|有没有|能不能|是不是")


def printable_ratio(text: str) -> float:
    if not text or text.isprintable():
        return 1.0
    ok = sum(1 for ch in text if ch.isspace() or unicodedata.category(ch)[0] not in "C")
    return ok / len(text)


def is_question(text: str, lang: str) -> bool:
    pattern = _QUESTION_ZH if lang == "zh" else _QUESTION_EN
    return pattern.search(text) is not None


class _BoundedLru(OrderedDict):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def touch(self, key, default):
        if key in self:
            self.move_to_end(key)
        else:
            self[key] = default
            while len(self) > self.capacity:
                self.popitem(last=False)
        return self[key]

    def put(self, key, value):
        """Set ``key`` as the most recent entry, evicting the least recent past capacity."""
        self.touch(key, value)
        self[key] = value


class Triage:
    def __init__(self, config: TriageConfig, catalog: Catalog | LiveCatalog | None = None) -> None:
        """``catalog``: product names in questions are matched against it, and kept out of
        spoken names; a live one is read for each message, so an edit counts at once."""
        self._config = config
        self._live = as_live(catalog) if catalog is not None else None
        self._catalog: Catalog | None = None  # the catalog the names below were taken from
        self._product_names: list[str] = []
        self.screen = Screen(config.banned_words, config.drop_urls)
        self._recent_texts = _BoundedLru(config.max_users_tracked)  # (user, text) -> last seen
        self._user_times = _BoundedLru(config.max_users_tracked)  # user -> deque of instants
        self._greeted = _BoundedLru(config.max_users_tracked)  # user -> when greeted
        self._names = _BoundedLru(4096)  # user -> spoken name (names repeat; screening is dear)

    def _follow_catalog(self) -> None:
        """Read the catalog (which checks its file); if it changed, take its names."""
        catalog = self._live.current if self._live is not None else None
        if catalog is not self._catalog:
            self._catalog = catalog
            self._product_names = catalog.names() if catalog is not None else []
            self._names.clear()  # a new product name may now be in someone's name

    def spoken_name(self, msg: ChatMessage) -> str | None:
        """The viewer's name as the host may say it, or None ("friend") when it fails the
        name rules: no banned word, link, figure, instruction or product name."""
        self._follow_catalog()
        return self._spoken_name(msg)

    def _spoken_name(self, msg: ChatMessage) -> str | None:
        if msg.user in self._names:
            return self._names[msg.user]
        name = self.screen.speakable_name(msg.user, self._product_names)
        self._names.put(msg.user, name)
        return name

    def decide(self, msg: ChatMessage, now: float) -> Decision:
        """Classify one message at stream time ``now`` (seconds on the pipeline clock)."""
        cfg = self._config
        if msg.malformed:
            return Decision(False, f"malformed: {msg.malformed}")
        self._follow_catalog()  # the one read of the catalog for this message
        msg.spoken_name = self._spoken_name(msg)
        event = self._platform_event(msg)
        if event is not None:
            return event
        text = msg.text
        if not text.strip():
            return Decision(False, "empty message")
        if "\x00" in text or printable_ratio(text) < 0.85:
            return Decision(False, "binary junk: mostly unprintable characters")
        if len(text) > cfg.max_chars:
            return Decision(False, f"too long: {len(text)} characters (limit {cfg.max_chars})")
        if msg.kind == Kind.COMMAND:
            # The operator's own words are said as typed, but never a banned word.
            if self.screen.banned_word(text) is not None:
                return Decision(False, "operator command: banned word")
            return Decision(True, "operator command", Priority.OPERATOR)
        views = self.screen.views(text)
        reason = self.screen.reject_reason(text, views)
        if reason is not None:
            return Decision(False, reason)
        key = (msg.user, views[0])  # the folded text
        last = self._recent_texts.get(key)
        self._recent_texts.put(key, now)
        if last is not None and now - last < cfg.dedupe_window_s:
            return Decision(False, f"duplicate: same message {now - last:.1f}s ago")
        times: deque = self._user_times.touch(msg.user, deque())
        while times and now - times[0] >= cfg.rate_limit_window_s:
            times.popleft()
        if len(times) >= cfg.rate_limit_count and msg.kind not in (Kind.SUPERCHAT, Kind.CHEER):
            return Decision(
                False,
                f"rate limited: more than {cfg.rate_limit_count} messages "
                f"in {cfg.rate_limit_window_s:g}s",
            )
        times.append(now)
        return self._classify(msg, now)

    def _platform_event(self, msg: ChatMessage) -> Decision | None:
        """Gifts, memberships, raids, room interactions and the co-host's voice: decided by
        what they are, not by their text (which may be empty or a gift name)."""
        if msg.kind in (Kind.GIFT, Kind.MEMBERSHIP, Kind.RAID):
            if msg.kind == Kind.GIFT and not msg.amount:
                return Decision(False, "free gift: counted, not thanked one by one")
            return Decision(True, f"{msg.kind}: thanked in a batch", Priority.THANKS, batch=True)
        if msg.kind == Kind.INTERACTION:
            action = msg.meta.get("action", "interaction")
            return Decision(False, f"room {action}: counted, not answered")
        if msg.kind == Kind.CHEER and not msg.text.strip():
            return Decision(True, "cheer: thanked in a batch", Priority.THANKS, batch=True)
        if msg.kind == Kind.VOICE:
            if not msg.text.strip():
                return Decision(False, "empty transcription")
            return Decision(True, "co-host on the microphone", Priority.COHOST)
        return None

    def _classify(self, msg: ChatMessage, now: float) -> Decision:
        lang = detect_lang(msg.text)
        if msg.kind in (Kind.SUPERCHAT, Kind.CHEER):
            return Decision(True, "paid message", Priority.PAID)
        if (
            is_question(msg.text, lang)
            or detect_intents(msg.text, lang)
            or (self._catalog is not None and self._catalog.find(msg.text))
        ):
            return Decision(True, "question", Priority.QUESTION)
        if is_greeting(msg.text, lang):
            greeted = self._greeted.get(msg.user)
            if greeted is not None and now - greeted < 300:
                return Decision(False, "already greeted recently")
            self._greeted.put(msg.user, now)
            return Decision(True, "greeting", Priority.CHAT)
        return Decision(False, "chatter: not a question or greeting")
