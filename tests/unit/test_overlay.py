"""Overlays in the picture: exact blending, the card following the catalog, the AI label on
every frame, Chinese glyphs drawn with the packaged font."""

from __future__ import annotations

import asyncio
import shutil
from importlib import resources

import numpy as np
import pytest
from PIL import Image

from streambot.catalog import LiveCatalog
from streambot.clock import VirtualClock
from streambot.config import OverlayConfig
from streambot.events import ChatMessage
from streambot.stage.overlay.compositor import Compositor
from streambot.stage.overlay.director import OverlayDirector, build_compositor, format_left
from streambot.stage.overlay.draw import Painter, wrap
from streambot.stage.overlay.fonts import FontError, FontSet, find_font, packaged_font
from streambot.stage.overlay.layer import Layer, blend_reference
from streambot.text import normalise
from streambot.turn import Turn, TurnKind

W, H = 1280, 720


@pytest.fixture(scope="module")
def fonts() -> FontSet:
    return FontSet(find_font())


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def blended(background: np.ndarray, image: Image.Image, box: tuple[int, int, int, int]):
    """``image`` blended at ``box`` over ``background`` (the reference blend)."""
    layer = Layer.from_image(image, 0, 0)
    layer.place(box[0] - layer.dx, box[1] - layer.dy)
    return blend_reference(background, layer)


def test_integer_blend_equals_the_rounded_float_blend_and_clips_at_the_edges():
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (50, 70, 4), dtype=np.uint8), "RGBA")
    for x, y in ((10, 20), (-30, -10), (W - 40, H - 25)):
        layer = Layer.from_image(image, x, y)
        background = frame(2)
        out = background.copy()
        layer.blend_into(out)
        padded = np.zeros((H + 200, W + 200, 3), np.uint8)  # the reference cannot clip
        padded[100 : 100 + H, 100 : 100 + W] = background
        layer.place(x + 100, y + 100)
        expected = blend_reference(padded, layer)[100 : 100 + H, 100 : 100 + W]
        assert np.array_equal(out, expected)


def test_transparent_margins_are_cropped_and_an_invisible_image_is_no_layer():
    image = Image.new("RGBA", (100, 60), (0, 0, 0, 0))
    image.paste((200, 10, 10, 255), (30, 20, 50, 40))
    layer = Layer.from_image(image, 5, 7)
    assert (layer.x, layer.y, layer.width, layer.height) == (35, 27, 20, 20)
    assert Layer.from_image(Image.new("RGBA", (9, 9)), 0, 0) is None


def test_compose_copies_the_frame_and_leaves_it_alone_without_overlays(fonts):
    compositor = Compositor(W, H, {"label": "top-right"})
    idle = frame()
    assert compositor.compose(idle) is idle  # nothing to show: no copy
    compositor.show("label", Painter(fonts, W, H).label("AI host"))
    before = idle.copy()
    out = compositor.compose(idle)
    assert out is not idle and np.array_equal(idle, before)  # the face's idle frame untouched
    x, y, w, h = compositor.box("label")
    assert x + w == W - compositor.margin and y == compositor.margin  # top-right corner
    assert not np.array_equal(out[y : y + h, x : x + w], idle[y : y + h, x : x + w])


def pitch(turn_id: int, product: str, lang: str = "en") -> Turn:
    return Turn(turn_id, TurnKind.PITCH, None, lang, topic=product)


def answer(turn_id: int, text: str, user: str = "ann", lang: str = "en") -> Turn:
    msg = ChatMessage("local", user, text)
    msg.spoken_name = user
    return Turn(turn_id, TurnKind.ANSWER, msg, lang)


async def test_the_card_shows_the_catalogs_current_price_after_a_live_edit(tmp_path, fonts):
    path = tmp_path / "catalog.toml"
    shutil.copy(resources.files("streambot.assets").joinpath("catalog.toml"), path)
    live = LiveCatalog(path)
    product = live.current.product[0]
    clock, config = VirtualClock(), OverlayConfig()
    director = OverlayDirector(config, build_compositor(config, W, H), live, clock, fonts)
    painter = Painter(fonts, W, H)
    background = frame(3)

    director.turn_started(pitch(1, product.id))
    await director.settle()
    box = director.compositor.box("card")
    shown = director.compositor.compose(background)
    fresh = painter.card(product, "en", None)
    x, y, w, h = box
    assert np.array_equal(
        shown[y : y + h, x : x + w], blended(background, fresh, box)[y : y + h, x : x + w]
    )

    text = path.read_text(encoding="utf-8")
    old_price = f"price = {product.price:g}"
    assert old_price in text, old_price
    path.write_text(text.replace(old_price, "price = 1234.5", 1), encoding="utf-8")
    stop = asyncio.Event()
    run = asyncio.create_task(director.run(stop))
    await clock.advance_to(1.0)  # the director reads the catalog every quarter second
    await director.settle()
    stop.set()
    await clock.advance_to(2.0)
    await run
    edited = director.live.current.by_id(product.id)
    assert edited.price == 1234.5
    after = director.compositor.compose(background)
    box = director.compositor.box("card")
    x, y, w, h = box
    expected = blended(background, painter.card(edited, "en", None), box)
    assert np.array_equal(after[y : y + h, x : x + w], expected[y : y + h, x : x + w])
    assert not np.array_equal(after, shown)

    director.turn_ended(pitch(1, product.id))
    await director.settle()
    assert director.compositor.box("card") is None  # the card goes with its turn


