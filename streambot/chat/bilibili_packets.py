"""The Bilibili live danmaku packet codec.

Every websocket binary frame holds one or more packets, each with a 16-byte big-endian header::

    uint32 packet_len   header + body
    uint16 header_len   16
    uint16 protover     0 JSON, 1 heartbeat int32, 2 zlib packets, 3 brotli packets
    uint32 op           2 heartbeat, 3 heartbeat reply, 5 command, 7 auth, 8 auth reply
    uint32 seq

Compressed bodies (protover 2 and 3) are themselves concatenated packets and are unpacked
recursively. The decoder never raises on what the network sends: bad, truncated, oversized or
undecodable input becomes a :class:`DecodeError` carrying a reason, and the good packets that
came before it in the same frame are kept. What the commands (op 5) say is
``bilibili_commands``'.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

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
                problem = brotli_problem()
                if problem is not None or brotli is None:
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
