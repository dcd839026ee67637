"""The embedded default brain: answers from the product catalog with its exact figures.

It recognises what a question is about (price, stock, shipping, features, a greeting) in
English and Chinese, finds the product by name or alias, and answers with the catalog's own
numbers. Text streams out in small deltas, like an LLM's tokens, so the rest of the pipeline
runs the same code path whichever brain is configured. The catalog itself (data, loading,
live reloading) is ``streambot.catalog``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from streambot.catalog import Catalog, LiveCatalog, Product, format_price
from streambot.config import CatalogBrainConfig
from streambot.intents import detect_intents, is_greeting
from streambot.lang import detect_lang
from streambot.text import UNSPACED
from streambot.turn import Turn, TurnKind


class CatalogAnswerer:
    """Pure text logic: question in, complete answer out (no streaming, no I/O)."""

    def __init__(self, catalog: Catalog, host_name: str = "Mia") -> None:
        self.catalog = catalog
        self.host_name = host_name
        self._last_product: Product | None = None

    def answer(self, text: str, name: str | None = None, lang: str | None = None) -> str:
        """``name``: the viewer's name as triage allows it to be said (None: "friend")."""
        lang = lang or detect_lang(text)
        products = self.catalog.find(text)
        intents = detect_intents(text, lang)
        last = self._last_product and self.catalog.by_id(self._last_product.id)  # reloaded?
        if not products and intents and last is not None:
            products = [last]  # a follow-up about the product just discussed
        if products:
            self._last_product = products[0]
            return self._about(products[0], intents or ["price", "stock"], lang)
        if intents:
            return self._which_product(lang)
        if is_greeting(text, lang):
            return self._greeting(name, lang)
        return self._fallback(name, lang)

    def pitch(self, product_id: str, lang: str = "en") -> str:
        product = self.catalog.by_id(product_id) or self.catalog.product[0]
        self._last_product = product
        if lang == "zh":
            points = "，".join(product.points_zh[:2])
            return (
                f"给大家推荐一下{product.name_zh}：{points}。"
                f"现在只要{format_price(product, 'zh')}，{product.shipping_zh}。有问题随时问我！"
            )
        points = " and ".join(product.points[:2])
        return (
            f"While you're here, check out the {product.name}: {points}. "
            f"It's just {format_price(product, 'en')} and {product.shipping}. Ask me anything!"
        )

    def _about(self, product: Product, intents: list[str], lang: str) -> str:
        parts = [self._fact(product, intent, lang) for intent in intents]
        return ("" if lang == "zh" else " ").join(parts)

    def _fact(self, p: Product, intent: str, lang: str) -> str:
        zh = lang == "zh"
        if intent == "price":
            price = format_price(p, lang)
            return f"{p.name_zh}的价格是{price}。" if zh else f"The {p.name} is {price}."
        if intent == "stock":
            if p.stock == 0:
                if zh:
                    return f"{p.name_zh}暂时卖完了，{p.restock_zh or '很快'}补货。"
                return f"The {p.name} is sold out right now, back {p.restock or 'soon'}."
            if zh:
                return f"{p.name_zh}现在有货，还剩{p.stock}件。"
            return f"Yes, the {p.name} is in stock: {p.stock} left."
        if intent == "shipping":
            return f"{p.name_zh}{p.shipping_zh}。" if zh else f"The {p.name} {p.shipping}."
        points = (p.points_zh if zh else p.points)[:2]
        if zh:
            return f"{p.name_zh}的亮点：{'，'.join(points)}。"
        return f"The {p.name}: {' and '.join(points)}."

    def _which_product(self, lang: str) -> str:
        if lang == "zh":
            names = "、".join(p.name_zh for p in self.catalog.product)
            return f"你想问哪一款呢？今天有{names}。"
        names = ", ".join(p.name for p in self.catalog.product)
        return f"Which product do you mean? Today we have {names}."

    def _greeting(self, name: str | None, lang: str) -> str:
        if lang == "zh":
            return f"{name or '朋友'}，你好！欢迎来到直播间，我是{self.host_name}。"
        return f"Hi {name or 'friend'}, welcome! I'm {self.host_name}, ask me anything."

    def _fallback(self, name: str | None, lang: str) -> str:
        if lang == "zh":
            return "谢谢你的留言！想了解哪款产品的价格、库存或发货，尽管问我。"
        who = name or "friend"
        return f"Thanks for the message, {who}! Ask me about prices, stock or shipping."


_DELTA = re.compile(rf"[{UNSPACED}]{{1,2}}|\S+\s*|\s+")


def _deltas(text: str) -> list[str]:
    """Cut text into token-sized deltas: words with their spaces, or two CJK characters."""
    return _DELTA.findall(text)


class CatalogBrain:
    """The Brain role on the catalog: every turn is answered from the catalog as it is now."""

    def __init__(self, config: CatalogBrainConfig, live: LiveCatalog | None = None) -> None:
        """``live``: the catalog to answer from (default: ``config.path``'s, followed live)."""
        self._config = config
        self.live = live if live is not None else LiveCatalog(config.path or None)
        self.answerer = CatalogAnswerer(self.live.current, config.host_name)

    def _answerer(self) -> CatalogAnswerer:
        """The answerer, on the catalog as it is now (reading it checks the file)."""
        self.answerer.catalog = self.live.current
        return self.answerer

    def pitch_topics(self) -> list[str]:
        """The idle pitch schedule of the catalog as it is now."""
        return self.live.current.pitch_topics()

    def text_for(self, turn: Turn) -> str:
        answerer = self._answerer()
        if turn.kind == TurnKind.PITCH:
            topic = turn.topic or answerer.catalog.pitch_topics()[0]
            return answerer.pitch(topic, turn.lang)
        if turn.kind == TurnKind.SCRIPT:  # the script's line, as authored
            return turn.script.text if turn.script is not None else ""
        assert turn.message is not None
        return answerer.answer(turn.message.text, turn.message.spoken_name, turn.lang)

    async def reply(self, turn: Turn) -> AsyncIterator[str]:
        interval = self._config.token_interval_ms / 1000.0
        for delta in _deltas(self.text_for(turn)):
            yield delta
            await asyncio.sleep(interval)
