"""Twitch EventSub notifications as chat messages, read from the wire JSON Twitch documents
(chat messages, cheers, subscriptions, resubs, gifted subs, raids), and EventSub's timestamps.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from streambot.events import ChatMessage, Kind

_FRACTION = re.compile(r"(\.\d{6})\d+")  # RFC 3339 nanoseconds; Python reads microseconds


def message_time(stamp: object) -> float | None:
    """An EventSub ``message_timestamp`` ("2023-07-19T14:56:51.634234626Z") as epoch
    seconds, or None when it is missing or not a timestamp."""
    if not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(_FRACTION.sub(r"\1", stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _name(event: dict, prefix: str = "user") -> str:
    return event.get(f"{prefix}_name") or event.get(f"{prefix}_login") or "anonymous"


def _tier(event: dict) -> str:
    tier = str(event.get("tier") or "1000")
    return {"1000": "1", "2000": "2", "3000": "3"}.get(tier, tier)


def _chat_meta(event: dict) -> dict[str, Any]:
    """What a chat message carries beside its text: ids, badges, reply, Shared Chat, bits."""
    meta: dict[str, Any] = {
        "message_id": event.get("message_id"),
        "login": event.get("chatter_user_login"),
        "badges": [b.get("set_id") for b in event.get("badges") or [] if isinstance(b, dict)],
        "message_type": event.get("message_type"),
    }
    if event.get("reply"):
        meta["reply_parent_message_id"] = event["reply"].get("parent_message_id")
    source_id = event.get("source_broadcaster_user_id")
    if source_id and str(source_id) != str(event.get("broadcaster_user_id")):
        meta["shared_chat_from"] = {  # Shared Chat: sent in another channel of the session
            "id": str(source_id),
            "login": event.get("source_broadcaster_user_login"),
            "name": event.get("source_broadcaster_user_name"),
            "message_id": event.get("source_message_id"),
        }
    if event.get("cheer"):  # the bits also arrive as channel.cheer: counted there
        meta["bits"] = event["cheer"].get("bits")
    return meta


def _mark_hype_chat(msg: ChatMessage, event: dict) -> None:
    """Make ``msg`` a SUPERCHAT with its amount when the chat message was a paid Hype Chat."""
    paid = event.get("hype_chat") or event.get("paid")  # Hype Chat, when the payload has it
    if isinstance(paid, dict) and paid.get("amount") is not None:
        msg.kind = Kind.SUPERCHAT
        exponent = int(paid.get("exponent", paid.get("decimal_places", 0)) or 0)
        msg.amount = float(paid["amount"]) / 10**exponent
        msg.currency = str(paid.get("currency") or "").upper()


def _from_chat_message(event: dict) -> ChatMessage:
    """channel.chat.message: a viewer's chat line (a SUPERCHAT when it is a Hype Chat)."""
    msg = ChatMessage(
        "twitch",
        _name(event, "chatter_user"),
        (event.get("message") or {}).get("text") or "",
        user_id=str(event.get("chatter_user_id") or ""),
        meta=_chat_meta(event),
    )
    _mark_hype_chat(msg, event)
    return msg


def _from_cheer(event: dict) -> ChatMessage:
    """channel.cheer: bits, with the cheer's message."""
    bits = int(event.get("bits") or 0)
    return ChatMessage(
        "twitch",
        "anonymous" if event.get("is_anonymous") else _name(event),
        event.get("message") or "",
        Kind.CHEER,
        amount=float(bits),
        currency="BITS",
        user_id=str(event.get("user_id") or ""),
        meta={"is_anonymous": bool(event.get("is_anonymous")), "bits": bits},
    )


def _from_subscribe(event: dict) -> ChatMessage | None:
    """channel.subscribe: a new subscriber (None for a gifted sub's recipient)."""
    if event.get("is_gift"):  # the gifter's channel.subscription.gift counts it
        return None
    return ChatMessage(
        "twitch",
        _name(event),
        f"subscribed at tier {_tier(event)}",
        Kind.MEMBERSHIP,
        user_id=str(event.get("user_id") or ""),
        meta={"event": "subscribe", "tier": event.get("tier")},
    )


def _from_resub(event: dict) -> ChatMessage:
    """channel.subscription.message: a resubscription shared in chat, with its months."""
    months = event.get("cumulative_months")
    text = (event.get("message") or {}).get("text") or f"resubscribed for {months} months"
    return ChatMessage(
        "twitch",
        _name(event),
        text,
        Kind.MEMBERSHIP,
        user_id=str(event.get("user_id") or ""),
        meta={
            "event": "resub",
            "tier": event.get("tier"),
            "cumulative_months": months,
            "streak_months": event.get("streak_months"),
            "duration_months": event.get("duration_months"),
        },
    )


def _from_sub_gift(event: dict) -> ChatMessage:
    """channel.subscription.gift: one viewer (or an anonymous one) gifting ``total`` subs."""
    total = int(event.get("total") or 1)
    anonymous = bool(event.get("is_anonymous"))
    return ChatMessage(
        "twitch",
        "anonymous" if anonymous else _name(event),
        f"gifted {total} tier {_tier(event)} sub{'s' if total != 1 else ''}",
        Kind.MEMBERSHIP,
        count=total,
        user_id="" if anonymous else str(event.get("user_id") or ""),
        meta={
            "event": "gift",
            "tier": event.get("tier"),
            "cumulative_total": event.get("cumulative_total"),
            "is_anonymous": anonymous,
        },
    )


def _from_raid(event: dict) -> ChatMessage:
    """channel.raid: another broadcaster raiding with their viewers."""
    viewers = int(event.get("viewers") or 0)
    return ChatMessage(
        "twitch",
        _name(event, "from_broadcaster_user"),
        f"raiding with {viewers} viewers",
        Kind.RAID,
        count=viewers,
        user_id=str(event.get("from_broadcaster_user_id") or ""),
        meta={"login": event.get("from_broadcaster_user_login")},
    )


_NORMALISERS: dict[str, Callable[[dict], ChatMessage | None]] = {
    "channel.chat.message": _from_chat_message,
    "channel.cheer": _from_cheer,
    "channel.subscribe": _from_subscribe,
    "channel.subscription.message": _from_resub,
    "channel.subscription.gift": _from_sub_gift,
    "channel.raid": _from_raid,
}


def normalise(sub_type: str, event: dict) -> ChatMessage | None:
    """One EventSub notification event as a ChatMessage (None: not a message for the host)."""
    normaliser = _NORMALISERS.get(sub_type)
    return normaliser(event) if normaliser is not None else None
