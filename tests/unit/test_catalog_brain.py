import os
import time
from importlib import resources

import pytest

from streambot.brain.catalog import CatalogAnswerer, CatalogBrain
from streambot.catalog import Catalog, CatalogError, LiveCatalog
from streambot.config import CatalogBrainConfig
from streambot.events import ChatMessage
from streambot.money import format_amount
from streambot.turn import Turn

CATALOG = Catalog.load()


@pytest.mark.parametrize("product", CATALOG.product, ids=lambda p: p.id)
def test_english_price_question_carries_the_catalog_price(product):
    answer = CatalogAnswerer(CATALOG).answer(f"how much is the {product.aliases[0]}?")
    assert f"${product.price:.2f}".replace(".00", "") in answer
    assert product.name in answer


@pytest.mark.parametrize("product", CATALOG.product, ids=lambda p: p.id)
def test_chinese_price_question_carries_the_catalog_price(product):
    answer = CatalogAnswerer(CATALOG).answer(f"{product.aliases_zh[0]}多少钱？")
    amount = f"{product.price:.2f}".removesuffix(".00")
    assert f"{amount}美元" in answer
    assert product.name_zh in answer


def test_stock_shipping_and_features_use_catalog_figures():
    a = CatalogAnswerer(CATALOG)
    thermo, lamp = CATALOG.by_id("thermo"), CATALOG.by_id("lumadesk")
    assert f"{thermo.stock} left" in a.answer("Is the thermo bottle in stock?")
    assert "sold out" in a.answer("any lamps left in stock?") and lamp.restock in a.answer(
        "is the lamp in stock?"
    )
    assert f"还剩{thermo.stock}件" in a.answer("保温杯还有货吗？")
    assert thermo.shipping in a.answer("how long does shipping take for the flask?")
    assert thermo.shipping_zh in a.answer("保温杯几天发货？")
    assert thermo.points[0] in a.answer("what's special about the bottle?")


def test_follow_up_uses_the_product_just_discussed():
    a = CatalogAnswerer(CATALOG)
    a.answer("tell me about the earbuds")
    assert "$129" in a.answer("and how much?")


def test_greeting_fallback_and_unknown_product():
    a = CatalogAnswerer(CATALOG)
    assert a.answer("hello there", "ann").startswith("Hi ann")
    assert "你好" in a.answer("大家好", "小明")
    assert "Which product" in a.answer("how much is it?")
    assert a.answer("nice weather").startswith("Thanks for the message")


def test_a_name_triage_refused_is_said_as_friend():
    a = CatalogAnswerer(CATALOG)
    assert a.answer("hi", None).startswith("Hi friend, welcome")
    assert a.answer("nice weather", None).startswith("Thanks for the message, friend!")
    assert a.answer("你好", None).startswith("朋友，你好")


async def test_reply_streams_small_deltas_that_join_to_the_answer():
    brain = CatalogBrain(CatalogBrainConfig())
    turn = Turn(1, "answer", ChatMessage("t", "ann", "How much is the grinder?"))
    deltas = [d async for d in brain.reply(turn)]
    assert len(deltas) > 3
    assert "".join(deltas) == CatalogAnswerer(CATALOG).answer("How much is the grinder?", "ann")


def test_bad_catalog_is_a_clear_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[product]]\nid = "x"\nname = "X"\n')
    with pytest.raises(CatalogError, match="price"):
        Catalog.load(path)


@pytest.mark.parametrize("bad", ["inf", "nan", "-1.0", "1e12", "-inf"])
def test_a_live_edit_with_an_impossible_price_keeps_the_old_catalog(tmp_path, bad):
    text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    brain = CatalogBrain(CatalogBrainConfig(path=str(path)))
    product = brain.live.current.product[0]
    edited = text.replace(f"price = {product.price}", f"price = {bad}", 1)
    assert edited != text
    path.write_text(edited, encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))  # a new mtime, whatever the clock's grain
    turn = Turn(1, "answer", ChatMessage("t", "ann", f"how much is the {product.name}?"))
    answer = brain.text_for(turn)  # reads the catalog, which checks the file
    assert brain.live.version == 0
    assert format_amount(product.price) in answer and "inf" not in answer and "nan" not in answer


def test_the_catalog_brain_answers_from_the_edited_catalog_at_its_next_turn(tmp_path):
    text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    brain = CatalogBrain(CatalogBrainConfig(), LiveCatalog(path))
    ask = Turn(1, "answer", ChatMessage("t", "ann", "how much is the thermo bottle?"))
    assert "$24.50" in brain.text_for(ask)
    path.write_text(text.replace("price = 24.50", "price = 19.99"), encoding="utf-8")
    os.utime(path, (time.time() + 5, time.time() + 5))
    follow_up = Turn(2, "answer", ChatMessage("t", "ann", "and how much?"))
    assert "$19.99" in brain.text_for(follow_up)  # the product just discussed, as it is now


def test_a_currency_must_be_a_code(tmp_path):
    text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    path = tmp_path / "c.toml"
    path.write_text(text.replace('currency = "USD"', 'currency = "dollars!"', 1), "utf-8")
    with pytest.raises(CatalogError, match="currency"):
        Catalog.load(path)
