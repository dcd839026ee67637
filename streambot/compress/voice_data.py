"""What the voice says on this stream, as sentences for distilling its pruned decoder: the
catalog's pitches and answers (prices, stock, shipping), each product's selling points, and
the persona's own lines (greetings, thanks). The last fifth is held out for the fidelity
figures. (Authored sales scripts join these once the stage has them.)"""

from __future__ import annotations

from streambot.catalog import Catalog
from streambot.compress.wav2lip_data import catalog_sentences

PERSONA = {
    "en": (
        "Hi everyone, I'm {host}, welcome to the stream!",
        "Thank you so much for the gift, you're amazing.",
        "Ask me anything about prices, stock or shipping.",
        "I'll check that for you, one moment please.",
        "That one isn't sold here today, but have a look at the rest of the range.",
    ),
    "zh": (
        "大家好，我是{host}，欢迎来到直播间！",
        "谢谢你的礼物，太感谢了。",
        "价格、库存、发货，有问题随时问我。",
        "我帮你查一下，请稍等。",
        "这款今天没有卖，可以看看其他的商品。",
    ),
}


def voice_sentences(catalog: Catalog, lang: str, host_name: str = "Mia") -> list[str]:
    """The stream's sentences in ``lang`` ("en" or "zh"), without repeats, in a fixed order."""
    sentences = list(catalog_sentences(catalog, (lang,)))
    for product in catalog.product:
        sentences += product.points_zh if lang == "zh" else product.points
    sentences += [line.format(host=host_name) for line in PERSONA.get(lang, PERSONA["en"])]
    return list(dict.fromkeys(s for s in sentences if s.strip()))


def held_out(sentences: list[str]) -> tuple[list[str], list[str]]:
    """(training, held out): every fifth sentence is held out, at least one of each."""
    held = sentences[4::5] or sentences[-1:]
    train = [s for s in sentences if s not in held] or sentences
    return train, held
