"""Bilibili commands to chat messages: a command packet's JSON (op 5) becomes a
:class:`~streambot.events.ChatMessage` through :func:`command_to_message`, for both the web
danmaku protocol and the official open platform. Nothing a command holds raises: a command
that is not what it should be becomes a message marked malformed, with the reason.
"""

from __future__ import annotations

import json
from typing import Any

from streambot.chat import bilibili_pb
from streambot.chat.bilibili_packets import Packet
from streambot.chat.hygiene import preview
from streambot.events import ChatMessage, Kind

_json_decode = json.JSONDecoder().decode  # skips json.loads' per-call encoding sniffing

SOURCE = "bilibili"
GUARD_NAMES = {1: "总督", 2: "提督", 3: "舰长"}
INTERACT_ACTIONS = {1: "enter", 2: "follow", 3: "share", 4: "follow", 5: "follow"}


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _id(value: object) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value) if value else ""
    if isinstance(value, str):
        return value
    return ""


def _int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and abs(value) < 1e18:
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def _num(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value == value and abs(value) < 1e15:
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) < 1e15 else None
    return None


def _bad(cmd: str, data: object, why: str, source: str) -> ChatMessage:
    raw = preview(data)[:200] if data is not None else ""
    return ChatMessage(source, "?", raw, malformed=f"{cmd}: {why}")


def command_name(obj: object) -> str | None:
    """The command's name without the ``:4:0:2:2:2:0`` style suffix, or None."""
    if not isinstance(obj, dict):
        return None
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        return None
    return cmd.split(":", 1)[0]


def _danmu(obj: dict, source: str) -> ChatMessage:
    info = obj.get("info")
    if not isinstance(info, list) or len(info) < 3:
        return _bad("DANMU_MSG", obj, "'info' must be a list of at least 3 items", source)
    text = _text(info[1])
    if text is None:
        return _bad("DANMU_MSG", obj, "info[1] (the text) must be a string", source)
    user_info = info[2] if isinstance(info[2], list) else []
    uid = _id(user_info[0]) if len(user_info) > 0 else ""
    uname = _text(user_info[1]) if len(user_info) > 1 else None
    meta: dict = {}
    head = info[0] if isinstance(info[0], list) else []
    if len(head) > 15 and isinstance(head[15], dict):  # newer servers: info[0][15].user
        user = head[15].get("user")
        if isinstance(user, dict):
            base = user.get("base")
            name = base.get("name") if isinstance(base, dict) else None
            if isinstance(name, str) and name and (not uname or "*" in uname):
                uname = name
            if not uid:
                uid = _id(user.get("uid"))
    if len(head) > 12 and head[12] == 1:
        meta["emoticon"] = True
    if len(info) > 3 and isinstance(info[3], list) and len(info[3]) >= 2:
        medal = info[3]
        if isinstance(medal[1], str) and isinstance(medal[0], int):
            meta["medal"], meta["medal_level"] = medal[1], medal[0]
    if not uname:
        return _bad("DANMU_MSG", obj, "no user name in info[2][1] or info[0][15]", source)
    return ChatMessage(source, uname[:64], text, Kind.CHAT, user_id=uid, meta=meta)


def _data(obj: dict, cmd: str, source: str) -> dict | ChatMessage:
    data = obj.get("data")
    if not isinstance(data, dict):
        return _bad(cmd, obj, "'data' must be an object", source)
    return data


def object_at(data: dict, key: str, default: dict | None = None) -> dict:
    """``data[key]`` when the server sent an object there, else ``default`` (else empty): a
    field missing or of another type reads as no fields, never as an error."""
    value = data.get(key)
    if isinstance(value, dict):
        return value
    return {} if default is None else default


