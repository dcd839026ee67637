"""Editing one product's price or stock from the panel, written back to the catalog file.

The edit is validated exactly as a hand edit of the file would be (the whole edited catalog
through ``Catalog.model_validate``), then written atomically (a temporary file in the same
folder, fsynced, renamed over the old one) so a crash never leaves half a catalog and a
restart keeps the edit. tomlkit keeps the file's comments and layout.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import tomlkit
from pydantic import ValidationError

from streambot.catalog import Catalog, CatalogError, LiveCatalog


class EditError(ValueError):
    """The edit cannot be made; the message says why (a bad value, an unknown product)."""


def edit_product(live: LiveCatalog, product_id: str, changes: dict[str, object]) -> Catalog:
    """Set ``changes`` (``price`` and/or ``stock``) on ``product_id`` in the catalog file;
    the catalog as it is now after the edit."""
    allowed = {"price", "stock"}
    if not changes or set(changes) - allowed:
        raise EditError(f"only {', '.join(sorted(allowed))} can be edited here")
    if live.path is None:
        raise EditError("the bundled catalog cannot be edited: set [brain.catalog] path")
    path = Path(live.path)
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise EditError(f"catalog {path}: cannot read: {exc}") from None
    table = next((p for p in document.get("product", []) if p.get("id") == product_id), None)
    if table is None:
        raise EditError(f"no product {product_id!r} in the catalog")
    for key, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise EditError(f"{key} must be a number, not {value!r}")
        if key == "stock" and float(value) != int(value):
            raise EditError(f"stock must be a whole number, not {value!r}")
        table[key] = int(value) if key == "stock" else float(value)
    try:
        Catalog.model_validate(document.unwrap())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][2:]) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise EditError(f"{product_id}: {problems}") from None
    _write_atomically(path, tomlkit.dumps(document))
    if not live.reload_if_changed():
        raise CatalogError(f"catalog {path}: written, but the reload did not take it")
    return live.current


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
