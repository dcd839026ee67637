"""Editing one product's price or stock from the panel, written back to the catalog file.

The edit is validated exactly as a hand edit of the file would be (the whole edited catalog
through ``Catalog.model_validate``), then written atomically (a temporary file in the same
folder, fsynced, renamed over the old one) so a crash never leaves half a catalog and a
restart keeps the edit. tomlkit keeps the file's comments and layout.

The file may be open in an editor too. An editor that saves in place, caught half-way, leaves
a half file on disk for a moment; an edit that read it and renamed its result over it would
keep the half for good (the editor's remaining writes go to the replaced file). So an edit is
made only when the file on disk is the one the live catalog loaded, has not just been written
by another program, and is still unchanged the moment before the rename; else it is refused,
saying why, and the file is left as it is.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import TOMLKitError

from streambot.catalog import Catalog, CatalogError, LiveCatalog, Product

# How long a file another program wrote is left alone: an editor saving it in pieces is done
# well within this.
SETTLE_S = 2.0
_EDITABLE = ("price", "stock")


class EditError(ValueError):
    """The edit cannot be made; the message says why (a bad value, an unknown product)."""

    status = 400


class CatalogChanged(EditError):
    """The file on disk is not (or no longer) the catalog in use: try again in a moment."""

    status = 409


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class CatalogEditor:
    """The panel's edits of the live catalog's file."""

    def __init__(self, live: LiveCatalog, settle_s: float = SETTLE_S) -> None:
        self.live, self.settle_s = live, settle_s
        self._written: tuple[int, int, int] | None = None  # the file as our last edit left it

    def edit(self, product_id: str, changes: dict[str, object]) -> Product:
        """Set ``changes`` (``price`` and/or ``stock``) on ``product_id`` in the catalog file;
        the product as the live catalog has it after the edit."""
        if not changes or set(changes) - set(_EDITABLE):
            raise EditError(f"only {', '.join(_EDITABLE)} can be edited here")
        values = {key: _number(key, value) for key, value in changes.items()}
        if self.live.path is None:
            raise EditError("the bundled catalog cannot be edited: set [brain.catalog] path")
        path = Path(self.live.path)
        text = self._settled_text(path)
        try:
            document = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise EditError(f"catalog {path}: cannot edit: {exc}") from None
        table = next((p for p in document.get("product", []) if p.get("id") == product_id), None)
        if table is None:
            raise EditError(f"no product {product_id!r} in the catalog")
        table.update(values)
        try:
            Catalog.model_validate(document.unwrap())
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'][2:]) or 'value'}: {e['msg']}"
                for e in exc.errors()
            )
            raise EditError(f"{product_id}: {problems}") from None
        _replace_if_unchanged(path, text, tomlkit.dumps(document))
        self._written = _signature(path)
        if not self.live.reload_if_changed():
            raise CatalogError(f"catalog {path}: written, but the reload did not take it")
        edited = self.live.current.by_id(product_id)
        if edited is None:  # another program rewrote the file between the write and the reload
            raise CatalogChanged(f"catalog {path}: {product_id!r} is gone from it; reload the page")
        return edited

    def _settled_text(self, path: Path) -> str:
        """The file's text, when it is the catalog in use and no other program is writing it."""
        signature = _signature(path)
        text = _read(path)
        if not self.live.loaded_from(text):
            self.live.reload_if_changed()  # so that trying again edits what is there now
            raise CatalogChanged(
                f"catalog {path}: the file changed on disk since it was loaded (an editor may "
                "be saving it); reload the page or try again"
            )
        age_s = (time.time_ns() - signature[0]) / 1e9 if signature else 0.0
        if signature != self._written and age_s < self.settle_s:
            raise CatalogChanged(
                f"catalog {path}: another program wrote the file {max(age_s, 0):.1f} s ago (an "
                "editor may still be saving it); try again in a moment"
            )
        return text


def _number(key: str, value: object) -> int | float:
    """``value`` as the product's ``key``: a finite number, a whole one for stock."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EditError(f"{key} must be a number, not {str(value)[:40]!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise EditError(f"{key} must be a finite number, not {value!r}")
    if key == "stock":
        if isinstance(value, float) and not value.is_integer():
            raise EditError(f"stock must be a whole number, not {value!r}")
        return int(value)
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise EditError(f"{key} is out of range") from None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EditError(f"catalog {path}: cannot read: {exc}") from None


def _replace_if_unchanged(path: Path, old: str, new: str) -> None:
    """Write ``new`` over ``path`` atomically, unless the file no longer holds ``old``."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise EditError(f"catalog {path}: cannot write: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(new)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777)
        if _read(path) != old:  # an editor began saving while this edit was made
            raise CatalogChanged(f"catalog {path}: the file changed on disk during the edit")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise EditError(f"catalog {path}: cannot write: {exc}") from None
        raise
