"""The Bilibili live danmaku packet codec and the command normaliser.

Every websocket binary frame holds one or more packets, each with a 16-byte big-endian header::

    uint32 packet_len   header + body
    uint16 header_len   16
    uint16 protover     0 JSON, 1 heartbeat int32, 2 zlib packets, 3 brotli packets
    uint32 op           2 heartbeat, 3 heartbeat reply, 5 command, 7 auth, 8 auth reply
    uint32 seq

Compressed bodies (protover 2 and 3) are themselves concatenated packets and are unpacked
recursively. The decoder never raises on what the network sends: bad, truncated, oversized or
undecodable input becomes a :class:`DecodeError` carrying a reason, and the good packets that
came before it in the same frame are kept.

Commands (op 5, JSON) become :class:`~streambot.events.ChatMessage` objects through
:func:`command_to_message`, for both the web danmaku protocol and the official open platform.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from streambot.chat import bilibili_pb
from streambot.chat.hygiene import preview
from streambot.events import ChatMessage, Kind

try:  # brotli is in the ``chat`` extra; without it protover 3 packets are reported, not decoded
    import brotli
except ImportError:  # pragma: no cover - depends on the environment
    brotli = None

# ``Decompressor.process(..., output_buffer_limit=)`` (the bound on what one body may inflate
# to) arrived in brotli 1.2; 1.1 fails on every compressed frame.
BROTLI_MIN = (1, 2)


def brotli_problem() -> str | None:
    """Why protover 3 frames cannot be decoded here, or None when they can."""
    if brotli is None:
        return "brotli is not installed: pip install 'streambot[chat]'"
    version = getattr(brotli, "__version__", "0")
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts < BROTLI_MIN:
        return f"brotli {version} is too old (1.2 or newer is needed): pip install 'brotli>=1.2'"
    return None


SOURCE = "bilibili"

HEADER = struct.Struct(">IHHII")
HEADER_LEN = 16

VER_JSON = 0
VER_INT = 1
VER_ZLIB = 2
VER_BROTLI = 3

OP_HEARTBEAT = 2
OP_HEARTBEAT_REPLY = 3
OP_COMMAND = 5
OP_AUTH = 7
OP_AUTH_REPLY = 8

MAX_PACKET = 1 << 20  # one packet (header + body), as sent or once decompressed
MAX_DEPTH = 2  # compressed packets inside compressed packets; the server uses one level
MAX_FRAME_OUTPUT = 8 << 20  # everything decompressed out of one frame, all levels together
# Packets taken from one frame: a busy room's frames carry tens; a 16 KB brotli frame of empty
# packets could otherwise unpack to half a million and hold the event loop for seconds.
MAX_FRAME_PACKETS = 2_000

_json_decode = json.JSONDecoder().decode  # skips json.loads' per-call encoding sniffing
GUARD_NAMES = {1: "总督", 2: "提督", 3: "舰长"}
INTERACT_ACTIONS = {1: "enter", 2: "follow", 3: "share", 4: "follow", 5: "follow"}


@dataclass(frozen=True, slots=True)
class Packet:
    op: int
    ver: int
    seq: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def popularity(self) -> int | None:
        """The heartbeat reply's viewer figure, as a 4-byte int or a JSON body."""
        if len(self.body) == 4:
            return int.from_bytes(self.body, "big", signed=False)  # an unsigned 32-bit count
        try:
            data = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if isinstance(data, dict):
            value = data.get("popularity", data.get("online"))
            return value if isinstance(value, int) else None
        return data if isinstance(data, int) else None


class _TooManyPackets(Exception):
    pass


@dataclass(frozen=True, slots=True)
class DecodeError:
    reason: str
    raw: bytes = b""  # at most the first 64 bytes of what could not be decoded

    def __bool__(self) -> bool:  # so ``if result:`` reads as "decoded fine"
        return False


def encode_packet(
    op: int, body: bytes | str | dict | list = b"", ver: int = 0, seq: int = 1
) -> bytes:
    """One packet; a dict or list body is JSON-encoded (UTF-8, compact)."""
    if isinstance(body, dict | list):
        body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    if isinstance(body, str):
        body = body.encode("utf-8")
    return HEADER.pack(HEADER_LEN + len(body), HEADER_LEN, ver, op, seq) + body


def auth_packet(auth: dict | str | bytes) -> bytes:
    return encode_packet(OP_AUTH, auth, ver=1, seq=1)


def heartbeat_packet() -> bytes:
    return encode_packet(OP_HEARTBEAT, b"[object Object]", ver=1, seq=1)


def _at(offset: int, depth: int) -> str:
    return f" at offset {offset}" + (f" (nested level {depth})" if depth else "")


