"""A panel edit of the catalog file never writes back a file an editor is half-way through
saving: it edits only the file the live catalog loaded, settled, and refuses otherwise."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from streambot.catalog import LiveCatalog
from streambot.panel.catalog_edit import CatalogEditor, EditError

BUNDLED = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")


def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(BUNDLED, encoding="utf-8")
    settled(path)
    return path


def settled(path: Path) -> None:
    """The file as if written a minute ago (an editor that finished long since)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 60 * 10**9))


def half_saved(path: Path) -> str:
    """An editor half-way through saving: the file holds 2 of its 4 products so far."""
    parts = BUNDLED.split("[[product]]")
    half = "[[product]]".join(parts[:3])
    path.write_text(half, encoding="utf-8")
    return half


def test_an_edit_while_an_editor_is_half_way_through_saving_is_refused_and_the_file_kept(
    tmp_path,
):
    path = catalog_file(tmp_path)
    editor = CatalogEditor(LiveCatalog(path))
    half = half_saved(path)
    with pytest.raises(EditError, match="changed on disk since it was loaded") as refused:
        editor.edit("thermo", {"price": 0.5})
    assert refused.value.status == 409
    assert path.read_text(encoding="utf-8") == half  # as the editor wrote it, not overwritten


def test_an_edit_right_after_another_program_wrote_the_file_is_refused_until_it_settles(
    tmp_path,
):
    path = catalog_file(tmp_path)
    live = LiveCatalog(path)
    editor = CatalogEditor(live, settle_s=3600)
    half = half_saved(path)
    assert len(live.current.product) == 2  # a reader already took the half file in
    with pytest.raises(EditError, match="an editor may still be saving it"):
        editor.edit("thermo", {"price": 0.5})
    assert path.read_text(encoding="utf-8") == half


def test_edits_of_a_settled_file_are_written_and_one_follows_another(tmp_path):
    path = catalog_file(tmp_path)
    live = LiveCatalog(path)
    editor = CatalogEditor(live, settle_s=30)  # the file was written a minute ago
    editor.edit("thermo", {"price": 21.5})
    thermo = editor.edit("thermo", {"stock": 7})  # its own edit of a moment ago is settled
    assert (thermo.price, thermo.stock) == (21.5, 7) and len(live.current.product) == 4
    text = path.read_text(encoding="utf-8")
    assert "price = 21.5" in text and "stock = 7" in text and "#" in text


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"stock": float("inf")}, "stock must be a finite number"),
        ({"price": float("nan")}, "price must be a finite number"),
        ({"price": 10**400}, "price is out of range"),
        ({"stock": 2.5}, "stock must be a whole number"),
    ],
)
def test_numbers_that_are_no_price_or_stock_are_refused_by_name(tmp_path, changes, problem):
    path = catalog_file(tmp_path)
    before = path.read_text(encoding="utf-8")
    with pytest.raises(EditError, match=problem):
        CatalogEditor(LiveCatalog(path)).edit("thermo", changes)
    assert path.read_text(encoding="utf-8") == before
