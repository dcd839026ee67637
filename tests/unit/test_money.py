"""Money said right: one currency table behind what the catalog writes, the guard reads and the
voice says, and no price finer than its currency can be paid."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import pytest

from streambot.brain.guard import ReplyGuard
from streambot.catalog import Catalog, CatalogError, LiveCatalog, format_price
from streambot.panel.catalog_edit import CatalogEditor, EditError
from streambot.voice.normalize import normalize_text

BUNDLED = Catalog.load()


def priced(price: float, currency: str) -> Catalog:
    lamp = BUNDLED.by_id("lumadesk").model_dump()
    return Catalog.model_validate({"product": [{**lamp, "price": price, "currency": currency}]})


def test_a_yen_price_is_said_in_yen_not_yuan():
    lamp = priced(500, "JPY").product[0]
    said = normalize_text(f"The lamp is {format_price(lamp, 'en')} today.")
    assert said == "The lamp is 500 yen today."
    assert format_price(lamp, "zh") == "500日元"
    assert normalize_text("only JPY 500 or 500 JPY") == "only 500 yen or 500 yen"


def test_an_llms_yen_sign_for_a_yen_product_is_corrected_to_yen():
    """ "¥" means the yuan in everything the host says, so it is never voiced as the wrong
    currency: the guard puts the catalog's "500 yen" in its place."""
    catalog = priced(500, "JPY")
    lamp = catalog.product[0]
    verdict = ReplyGuard(catalog).check("The LumaDesk Lamp is just ¥500!", [lamp], "en")
    assert verdict.ok and verdict.text == "The LumaDesk Lamp is just 500 yen!"
    assert ReplyGuard(catalog).check("LumaDesk 护眼台灯只要500日元", [lamp], "zh").text == (
        "LumaDesk 护眼台灯只要500日元"
    )


@pytest.mark.parametrize("currency", ["USD", "CNY", "EUR", "GBP", "JPY", "CAD"])
def test_the_catalogs_own_price_passes_the_guard_unchanged_in_every_currency(currency):
    catalog = priced(89 if currency == "JPY" else 89.5, currency)
    lamp = catalog.product[0]
    for lang in ("en", "zh"):
        sentence = f"The LumaDesk Lamp is {format_price(lamp, lang)}."
        verdict = ReplyGuard(catalog).check(sentence, [lamp], lang)
        assert verdict.ok and verdict.text == sentence, (sentence, verdict)


@pytest.mark.parametrize(
    ("price", "currency"), [(0.004, "USD"), (89.995, "USD"), (500.5, "JPY"), (1.234, "EUR")]
)
def test_a_price_finer_than_its_currency_is_refused_naming_product_and_field(
    tmp_path: Path, price: float, currency: str
):
    text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    path = tmp_path / "catalog.toml"
    path.write_text(
        text.replace(
            'price = 89.99\ncurrency = "USD"', f'price = {price}\ncurrency = "{currency}"'
        ),
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as error:
        Catalog.load(path)
    message = str(error.value)
    assert "'aerobrew'" in message and "price" in message and str(price) in message


@pytest.mark.parametrize("price", [0.004, 89.995])
def test_the_panel_refuses_a_price_finer_than_a_cent(tmp_path: Path, price: float):
    path = tmp_path / "catalog.toml"
    shutil.copy(resources.files("streambot.assets").joinpath("catalog.toml"), path)
    live = LiveCatalog(path)
    with pytest.raises(EditError) as error:
        CatalogEditor(live, settle_s=0).edit("aerobrew", {"price": price})
    assert str(error.value).startswith("aerobrew: price:") and str(price) in str(error.value)
    assert live.current.by_id("aerobrew").price == 89.99  # the file is untouched


def test_whole_yen_and_cents_are_fine():
    assert priced(500, "JPY").product[0].price == 500
    assert priced(89.99, "USD").product[0].price == 89.99
    assert priced(24.5, "USD").product[0].price == 24.5