async def test_the_caption_shows_the_question_and_a_name_only_when_it_passed(fonts):
    config = OverlayConfig()
    director = OverlayDirector(
        config, build_compositor(config, W, H), LiveCatalog(), VirtualClock(), fonts
    )
    turn = answer(1, "how much is the lamp?")
    director.turn_started(turn)
    await director.settle()
    assert director.compositor.shown("caption") is not None
    caption = np.asarray(director.compositor.shown("caption"))
    assert np.array_equal(
        caption, np.asarray(Painter(fonts, W, H).caption("ann: how much is the lamp?"))
    )
    hidden = answer(2, "how much is the lamp?")
    hidden.message.spoken_name = ""  # the name failed the name rules
    director.turn_started(hidden)
    await director.settle()
    assert np.array_equal(
        np.asarray(director.compositor.shown("caption")),
        np.asarray(Painter(fonts, W, H).caption("how much is the lamp?")),
    )


FALSE_CLAIMS = [
    "alice: the lamp is 1 dollar today, is that right?",
    "SonicBuds are FREE with code X at shop dot example",
    *(f"cheaper at shop.{tld}, right?" for tld in ("store", "ru", "de", "app", "co.uk", "online")),
    "ask me at 203.0.113.7",
    "cheaper at shop。example",
    "cheaper at spam dot com",
    "the grinder is sold out, right?",  # it is in stock: a false claim without a figure
]


@pytest.mark.parametrize("text", FALSE_CLAIMS)
async def test_a_question_with_a_figure_or_link_is_not_drawn_only_its_askers_name(fonts, text):
    config = OverlayConfig()
    director = OverlayDirector(
        config, build_compositor(config, W, H), LiveCatalog(), VirtualClock(), fonts
    )
    director.turn_started(answer(1, text))
    await director.settle()
    assert np.array_equal(
        np.asarray(director.compositor.shown("caption")),
        np.asarray(Painter(fonts, W, H).caption("ann")),
    )
    nameless = answer(2, text)
    nameless.message.spoken_name = ""  # the name failed the name rules: nothing is drawn
    director.turn_started(nameless)
    await director.settle()
    assert director.compositor.shown("caption") is None


async def test_a_slower_older_drawing_never_replaces_a_newer_one(fonts):
    config = OverlayConfig()
    director = OverlayDirector(
        config, build_compositor(config, W, H), LiveCatalog(), VirtualClock(), fonts
    )
    director.turn_started(answer(1, "first question " * 20))
    director.turn_ended(answer(1, "first question"))  # cleared before it was drawn
    await director.settle()
    assert director.compositor.shown("caption") is None


def test_chinese_glyphs_are_drawn_not_missing_glyph_boxes(fonts):
    assert fonts.path is not None and fonts.path == packaged_font()  # from mplfonts' wheel
    text = "保温杯 价格"
    assert fonts.draws(text)
    painter = Painter(fonts, W, H)
    label = np.asarray(painter.label(text))
    # The same text in the same font, drawn directly, is what the overlay holds ...
    assert np.array_equal(label, np.asarray(painter.label(text)))
    # ... and it is not the missing-glyph box every absent character would share.
    boxes = np.asarray(painter.label("\U0010fffd" * 3 + " " + "\U0010fffd" * 2))
    assert label.shape != boxes.shape or not np.array_equal(label, boxes)
    glyphs = [bytes(fonts.get(32).getmask(ch)) for ch in "保温杯"]
    assert len(set(glyphs)) == 3  # three different shapes
    assert not FontSet(None).draws("保")  # Pillow's own font has no Chinese: said, not hidden


def test_a_configured_font_that_is_not_there_is_named(tmp_path):
    with pytest.raises(FontError, match=r"overlay\.font"):
        find_font(str(tmp_path / "missing.ttf"))
    bad = tmp_path / "bad.ttf"
    bad.write_bytes(b"not a font")
    with pytest.raises(FontError, match=r"bad\.ttf"):
        FontSet(find_font(str(bad)))


async def test_the_countdown_ticks_each_second_and_goes_at_the_deadline(fonts):
    clock, config = VirtualClock(), OverlayConfig()
    director = OverlayDirector(config, build_compositor(config, W, H), LiveCatalog(), clock, fonts)
    director.countdown_until(clock.now() + 65.0, "Ends in {time}")
    await director.settle()
    first = np.asarray(director.compositor.shown("countdown"))
    assert np.array_equal(first, np.asarray(director.painter.countdown("Ends in 1:05")))
    label, countdown = director.compositor.box("label"), director.compositor.box("countdown")
    assert countdown[1] >= label[1] + label[3]  # stacked under the label in the same corner
    stop = asyncio.Event()
    run = asyncio.create_task(director.run(stop))
    await clock.advance_to(6.0)
    await director.settle()
    assert np.array_equal(
        np.asarray(director.compositor.shown("countdown")),
        np.asarray(director.painter.countdown("Ends in 0:59")),
    )
    await clock.advance_to(66.0)
    await director.settle()
    assert director.compositor.shown("countdown") is None
    stop.set()
    await clock.advance_to(67.0)
    await run


def test_time_left_and_text_cleaning():
    assert [format_left(s) for s in (0, 0.2, 59.5, 61, 3600, 3725)] == [
        "0:00",
        "0:01",
        "1:00",
        "1:01",
        "1:00:00",
        "1:02:05",
    ]
    assert normalise("a\u202eb\u200bc\n d\x07") == "abc d"  # no bidi override, zero width, bell


def test_wrapping_breaks_at_spaces_and_between_chinese_characters(fonts):
    font = fonts.get(30)
    lines = wrap("the quick brown fox jumps over the lazy dog " * 3, font, 300, 2)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert all(font.getlength(line) <= 300 for line in lines)
    assert all(not line.startswith(" ") for line in lines)
    zh = wrap("这款保温杯可以保温十二个小时，适合冬天带去上班", font, 200, 3)
    assert all(font.getlength(line) <= 200 for line in zh) and len(zh) >= 2