def _user(data: dict, *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return None


def _super_chat(obj: dict, source: str) -> ChatMessage:
    data = _data(obj, "SUPER_CHAT_MESSAGE", source)
    if isinstance(data, ChatMessage):
        return data
    user_info = object_at(data, "user_info")
    uname = _user(user_info, "uname") or _user(data, "uname")
    text, price = _text(data.get("message")), _num(data.get("price"))
    if uname is None or text is None or price is None:
        return _bad("SUPER_CHAT_MESSAGE", data, "needs user_info.uname, message and price", source)
    meta = {"sc_id": data.get("id"), "duration_s": _int(data.get("time"))}
    return ChatMessage(
        source,
        uname,
        text,
        Kind.SUPERCHAT,
        amount=price,
        currency="CNY",
        user_id=_id(data.get("uid")),
        meta=meta,
    )


def _paid_gift(
    source: str,
    uname: str,
    user_id: str,
    gift: str,
    num: int,
    *,
    gold: bool,
    total_coin: float | None,
    price: float,
    box: str | None = None,
) -> ChatMessage:
    """A gift event as a message. The amount is what the viewer paid: ``total_coin`` (gold
    coins, 1000 = 1 CNY), else ``price x num``. A blind box is paid at the box's price even
    when it opens something dearer or cheaper, so ``total_coin`` is the truth there."""
    paid_coin = total_coin if total_coin is not None else price * num
    amount = round(paid_coin / 1000.0, 3) if gold else 0.0
    meta: dict = {"gift_name": gift, "coin_type": "gold" if gold else "silver", "paid": gold}
    text = f"{gift} x{num}"
    if box:
        meta["blind_box"] = box  # the box bought; ``gift_name`` is what it opened
        text = f"{box} -> {gift} x{num}"
    return ChatMessage(
        source,
        uname,
        text,
        Kind.GIFT,
        amount=amount,
        currency="CNY",
        count=num,
        user_id=user_id,
        meta=meta,
    )


def _gift(obj: dict, source: str) -> ChatMessage:
    data = _data(obj, "SEND_GIFT", source)
    if isinstance(data, ChatMessage):
        return data
    uname, gift = _user(data, "uname"), _text(data.get("giftName"))
    num = _int(data.get("num"), 1)
    if uname is None or not gift or num < 1:
        return _bad("SEND_GIFT", data, "needs uname, giftName and a positive num", source)
    blind = object_at(data, "blind_gift")
    return _paid_gift(
        source,
        uname,
        _id(data.get("uid")),
        gift,
        num,
        gold=data.get("coin_type") == "gold",
        total_coin=_num(data.get("total_coin")),
        price=_num(data.get("price")) or 0.0,
        box=_text(blind.get("original_gift_name")),
    )


def _pb_payload(obj: dict, cmd: str, message: str, source: str) -> Any:
    """The protobuf message in a command's ``data.pb``, or a malformed ChatMessage saying why."""
    data = _data(obj, cmd, source)
    if isinstance(data, ChatMessage):
        return data
    try:
        return bilibili_pb.decode(message, data.get("pb"))
    except bilibili_pb.PbUnavailable as exc:
        return _bad(cmd, None, str(exc), source)
    except ValueError as exc:
        return _bad(cmd, data, str(exc), source)


def _gift_v2(obj: dict, source: str) -> ChatMessage:
    """SEND_GIFT_V2: the gift in ``data.pb`` (protobuf, see ``proto/bilibili_live.proto``)."""
    cmd = "SEND_GIFT_V2"
    pb = _pb_payload(obj, cmd, "SendGiftV2", source)
    if isinstance(pb, ChatMessage):
        return pb
    uname = (pb.uname or pb.uinfo.base.name).strip()[:64]
    item = pb.gift
    if not uname or not item.gift_name or item.num < 1:
        return _bad(cmd, None, "needs uname, gift.gift_name and a positive gift.num", source)
    blind = pb.blind_gift if pb.HasField("blind_gift") else None
    return _paid_gift(
        source,
        uname,
        _id(pb.uid or pb.uinfo.uid),
        item.gift_name,
        item.num,
        gold=item.coin_type == "gold",
        total_coin=float(item.total_coin) if item.total_coin else None,
        price=float(item.discount_price or item.price),
        box=blind.original_gift_name if blind is not None else None,
    )


def _guard(obj: dict, source: str) -> ChatMessage:
    data = _data(obj, "GUARD_BUY", source)
    if isinstance(data, ChatMessage):
        return data
    uname, level = _user(data, "username", "uname"), _int(data.get("guard_level"))
    num = _int(data.get("num"), 1)
    if uname is None or level not in GUARD_NAMES or num < 1:
        return _bad("GUARD_BUY", data, "needs username, guard_level 1-3 and a positive num", source)
    name = GUARD_NAMES[level]
    price = _num(data.get("price")) or 0.0
    meta = {"guard_level": level, "level_name": name, "gift_name": name}
    return ChatMessage(
        source,
        uname,
        f"{name} x{num}",
        Kind.MEMBERSHIP,
        amount=round(price * num / 1000.0, 3),
        currency="CNY",
        count=num,
        user_id=_id(data.get("uid")),
        meta=meta,
    )


def _interaction(source: str, uname: str, user_id: str, msg_type: int) -> ChatMessage | None:
    action = INTERACT_ACTIONS.get(msg_type)
    if action is None:
        return None  # a kind of interaction this host does not react to
    return ChatMessage(
        source, uname, action, Kind.INTERACTION, user_id=user_id, meta={"action": action}
    )


def _interact(obj: dict, source: str) -> ChatMessage | None:
    data = _data(obj, "INTERACT_WORD", source)
    if isinstance(data, ChatMessage):
        return data
    uname = _user(data, "uname")
    if uname is None:
        return _bad("INTERACT_WORD", data, "needs uname", source)
    return _interaction(source, uname, _id(data.get("uid")), _int(data.get("msg_type")))


def _interact_v2(obj: dict, source: str) -> ChatMessage | None:
    """INTERACT_WORD_V2: enter / follow / share in ``data.pb`` (protobuf since 2025-09)."""
    cmd = "INTERACT_WORD_V2"
    pb = _pb_payload(obj, cmd, "InteractWordV2", source)
    if isinstance(pb, ChatMessage):
        return pb
    uname = (pb.uname or pb.uinfo.base.name).strip()[:64]
    if not uname:
        return _bad(cmd, None, "needs uname", source)
    return _interaction(source, uname, _id(pb.uid or pb.uinfo.uid), pb.msg_type)


def _danmu_mirror(obj: dict, source: str) -> ChatMessage:
    """DANMU_MSG_MIRROR: danmaku from the other room of a linked stream (连麦 / PK). Kept as a
    message with its origin, so it is stored; triage does not answer it (not our viewer)."""
    msg = _danmu(obj, source)
    if not msg.malformed:
        msg.kind = Kind.INTERACTION
        msg.meta["action"] = "danmaku mirrored from a linked room"
        msg.meta["mirrored"] = True
    return msg


# -- the official open platform (开放平台) -------------------------------------------------


def _open_user(data: dict) -> tuple[str | None, str]:
    info = object_at(data, "user_info", default=data)
    uname = _user(info, "uname")
    user_id = _id(info.get("uid")) or _id(info.get("open_id"))
    return uname, user_id


def _open_dm(obj: dict, source: str) -> ChatMessage:
    cmd = "LIVE_OPEN_PLATFORM_DM"
    data = _data(obj, cmd, source)
    if isinstance(data, ChatMessage):
        return data
    (uname, user_id), text = _open_user(data), _text(data.get("msg"))
    if uname is None or text is None:
        return _bad(cmd, data, "needs uname and msg", source)
    meta = {"open_id": data.get("open_id"), "msg_id": data.get("msg_id")}
    if data.get("dm_type") == 1:
        meta["emoticon"] = True
    return ChatMessage(source, uname, text, Kind.CHAT, user_id=user_id, meta=meta)


def _open_gift(obj: dict, source: str) -> ChatMessage:
    cmd = "LIVE_OPEN_PLATFORM_SEND_GIFT"
    data = _data(obj, cmd, source)
    if isinstance(data, ChatMessage):
        return data
    (uname, user_id), gift = _open_user(data), _text(data.get("gift_name"))
    num = _int(data.get("gift_num"), 1)
    if uname is None or not gift or num < 1:
        return _bad(cmd, data, "needs uname, gift_name and a positive gift_num", source)
    paid = data.get("paid") is True
    # The official docs: ``price`` is the gift's list price per item and "for discounted
    # gifts not what was actually paid: use r_price"; ``r_price`` is the actual value per
    # item (1000 = 1 CNY). So r_price, with price only when r_price is missing. For a blind
    # box both are the opened gift's value: the platform reports no box price here.
    unit = _num(data.get("r_price"))
    unit = _num(data.get("price")) if unit is None else unit
    amount = round((unit or 0.0) * num / 1000.0, 3) if paid else 0.0
    meta = {"gift_name": gift, "paid": paid, "open_id": data.get("open_id")}
    return ChatMessage(
        source,
        uname,
        f"{gift} x{num}",
        Kind.GIFT,
        amount=amount,
        currency="CNY",
        count=num,
        user_id=user_id,
        meta=meta,
    )


def _open_super_chat(obj: dict, source: str) -> ChatMessage:
    cmd = "LIVE_OPEN_PLATFORM_SUPER_CHAT"
    data = _data(obj, cmd, source)
    if isinstance(data, ChatMessage):
        return data
    (uname, user_id), text, rmb = (
        _open_user(data),
        _text(data.get("message")),
        _num(data.get("rmb")),
    )
    if uname is None or text is None or rmb is None:
        return _bad(cmd, data, "needs uname, message and rmb", source)
    meta = {"sc_id": data.get("message_id"), "open_id": data.get("open_id")}
    return ChatMessage(
        source,
        uname,
        text,
        Kind.SUPERCHAT,
        amount=rmb,
        currency="CNY",
        user_id=user_id,
        meta=meta,
    )


def _open_guard(obj: dict, source: str) -> ChatMessage:
    cmd = "LIVE_OPEN_PLATFORM_GUARD"
    data = _data(obj, cmd, source)
    if isinstance(data, ChatMessage):
        return data
    (uname, user_id), level = _open_user(data), _int(data.get("guard_level"))
    num = _int(data.get("guard_num"), 1)
    if uname is None or level not in GUARD_NAMES or num < 1:
        return _bad(cmd, data, "needs user_info.uname, guard_level 1-3 and guard_num", source)
    name = GUARD_NAMES[level]
    price = _num(data.get("price")) or 0.0
    meta = {
        "guard_level": level,
        "level_name": name,
        "gift_name": name,
        "unit": data.get("guard_unit"),
    }
    return ChatMessage(
        source,
        uname,
        f"{name} x{num}",
        Kind.MEMBERSHIP,
        amount=round(price * num / 1000.0, 3),
        currency="CNY",
        count=num,
        user_id=user_id,
        meta=meta,
    )


_HANDLERS = {
    "DANMU_MSG": _danmu,
    "SUPER_CHAT_MESSAGE": _super_chat,
    "DANMU_MSG_MIRROR": _danmu_mirror,
    "SEND_GIFT": _gift,
    "SEND_GIFT_V2": _gift_v2,
    "GUARD_BUY": _guard,
    "INTERACT_WORD": _interact,
    "INTERACT_WORD_V2": _interact_v2,
    "LIVE_OPEN_PLATFORM_DM": _open_dm,
    "LIVE_OPEN_PLATFORM_SEND_GIFT": _open_gift,
    "LIVE_OPEN_PLATFORM_SUPER_CHAT": _open_super_chat,
    "LIVE_OPEN_PLATFORM_GUARD": _open_guard,
}


def command_to_message(obj: object, source: str = SOURCE) -> ChatMessage | None:
    """A chat message for a command this host reacts to, a malformed one for a known command
    with bad fields, None for every other command (there are dozens: rank updates, banners)."""
    name = command_name(obj)
    if name is None:
        return _bad("command", obj, "not an object with a string 'cmd'", source)
    handler = _HANDLERS.get(name)
    if handler is None:
        return None
    try:
        return handler(obj, source)  # type: ignore[arg-type]
    except RecursionError:  # a field nested absurdly deep, or a JSON string inside one
        return _bad(name, None, "unexpected shape (nested too deeply)", source)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
        return _bad(name, obj, f"unexpected shape ({type(exc).__name__}: {exc})", source)


def packet_to_message(packet: Packet, source: str = SOURCE) -> ChatMessage | None:
    """A command packet's message (or malformed message, or None when ignored)."""
    try:
        obj = _json_decode(packet.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return ChatMessage(
            source, "?", repr(packet.body[:200]), malformed=f"command body is not JSON: {exc}"
        )
    except RecursionError:
        return ChatMessage(
            source, "?", repr(packet.body[:200]), malformed="command nested too deep"
        )
    return command_to_message(obj, source)
