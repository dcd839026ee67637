"""What the panel shows, gathered from the running show: a JSON-ready dict.

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
    from streambot.controls import ShowControls

RECENT = 10
QUEUE = 20
LATENCY_ANSWERS = 200  # the latency shown is over the latest answers, not the whole record


def _now(show: ShowControls) -> dict[str, Any] | None:
    turn = show.current_turn()
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


def _queue(show: ShowControls) -> list[dict[str, Any]]:
    queued = show.queued()[:QUEUE]
    reasons = show.store.statuses([m.id for m in queued if m.id is not None])
    rows = []
    for m in queued:
        decision, reason = reasons.get(m.id, ("", "")) if m.id is not None else ("", "")
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


def _decisions(show: ShowControls) -> list[dict[str, Any]]:
    return [
        {"id": d.message_id, "decision": d.decision, "reason": d.reason, "text": normalise(d.text)}
        for d in show.store.recent_decisions(RECENT)
    ]


def _recent(show: ShowControls) -> list[dict[str, Any]]:
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
        for t in show.store.recent_turns(RECENT)
    ]


def _latency(show: ShowControls) -> dict[str, float | None]:
    frames = latency_rows(show.store, recent=LATENCY_ANSWERS).get("first frame at sink", [])
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


def panel_state(show: ShowControls) -> dict[str, Any]:
    script = show.script()
    return {
        "health": show.health(),
        "now": _now(show),
        "queue": _queue(show),
        "decisions": _decisions(show),
        "recent": _recent(show),
        "latency_ms": _latency(show),
        "script": None if script is None else _script(script),
        "taken_over": show.taken_over(),
        "products": [_product(p) for p in show.catalog.current.product],
    }
