"""Writing the builder's torch files so that a crash mid-write never leaves a half file under
the real name (the daemon or a resumed build would load it)."""

from __future__ import annotations

from pathlib import Path

import torch


def save_atomically(payload: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)
    return path
