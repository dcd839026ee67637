"""Log lines: chat strings cannot forge lines, hide text with bidi overrides, or leak secrets."""

from __future__ import annotations

import logging

from streambot.events import ChatMessage
from streambot.ingest import Ingest
from streambot.logs import register_secret, setup_logging
from streambot.record import Record


def test_a_chat_name_cannot_forge_a_log_line_or_reorder_it(fast_config, capsys):
    from streambot.app import App

    setup_logging("DEBUG")  # refused messages are logged at DEBUG, one line each
    try:
        app = App(fast_config)
        hostile = ChatMessage(
            "http",
            "ann\n2026-12-02 06:00:00,000 INFO streambot.host: operator: !say x\r",
            "hello \x00 \u202edlrow\u202c \u2066x\u2069 \x1b[31mred",
        )
        assert isinstance(app.ingest, Ingest)
        app.ingest.accept(hostile)
        app.store.close()
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "#1" in line or "operator" in line]
    assert len(lines) == 1, err  # one record, one line: the forged line is not a line
    (line,) = lines
    assert "ann\\x0a2026" in line and "\\x0d" in line
    for raw in ("\x00", "\u202e", "\u202c", "\u2066", "\u2069", "\x1b", "\r"):
        assert raw not in err


def test_secrets_are_masked_in_log_lines(capsys):
    setup_logging("INFO")
    try:
        register_secret("s3cr3t-token-value")
        logging.getLogger("streambot.test").info("user pasted %s", "s3cr3t-token-value\n")
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert "s3cr3t" not in err and "***\\x0a" in err


def test_a_spam_flood_is_summarised_not_logged_line_by_line(fast_config, caplog):
    from streambot.app import App

    app = App(fast_config)
    app.ingest.refusals.every_s = 3600.0
    with caplog.at_level(logging.INFO, logger="streambot.ingest"):
        for i in range(200):
            app.ingest.accept(ChatMessage("http", f"bot{i}", "buy followers at spam.com"))
        app.ingest.accept(ChatMessage("http", "ann", "how much is the lamp?"))
        app.ingest.refusals.flush()
    assert len(Record(app.store).messages()) == 201  # each one stored
    app.store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5 + 1 + 1  # five refusals shown, ann's question, one summary
    assert all(line.startswith("rejected #") for line in lines[:5])
    assert lines[5].startswith("accepted #201 from http/ann")
    assert lines[6].startswith("refused 195 more message(s)")
    assert lines[6].endswith(": 195 banned word")
