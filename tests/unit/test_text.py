"""The shared text rules (streambot.text): folding, normalising, and what counts as CJK."""

from __future__ import annotations

import pytest

from streambot import screening
from streambot.lang import detect_lang
from streambot.text import CharTable, fold, has_cjk, is_cjk, is_format, normalise


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Buy  Followers\tNOW", "buy followers now"),  # case, whitespace runs
        ("ｂｕｙ ＦＯＬＬＯＷＥＲＳ！", "buy followers!"),  # full-width forms
        ("ℌ𝔢𝔩𝔩𝔬 ① ﬁne", "hello 1 fine"),  # other compatibility forms
        ("bu\u200by fol\u200dlow\u00ader\u2060s \u202eok", "buy followers ok"),  # zero-width, bidi
        ("Straße", "strasse"),  # case folding, not just lower-casing
        ("  保温杯  多少钱？ ", "保温杯 多少钱?"),  # CJK kept, full-width punctuation made plain
        ("", ""),
    ],
)
def test_fold(text, folded):
    assert fold(text) == folded


def test_fold_takes_the_ascii_shortcut_to_the_same_result():
    for text in ["Hello  World", "a\tb\nc", "MiXeD 123 !?"]:
        assert fold(text) == fold(text + "\u200b")  # the slow path, same answer


def test_screening_folds_with_the_same_rules_and_maps_look_alikes():
    assert screening.screen_fold("ｂｕ\u200bＹ") == fold("ｂｕ\u200bＹ") == "buy"
    # a Cyrillic "о"
    assert screening.screen_fold("fоllow") == "follow" and fold("fоllow") == "fоllow"
    assert screening.screen_fold("ВUY") == "buy"  # upper-case look-alike, mapped before folding


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("a\x00b\x1b[31mc\u202ed\nnext\tline", "ab[31mcd next line"),
        ("line\u2028break\u2029para\x85end", "line break para end"),
        ("ａｎｎ  Ｌｅｅ", "ann Lee"),  # width made plain, case kept
        ("private\ue000use", "privateuse"),
        ("保温杯\u200b多少钱？", "保温杯多少钱?"),
        ("plain text", "plain text"),
    ],
)
def test_normalise(text, normal):
    assert normalise(text) == normal


@pytest.mark.parametrize(
    "char",
    [
        "中",  # U+4E2D, the unified block
        "\u4e00",
        "\u9fff",
        "\u3400",  # Extension A
        "\u4dbf",
        "\uf900",  # compatibility ideographs
        "\ufa6d",
        "\U00020000",  # Extension B
        "\U0002a700",  # Extension C
        "\U0002ebf0",  # Extension I
        "\U0002f800",  # compatibility supplement
        "\U00030000",  # Extension G
        "\U00031350",  # Extension H
    ],
)
def test_cjk_ideographs(char):
    assert is_cjk(char) and has_cjk(f"abc{char}def")


@pytest.mark.parametrize(
    "char",
    ["a", "Ａ", "1", "？", "。", "あ", "カ", "한", "\u2e80", "\u4dc0", "\ufb00", "\U0001f600", ""],
)
def test_not_cjk_ideographs(char):
    """Latin, full-width Latin, CJK punctuation, kana, Hangul, radicals, Yijing symbols,
    Latin ligatures, emoji."""
    assert not is_cjk(char) and not has_cjk(char)


def test_mixed_scripts():
    assert has_cjk("how much is the 保温杯?") and detect_lang("how much is the 保温杯?") == "zh"
    assert not has_cjk("naïve café 🙂 カタカナ") and detect_lang("naïve café") == "en"
    assert not is_cjk("中文")  # one character at a time


def test_format_characters():
    assert all(is_format(c) for c in "\u200b\u200c\u200d\u2060\u00ad\u202e\ufeff")
    assert not any(is_format(c) for c in "a 中\n")


def test_char_table_is_bounded():
    seen: list[str] = []
    table = CharTable(lambda c: seen.append(c) or c.upper(), cap=3)
    assert "abcdef".translate(table) == "ABCDEF"
    assert len(table) == 3 and "abcdef".translate(table) == "ABCDEF"
    assert seen.count("a") == 1 and seen.count("f") == 2  # remembered up to the cap only