class PacketDecoder:
    """Turns websocket frames into packets; counts what it decoded and what it could not.

    Frames are independent (a websocket message is never split), so there is no state between
    ``decode`` calls other than the counters: garbage in one frame cannot affect the next.
    """

    def __init__(
        self,
        max_packet: int = MAX_PACKET,
        max_depth: int = MAX_DEPTH,
        max_frame_output: int = MAX_FRAME_OUTPUT,
        max_frame_packets: int = MAX_FRAME_PACKETS,
    ) -> None:
        self.max_packet = max_packet
        self.max_depth = max_depth
        self.max_frame_output = max_frame_output
        self.max_frame_packets = max_frame_packets
        self.frames = 0
        self.packets = 0
        self.errors = 0
        self.heartbeat_echoes = 0  # heartbeat replies followed by the echoed client body

    def decode(self, frame: bytes | bytearray | memoryview) -> list[Packet | DecodeError]:
        self.frames += 1
        out: list[Packet | DecodeError] = []
        try:
            data = bytes(frame)
        except TypeError:
            data = b""
            out.append(DecodeError(f"frame is {type(frame).__name__}, not bytes"))
        else:
            if not data:
                out.append(DecodeError("empty frame"))
            else:
                try:
                    self._unpack(data, 0, out, [self.max_frame_output])
                except _TooManyPackets:
                    out.append(
                        DecodeError(
                            f"frame holds more than {self.max_frame_packets} packets; "
                            "the rest were dropped"
                        )
                    )
        for item in out:
            if isinstance(item, Packet):
                self.packets += 1
            else:
                self.errors += 1
        return out

    def _unpack(
        self, data: bytes, depth: int, out: list[Packet | DecodeError], budget: list[int]
    ) -> None:
        offset, size = 0, len(data)
        while offset < size:
            if len(out) >= self.max_frame_packets:
                raise _TooManyPackets
            problem = self._framing_problem(data, offset)
            if problem is not None:
                # The framing is lost: nothing after this point can be trusted.
                out.append(DecodeError(problem + _at(offset, depth), data[offset : offset + 64]))
                return
            packet_len, header_len, ver, op, seq = HEADER.unpack_from(data, offset)
            body = data[offset + header_len : offset + packet_len]
            raw = data[offset : offset + min(packet_len, 64)]
            offset += packet_len
            if ver in (VER_JSON, VER_INT):
                out.append(Packet(op, ver, seq, body))
                if op == OP_HEARTBEAT_REPLY and depth == 0:
                    # The server's heartbeat reply (pack_len 20: the popularity) is followed
                    # by an echo of the client's heartbeat body, which is not a packet: the
                    # frame ends here, as every client reads it.
                    self.heartbeat_echoes += offset < size
                    return
            elif ver in (VER_ZLIB, VER_BROTLI):
                if depth >= self.max_depth:
                    out.append(DecodeError(f"compressed packets nested deeper than {depth}", raw))
                    continue
                inner = self._inflate(body, ver, budget)
                if isinstance(inner, DecodeError):
                    out.append(DecodeError(inner.reason + _at(offset - packet_len, depth), raw))
                    continue
                if not inner:
                    out.append(DecodeError("compressed body holds no packets", raw))
                    continue
                self._unpack(inner, depth + 1, out, budget)
            else:
                out.append(DecodeError(f"unknown protover {ver} (op {op})", raw))

    def _framing_problem(self, data: bytes, offset: int) -> str | None:
        """Why the packet at ``offset`` cannot be framed, or None when its header is sound."""
        left = len(data) - offset
        if left < HEADER_LEN:
            return f"truncated header: {left} bytes"
        packet_len, header_len, _, _, _ = HEADER.unpack_from(data, offset)
        if header_len < HEADER_LEN or packet_len < header_len:
            return f"bad lengths: packet_len {packet_len}, header_len {header_len}"
        if packet_len > self.max_packet:
            return f"oversized packet: {packet_len} bytes (limit {self.max_packet})"
        if packet_len > left:
            return f"truncated packet: header says {packet_len} bytes, {left} left"
        return None

    def _inflate(self, body: bytes, ver: int, budget: list[int]) -> bytes | DecodeError:
        limit = min(self.max_packet, budget[0])  # the decompressed size this body may take
        name = "zlib" if ver == VER_ZLIB else "brotli"
        try:
            if ver == VER_ZLIB:
                inflater = zlib.decompressobj()
                inner = inflater.decompress(body, limit + 1)
                too_big = len(inner) > limit or bool(inflater.unconsumed_tail)
                finished = inflater.eof
            else:
                if (problem := brotli_problem()) is not None:
                    return DecodeError(f"brotli packet, but {problem}")
                inflater = brotli.Decompressor()
                inner = inflater.process(body, output_buffer_limit=limit + 1)
                too_big = len(inner) > limit or not inflater.can_accept_more_data()
                finished = inflater.is_finished()
        except (zlib.error, ValueError, MemoryError) as exc:
            return DecodeError(f"{name} body does not decompress: {exc}")
        except Exception as exc:  # brotli.error, and anything a codec may raise on junk
            return DecodeError(f"{name} body does not decompress: {type(exc).__name__}: {exc}")
        if too_big:
            return DecodeError(f"{name} body decompresses past {limit} bytes (limit)")
        if not finished:
            return DecodeError(f"{name} body is truncated")
        budget[0] -= len(inner)
        return inner


# -- commands -------------------------------------------------------------------------------


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
    user_info = data.get("user_info") if isinstance(data.get("user_info"), dict) else {}
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
    blind = data.get("blind_gift") if isinstance(data.get("blind_gift"), dict) else {}
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
    info = data.get("user_info") if isinstance(data.get("user_info"), dict) else data
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
