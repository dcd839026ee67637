"""Decode the protobuf payloads of SEND_GIFT_V2 and INTERACT_WORD_V2 (``data.pb``, base64).

The schema is ``proto/bilibili_live.proto``; the code loads its compiled descriptor set
(``proto/bilibili_live.binpb``) into a private descriptor pool at run time instead of shipping
protoc's generated ``_pb2`` module, whose version check would tie users to the protobuf
release it was generated with (a user's torch/onnx stack often pins another one).
"""

from __future__ import annotations

import base64
import binascii
import functools
from importlib import resources
from typing import Any

PROTO_PACKAGE = "streambot.bilibili"
MAX_PB_BYTES = 64 * 1024  # a gift event is a few hundred bytes


class PbUnavailable(RuntimeError):
    """protobuf is not installed (it is in the ``chat`` extra)."""


@functools.cache
def _classes() -> dict[str, Any]:
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError as exc:
        raise PbUnavailable("protobuf is not installed: pip install 'streambot[chat]'") from exc
    data = resources.files("streambot.chat.proto").joinpath("bilibili_live.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PROTO_PACKAGE}.{name}"))
        for name in ("SendGiftV2", "InteractWordV2", "GiftItem", "BlindGift", "UserInfo")
    }


def message_class(name: str) -> Any:
    """The message class ``name`` of the schema (tests build payloads with it)."""
    return _classes()[name]


def decode(name: str, encoded: object) -> Any:
    """Parse base64 ``encoded`` as message ``name``; ValueError names what is wrong."""
    if not isinstance(encoded, str) or not encoded:
        raise ValueError("'data.pb' must be a non-empty base64 string")
    if len(encoded) > MAX_PB_BYTES * 4 // 3 + 4:
        raise ValueError(f"'data.pb' is larger than {MAX_PB_BYTES} bytes")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("'data.pb' is not base64") from None
    message = message_class(name)()
    try:
        message.ParseFromString(raw)
    except Exception as exc:  # google.protobuf.message.DecodeError, and junk of every kind
        raise ValueError(f"'data.pb' is not a {name} protobuf ({type(exc).__name__})") from None
    return message


def encode(message: Any) -> str:
    """``message`` as ``data.pb`` carries it (for tests and the loopback server)."""
    return base64.b64encode(message.SerializeToString()).decode("ascii")
