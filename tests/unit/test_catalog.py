"""The live catalog: the one place where an edited catalog file is noticed."""

from __future__ import annotations

import ast
import logging
import os
from importlib import resources
from pathlib import Path

import pytest

from streambot.catalog import Catalog, CatalogError, LiveCatalog, as_live
from streambot.text import fold

BUNDLED = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")


def edit(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # a visible change


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(BUNDLED, encoding="utf-8")
    return path


def test_reading_the_current_catalog_picks_up_an_edit(path, caplog):
    live = LiveCatalog(path)
    before = live.current
    assert live.current is before  # unchanged file: the same catalog object
    edit(path, BUNDLED.replace("price = 24.50", "price = 19.99"))
    with caplog.at_level(logging.INFO, logger="streambot.catalog"):
        after = live.current
    assert after.by_id("thermo").price == 19.99 and live.current is after
    assert live.version == 1
    assert "catalog reloaded" in caplog.text


def test_a_broken_edit_keeps_the_old_catalog_and_is_reported_once(path, caplog):
    live = LiveCatalog(path)
    old = live.current
    edit(path, BUNDLED.replace("price = 24.50", "price = 'cheap'"))
    with caplog.at_level(logging.ERROR, logger="streambot.catalog"):
        assert live.current is old and live.current is old
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "keeping the old one" in errors[0].getMessage()
    assert "price" in errors[0].getMessage()
    edit(path, BUNDLED.replace("price = 24.50", "price = 21.00"))  # fixed: taken at once
    assert live.current.by_id("thermo").price == 21.0


@pytest.mark.parametrize("broken", [b"\xff\xfe not utf-8", b""])
def test_an_unreadable_or_empty_file_keeps_the_old_catalog(path, broken):
    live = LiveCatalog(path)
    path.write_bytes(broken)
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 5_000_000_000))
    assert live.current.by_id("thermo").price == 24.5
    path.unlink()  # a deleted file, too
    assert live.current.by_id("thermo").price == 24.5


def test_an_editor_that_replaces_the_file_is_seen_even_with_the_same_mtime(path):
    live = LiveCatalog(path)
    mtime = path.stat().st_mtime_ns
    new = path.with_suffix(".new")
    new.write_text(BUNDLED.replace("price = 24.50", "price = 19.99"), encoding="utf-8")
    os.utime(new, ns=(mtime, mtime))
    new.replace(path)  # a new inode under the old name
    assert live.current.by_id("thermo").price == 19.99


def test_each_consumer_learns_of_a_change_whoever_read_it_first(path):
    live = LiveCatalog(path)
    first, second = live.changes(), live.changes()
    assert first() is False
    edit(path, BUNDLED.replace("price = 24.50", "price = 19.99"))
    live.current  # noqa: B018 - another reader reloads it
    assert first() is True and first() is False and second() is True


def test_a_fixed_or_bundled_catalog_never_reloads():
    catalog = Catalog.load()
    fixed = as_live(catalog)
    assert fixed.current is catalog and fixed.reload_if_changed() is False
    assert as_live(fixed) is fixed
    assert LiveCatalog().current.product  # the bundled catalog
    with pytest.raises(CatalogError, match="cannot read"):
        LiveCatalog("/nonexistent/catalog.toml")


def test_find_compares_folded_text():
    catalog = Catalog.load()
    assert [p.id for p in catalog.find("ＴＨＥＲＭＯ bottle?")] == ["thermo"]
    assert [p.id for p in catalog.find("thermo\u200b bottle")] == ["thermo"]
    assert [p.id for p in catalog.find("保温杯多少钱")] == ["thermo"]
    assert catalog.pitch_topics() and set(catalog.pitch_topics()) <= {p.id for p in catalog.product}


def test_mentions_are_the_names_in_the_order_said_the_longest_at_each_place():
    catalog = Catalog.load()
    text = "Is the GRINDER cheaper than the SnowPeak Thermo Bottles? 保温杯呢"
    said = [(fold(text)[start:end], p.id) for start, end, p in catalog.mentions(text)]
    assert said == [
        ("grinder", "aerobrew"),
        ("snowpeak thermo bottles", "thermo"),
        ("保温杯", "thermo"),
    ]
    shop = {"price": 1, "stock": 1, "shipping": "ships today", "shipping_zh": "今天发货"}
    tea = {"id": "tea", "name": "Tea", "name_zh": "茶", **shop}
    box = {"id": "box", "name": "Tea Box", "name_zh": "茶盒", **shop}
    two = Catalog.model_validate({"product": [tea, box]})
    text = "a tea box and tea, 茶盒和茶"
    assert [p.id for _, _, p in two.mentions(text)] == ["box", "tea", "box", "tea"]


@pytest.mark.parametrize("module", ["catalog", "text", "intents", "lang", "money"])
def test_the_shared_modules_are_leaves(module):
    """Below triage, the brain and the stage: they import none of those (nor the app)."""
    source = Path(__file__).parents[2] / "streambot" / f"{module}.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.startswith("streambot")}
    assert ours <= {"streambot.text", "streambot.money"}, ours
