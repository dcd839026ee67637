"""Gift bursts are thanked in one breath: gifts, memberships and raids that arrive close
together are gathered for a short window and become one thanks message for the host.

A live-selling room can get dozens of gifts in a second; thanking each separately would keep
the host from answering questions for minutes. The batch is bounded: past ``max_names`` givers
the thanks says "and N more".
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from streambot.events import ChatMessage, Kind
from streambot.lang import detect_lang


@dataclass
class _Giver:
    user: str
    items: OrderedDict[str, int] = field(default_factory=OrderedDict)  # what -> how many


def _describe(message: ChatMessage, zh: bool) -> str:
    if message.kind == Kind.MEMBERSHIP:
        return message.meta.get("level_name") or ("舰长" if zh else "membership")
    if message.kind == Kind.RAID:
        viewers = max(1, message.count)
        return f"带着{viewers}位观众的突袭" if zh else f"raid with {viewers} viewers"
    return str(message.meta.get("gift_name") or ("礼物" if zh else "gift"))


class GiftBatcher:
    def __init__(self, window_s: float = 3.0, max_names: int = 4, max_pending: int = 2000) -> None:
        self.window_s, self.max_names, self.max_pending = window_s, max_names, max_pending
        self.pending: list[ChatMessage] = []
        self.overflow = 0  # gifts past max_pending: thanked as "and N more", not itemised
        self._opened_at: float | None = None

    def add(self, message: ChatMessage, now: float) -> bool:
        """Hold a gift for the next thanks; False when the batch is full (the gift is still
        counted in the thanks' "and N more", it just is not itemised)."""
        if self._opened_at is None:
            self._opened_at = now
        if len(self.pending) >= self.max_pending:
            self.overflow += 1
            return False
        self.pending.append(message)
        return True

    def due(self, now: float) -> bool:
        return self._opened_at is not None and now - self._opened_at >= self.window_s

    def flush(self) -> ChatMessage | None:
        """The thanks message for everything held (None if nothing is held)."""
        if not self.pending:
            self._opened_at = None
            return None
        held, self.pending, self._opened_at = self.pending, [], None
        extra, self.overflow = self.overflow, 0
        sample = " ".join(str(m.meta.get("gift_name", "")) + m.user for m in held[:20])
        zh = detect_lang(sample) == "zh" or any(m.source == "bilibili" for m in held)
        text = thanks_text(held, zh, self.max_names, extra)
        batch = ChatMessage("gifts", "gifts", text, Kind.GIFT, count=len(held) + extra)
        batch.meta["batched_ids"] = [m.id for m in held if m.id is not None]
        batch.meta["thanks"] = True
        return batch


def thanks_text(messages: list[ChatMessage], zh: bool, max_names: int = 4, extra: int = 0) -> str:
    givers: OrderedDict[str, _Giver] = OrderedDict()
    for m in messages:
        # Only a name triage allows is said; the others are thanked as "friend" / "朋友".
        name = m.spoken_name or ("朋友" if zh else "friend")
        giver = givers.setdefault(m.spoken_name or f"\0{m.user}", _Giver(name))
        what = _describe(m, zh)
        # A raid's count is its viewers, already in its description: it is one raid.
        amount = 1 if m.kind == Kind.RAID else max(1, m.count)
        giver.items[what] = giver.items.get(what, 0) + amount
    shown = list(givers.values())[:max_names]
    more = len(givers) - len(shown) + extra
    if zh:
        parts = [
            f"{g.user}送的" + "和".join(f"{n}个{what}" for what, n in g.items.items())
            for g in shown
        ]
        tail = f"，还有另外{more}位朋友" if more else ""
        return f"感谢{'、'.join(parts)}{tail}！谢谢大家的支持！"
    parts = [
        f"{g.user} for "
        + " and ".join(f"{n} {what}" if n > 1 else f"the {what}" for what, n in g.items.items())
        for g in shown
    ]
    joined = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    tail = f", and {more} more of you" if more else ""
    return f"Thank you {joined}{tail}! You're amazing."
