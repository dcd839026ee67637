"""Who may talk to the daemon's HTTP servers (the panel, ``POST /chat``, ``/metrics``): the
one place that decides what is this computer and which names a request may use.

DNS rebinding: a page on a name its owner controls (``rebind.attacker.test``) makes that name
resolve to 127.0.0.1, and the browser then takes a server on this computer for the page's own
origin: same-origin requests, no CORS, no foreign ``Origin``. What gives it away is ``Host``,
which still names the page's domain. So each server answers 421 unless ``Host`` is this
computer (``localhost`` or a loopback address), the address the server is bound to, or a name
the operator listed (``allowed_hosts``); a server bound to every address (0.0.0.0, ::) also
answers to any address typed in, as an address cannot be rebound.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from streambot.logs import RefusalSummary

log = logging.getLogger(__name__)

_WILDCARDS = {"0.0.0.0", "::"}
# A Host header: a name or IPv4 address, or an IPv6 address in brackets; then an optional port.
_HOST = re.compile(r"(?:\[(?P<v6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::[0-9]{1,5})?")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, no port; IPv6 with or without brackets) is this
    computer: the exact name ``localhost`` or a loopback address, never a name that merely
    starts with ``127.`` (``127.0.0.1.nip.io`` is someone's DNS)."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    address = _address(name)
    return name == "localhost" or (address is not None and address.is_loopback)


def host_name(header: str) -> str | None:
    """The name or address a ``Host`` header names (lower case, no port, no brackets), or
    None when it is not a host."""
    match = _HOST.fullmatch(header.strip().lower())
    return None if match is None else match["v6"] or match["name"]


def check_host_name(name: str) -> str:
    """``name`` as an entry of ``allowed_hosts``: a DNS name or an address, nothing else."""
    plain = name.strip().lower().rstrip(".")
    if _address(plain.strip("[]")) is None and not _NAME.fullmatch(plain):
        raise ValueError(
            f"{name!r} is not a host name: give the name alone, e.g. 'studio.local' "
            "(no scheme, port, path or wildcard)"
        )
    return plain.strip("[]")


def _canonical(host: str) -> str:
    address = _address(host)
    return host if address is None else str(address)


class HostRule:
    """The ``Host`` values a server bound to ``bind`` answers to (see the module docstring)."""

    def __init__(self, bind: str, allowed: Iterable[str] = ()) -> None:
        self.wildcard = bind in _WILDCARDS
        bound = _canonical(bind.strip().lower().strip("[]"))
        self.names = {bound, *(_canonical(check_host_name(n)) for n in allowed)}

    def allows(self, header: str | None) -> bool:
        name = host_name(header) if header else None
        if name is None:  # missing or malformed: every browser sends a well-formed one
            return False
        name = _canonical(name)
        if is_loopback(name) or name in self.names:
            return True
        return self.wildcard and _address(name) is not None


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """Whether a request's ``Origin`` lets it in: none (not a web page: curl, a script), a
    page on this computer (a loopback origin), or a page of this very server (the origin's
    host and port are the request's ``Host``, which the Host rule has let in)."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        hostname = parts.hostname or ""
    except ValueError:  # not a URL at all
        return False
    if not parts.scheme or not hostname:  # "null": a sandboxed page or a file
        return False
    return is_loopback(hostname) or (host is not None and parts.netloc.lower() == host.lower())


class Guard:
    """One server's door: the Host rule as aiohttp middleware, and every refusal the server
    makes summed up in its log (the first of each window has a line of its own, the rest are
    counted), so a flood of refused requests cannot flood the log."""

    def __init__(
        self,
        server: str,
        bind: str,
        allowed_hosts: Iterable[str] = (),
        logger: logging.Logger = log,
    ) -> None:
        self.server, self.logger = server, logger
        self.hosts = HostRule(bind, allowed_hosts)
        self.refusals = RefusalSummary(logger, f"{server} request(s)", lines=1)

    def application(self, middlewares: Iterable = (), **kwargs: Any) -> web.Application:
        """An aiohttp application behind this guard (``middlewares``: more, after it)."""
        app = web.Application(middlewares=[self._host_middleware, *middlewares], **kwargs)
        app.on_cleanup.append(self._flush)
        return app

    def refused(self, reason: str, message: str, *args: object) -> None:
        """Log a refusal, or count it for the summary when the window has had its line."""
        if self.refusals.admit(reason):
            self.logger.warning(message, *args)

    async def _flush(self, _: web.Application) -> None:
        self.refusals.flush()  # the last window's refusals, summed up

    @web.middleware
    async def _host_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not self.hosts.allows(host):
            shown = (host or "")[:100]
            self.refused("unknown host", _REFUSED_HOST, self.server, shown)
            return web.json_response({"error": _UNKNOWN_HOST}, status=421)
        return await handler(request)


_REFUSED_HOST = "%s: refused a request for host %r, not this computer's (a DNS rebinding page?)"
_UNKNOWN_HOST = (
    "this server answers only to this computer's names and addresses and to its allowed_hosts"
)
