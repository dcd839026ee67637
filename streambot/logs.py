"""Logging set-up with a redactor: a secret registered here never reaches a log line."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter

_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "***"


def register_secret(value: str) -> None:
    """Mask ``value`` in every log record from now on (short values are too ambiguous to mask)."""
    if len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


# Control characters (a newline in a user name would forge a log line, NUL and ESC confuse
# terminals), line/paragraph separators and the bidirectional overrides and isolates (which
# make a line read differently from what it holds).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_unsafe(text: str) -> str:
    """``text`` with control and bidi characters written as escapes (one record, one line)."""
    return _UNSAFE.sub(_escape_one, text)


class RedactingFilter(logging.Filter):
    """Masks secrets and escapes unsafe characters in every record's message. Tracebacks
    (``exc_info``) keep their lines: they come from code, not from chat."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it when it formats
            return True
        cleaned = escape_unsafe(redact(message) if _secrets else message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        return True


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log prints every request line; chat bodies are logged by us, redacted.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class RefusalSummary:
    """Rate-limited logging of refusals (a flood of spam, of bad requests): the first
    ``lines`` of every ``every_s`` get a line each, the rest are counted by reason and summed
    up in one line when the window ends, so a wave of them cannot flood the log."""

    def __init__(
        self, logger: logging.Logger, what: str, every_s: float = 10.0, lines: int = 5
    ) -> None:
        self.logger, self.what = logger, what
        self.every_s, self.lines = every_s, lines
        self._shown = 0
        self._counts: Counter[str] = Counter()
        self._since = time.monotonic()

    def admit(self, reason: str) -> bool:
        """Count one refusal; True when it may have a log line of its own."""
        now = time.monotonic()
        if now - self._since >= self.every_s:
            self.flush(now)
        if self._shown < self.lines:
            self._shown += 1
            return True
        self._counts[reason] += 1
        return False

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._counts:
            total = sum(self._counts.values())
            reasons = ", ".join(f"{n} {r}" for r, n in self._counts.most_common(6))
            self.logger.info(
                "refused %d more %s in the last %.0fs: %s",
                total,
                self.what,
                now - self._since,
                reasons,
            )
        self._counts.clear()
        self._shown, self._since = 0, now
