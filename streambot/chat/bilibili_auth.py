"""Bilibili's request signing: the web API's WBI signature (keys from ``nav``), the open
platform's HMAC-SHA256 headers, and the login cookie read from the environment (never logged).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

MIXIN_KEY_ENC_TAB = (  # the WBI key shuffle, fixed by Bilibili
    46,
    47,
    18,
    2,
    53,
    8,
    23,
    32,
    15,
    50,
    10,
    31,
    58,
    3,
    45,
    35,
    27,
    43,
    5,
    49,
    33,
    9,
    42,
    19,
    29,
    28,
    14,
    39,
    12,
    38,
    41,
    13,
    37,
    48,
    7,
    16,
    24,
    55,
    40,
    61,
    26,
    17,
    0,
    1,
    60,
    51,
    30,
    4,
    22,
    25,
    54,
    21,
    56,
    59,
    6,
    63,
    57,
    62,
    11,
    36,
    20,
    34,
    44,
    52,
)

_WBI_STRIP = str.maketrans("", "", "!'()*")


def wbi_key_from_url(url: str) -> str:
    """``https://i0.hdslb.com/bfs/wbi/7cd0...c7b.png`` -> ``7cd0...c7b``."""
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def mixin_key(img_key: str, sub_key: str) -> str:
    raw = img_key + sub_key
    return "".join(raw[i] for i in MIXIN_KEY_ENC_TAB if i < len(raw))[:32]


def _quote(
    value: str | bytes,
    safe: str | bytes = "",
    encoding: str | None = None,
    errors: str | None = None,
) -> str:
    """urlencode's ``quote_via``, ignoring its ``safe``: nothing is safe, as in the web client's
    encodeURIComponent."""
    return urllib.parse.quote(value, safe="")


def wbi_sign(params: Mapping[str, Any], img_key: str, sub_key: str, wts: int | None = None) -> dict:
    """The params plus ``wts`` and ``w_rid``, in the order they are sent: ``wts`` added, sorted
    by key, ``!'()*`` stripped from the values, URL-encoded, ``w_rid = md5(query + mixin_key)``."""
    signed = dict(params)
    signed["wts"] = int(time.time()) if wts is None else int(wts)
    signed = {k: str(signed[k]).translate(_WBI_STRIP) for k in sorted(signed)}
    query = urllib.parse.urlencode(signed, quote_via=_quote)
    signed["w_rid"] = hashlib.md5((query + mixin_key(img_key, sub_key)).encode()).hexdigest()
    return signed


def wbi_query(params: Mapping[str, Any], img_key: str, sub_key: str, wts: int | None = None) -> str:
    """The signed query string, exactly as it was hashed, plus ``&w_rid=...``."""
    return urllib.parse.urlencode(wbi_sign(params, img_key, sub_key, wts), quote_via=_quote)


# -- open platform signing ------------------------------------------------------------------


def open_platform_headers(
    body: bytes,
    access_key_id: str,
    access_key_secret: SecretStr | str,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers for one open-platform request, ``Authorization`` being the HMAC-SHA256 (hex) of
    the ``x-bili-*`` headers sorted by name, as ``name:value`` lines joined with newlines."""
    secret = (
        access_key_secret.get_secret_value()
        if isinstance(access_key_secret, SecretStr)
        else access_key_secret
    )
    bili = {
        "x-bili-accesskeyid": access_key_id,
        "x-bili-content-md5": hashlib.md5(body).hexdigest(),
        "x-bili-signature-method": "HMAC-SHA256",
        "x-bili-signature-nonce": nonce if nonce is not None else secrets.token_hex(16),
        "x-bili-signature-version": "1.0",
        "x-bili-timestamp": str(int(time.time()) if timestamp is None else int(timestamp)),
    }
    to_sign = "\n".join(f"{k}:{bili[k]}" for k in sorted(bili))
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Accept": "application/json",
        "Content-Type": "application/json",
        **bili,
        "Authorization": signature,
    }


def cookie_from_env(environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """``BILIBILI_COOKIE`` (a whole Cookie header), else ``BILIBILI_SESSDATA`` (plus the optional
    ``BILIBILI_BILI_JCT`` and ``BILIBILI_BUVID3``), else None."""
    env = os.environ if environ is None else environ
    if env.get("BILIBILI_COOKIE", "").strip():
        return SecretStr(env["BILIBILI_COOKIE"].strip())
    parts = [
        f"{name}={env[var].strip()}"
        for name, var in (
            ("SESSDATA", "BILIBILI_SESSDATA"),
            ("bili_jct", "BILIBILI_BILI_JCT"),
            ("buvid3", "BILIBILI_BUVID3"),
        )
        if env.get(var, "").strip()
    ]
    return SecretStr("; ".join(parts)) if any(p.startswith("SESSDATA=") for p in parts) else None


def cookie_value(cookie: str, name: str) -> str | None:
    for part in cookie.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


# -- the websocket session shared by both modes ---------------------------------------------
