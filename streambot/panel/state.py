"""What the panel shows, gathered from the running app: a JSON-ready dict.

Read on the event loop a few times a second while a panel is open: the in-memory parts (the
current turn, the queue, health) cost microseconds, the store parts are a few indexed
queries on recent rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from streambot.report import latency_rows
from streambot.text import normalise  # viewers' names and text: one line, visible characters

if TYPE_CHECKING:
    from streambot.app import App

RECENT = 10
QUEUE = 20
LATENCY_ANSWERS = 200  # the latency shown is over the latest answers, not the whole record


def _now(app: App) -> dict[str, Any] | None:
    host = app.host
    turn = host.current if host is not None else None
    if turn is None:
        return None
    return {
        "id": turn.id,
        "kind": str(turn.kind),
        "question": normalise(turn.message.text) if turn.message is not None else "",
        "segment": turn.script.segment.id if turn.script is not None else None,
        "spoken": [s.text for s in turn.spoken],  # sentence by sentence, as shown
        "saying": turn.sentences.get(len(turn.spoken), ""),
    }


def _queue(app: App) -> list[dict[str, Any]]:
    queued = app.inbox.queued()[:QUEUE]
    reasons = app.store.statuses([m.id for m in queued if m.id is not None])
    rows = []
    for m in queued:
        decision, reason = reasons.get(m.id, ("", ""))
        rows.append(
            {
                "id": m.id,
                "user": normalise(m.spoken_name or ""),
                "text": normalise(m.text),
                "source": m.source,
                "decision": decision,
                "reason": reason,
            }
        )
    return rows


def _decisions(app: App) -> list[dict[str, Any]]:
    return [
        {"id": d.message_id, "decision": d.decision, "reason": d.reason, "text": normalise(d.text)}
        for d in app.store.recent_decisions(RECENT)
    ]


def _recent(app: App) -> list[dict[str, Any]]:
    return [
        {
            "id": t.id,
            "kind": t.kind,
            "outcome": t.outcome,
            "reply": t.reply or "",
            "segment": t.segment,
            "question": normalise(t.question or ""),
            "first_frame_ms": t.first_frame_ms,
        }
        for t in app.store.recent_turns(RECENT)
    ]


def _latency(app: App) -> dict[str, float | None]:
    frames = latency_rows(app.store, recent=LATENCY_ANSWERS).get("first frame at sink", [])
    if not frames:
        return {"p50": None, "p95": None}
    return {"p50": float(np.percentile(frames, 50)), "p95": float(np.percentile(frames, 95))}


def _script(script) -> dict[str, Any]:
    segments = [s.id for s in script.script.segment]
    return {
        "segment": script.current.id,
        "paused": script.paused,
        "segments": segments,
        "skipped": dict(script.skipped),
    }


def _product(p) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "name_zh": p.name_zh,
        "price": p.price,
        "currency": p.currency,
        "stock": p.stock,
    }


def panel_state(app: App) -> dict[str, Any]:
    host = app.host
    script = host.script if host is not None else None
    return {
        "health": app.health(),
        "now": _now(app),
        "queue": _queue(app),
        "decisions": _decisions(app),
        "recent": _recent(app),
        "latency_ms": _latency(app),
        "script": None if script is None else _script(script),
        "taken_over": bool(host is not None and host.taken_over),
        "products": [_product(p) for p in app.catalog.current.product],
    }
