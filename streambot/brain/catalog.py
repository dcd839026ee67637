"""The embedded default brain: answers from the product catalog with its exact figures.

It recognises what a question is about (price, stock, shipping, features, a greeting) in
English and Chinese, finds the product by name or alias, and answers with the catalog's own
numbers: for two products or more which is cheaper (both prices said), for a quantity the
total and the unit price (never more than the stock), and for what the catalog has no field
for (where it ships to, a warranty, colours, size) what the catalog does say, or that the host
will check: it never invents. Text streams out in small deltas, like an LLM's tokens, so
the rest of the pipeline runs the same code path whichever brain is configured. The catalog
itself (data, loading, live reloading) is ``streambot.catalog``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from streambot.catalog import Catalog, LiveCatalog, Product, by_price, format_price
from streambot.config import CatalogBrainConfig, PersonaConfig
from streambot.intents import (
    CHECK_EN,
    CHECK_ZH,
    EN_NUMBERS,
    asked_detail,
    asks_yes_no,
    detect_intents,
    is_greeting,
    price_comparison,
    quantity,
    says_detail,
    zh_numeral,
)
from streambot.lang import detect_lang
from streambot.money import format_money, minor_digits
from streambot.screening import gives_orders
from streambot.text import UNSPACED, fold
from streambot.turn import Turn, TurnKind


class CatalogAnswerer:
    """Pure text logic: question in, complete answer out (no streaming, no I/O)."""

    def __init__(self, catalog: Catalog, host_name: str = "Mia") -> None:
        self.catalog = catalog
        self.host_name = host_name
        self._last_product: Product | None = None

    def follow(self, text: str) -> None:
        """A question someone else answered: the product it names is the one a follow-up
        ("and how many are left?") is about."""
        products, _ = self._read(text)
        if products:
            self._last_product = products[0]

    def answer(self, text: str, name: str | None = None, lang: str | None = None) -> str:
        """``name``: the viewer's name as triage allows it to be said (None: "friend")."""
        return self.answer_and_kind(text, name, lang)[0]

    def answer_and_kind(
        self, text: str, name: str | None = None, lang: str | None = None
    ) -> tuple[str, str]:
        """(the answer, what kind of answer it is): "facts" (a product's price, stock,
        restock, shipping, a total or a comparison: the catalog's own figures), "detail" (what
        the catalog may not say: points that mention it, or "let me check"), "points" (the
        selling points of a product the question names), "which" (which
        product?), "greeting" or "other"."""
        lang = lang or detect_lang(text)
        products, asked = self._read(text)
        intents = detect_intents(asked, lang)
        detail = asked_detail(asked, lang)
        last = self._last_product and self.catalog.by_id(self._last_product.id)  # reloaded?
        named = bool(products)
        if not products and (intents or detail) and last is not None:
            products = [last]  # a follow-up about the product just discussed
        if products:
            self._last_product = products[0]
            said = self._about_products(products, asked, intents, detail, lang)
            if detail is not None:
                return said, "detail"
            if "features" in intents:  # "what's special": only about a product it names
                return said, "points" if named else "other"
            return said, "facts"
        if intents or detail:
            return self._which_product(lang, check=detail is not None), "which"
        if is_greeting(asked, lang):
            return self._greeting(name, lang), "greeting"
        return self._fallback(name, lang), "other"

    def _read(self, text: str) -> tuple[list[Product], str]:
        """The products ``text`` names, in the order it names them (``Catalog.mentions``), and
        the text (folded) with their names blanked: what it asks is read without them ("Pro 2"
        is no quantity, a name is no intent)."""
        folded = fold(text)
        spans = self.catalog.mentions(text)
        products: list[Product] = []
        for _, _, product in spans:
            if all(product.id != p.id for p in products):
                products.append(product)
        blank = bytearray(len(folded))
        for start, end, _ in spans:
            blank[start:end] = b"\x01" * (end - start)
        asked = "".join(" " if b else c for c, b in zip(folded, blank, strict=True))
        return products, asked

    def _about_products(
        self, products: list[Product], asked: str, intents: list[str], detail: str | None, lang: str
    ) -> str:
        way = price_comparison(asked, lang)
        if len(products) > 1 and way and len({p.currency for p in products}) == 1:
            return self._compare(products, way, asks_yes_no(asked, lang), lang)
        first = products[0]
        if detail is not None:
            # where it ships to: the answer says the shipping terms already
            rest = [i for i in intents if not (detail == "destination" and i == "shipping")]
            return self._join(
                [self._detail(first, detail, lang), *self._facts(first, rest, lang)], lang
            )
        count = quantity(asked, lang)
        if count and count > 1 and len(products) == 1 and (not intents or "price" in intents):
            rest = [
                i for i in intents if i != "price" and not (i == "stock" and count > first.stock)
            ]
            return self._join(
                [self._total(first, count, lang), *self._facts(first, rest, lang)], lang
            )
        default = ["price", "stock"] if len(products) == 1 else ["price"]
        return self._join(
            [s for p in products[:3] for s in self._facts(p, intents or default, lang)], lang
        )

    @staticmethod
    def _join(parts: list[str], lang: str) -> str:
        return ("" if lang == "zh" else " ").join(parts)

    def _facts(self, p: Product, intents: list[str], lang: str) -> list[str]:
        return [self._fact(p, intent, lang) for intent in intents]

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

    def _compare(self, products: list[Product], way: str, yes_no: bool, lang: str) -> str:
        """Which of ``products`` (one currency) is cheaper or dearer, every price said: "The
        SnowPeak Thermo Bottle is cheaper at $24.50, and the AeroBrew Coffee Grinder is
        $89.99." A yes-or-no question ("Is X more expensive than Y?") is answered about the
        product it names first."""
        zh, cheaper = lang == "zh", way == "cheaper"
        ranked = by_price(products, way)
        price = {p.id: format_price(p, lang) for p in ranked}
        top, rest = ranked[0], ranked[1:]
        same = all(p.price == top.price for p in rest)
        if zh:
            lead = (
                ("是的，" if top.id == products[0].id and not same else "不是，") if yes_no else ""
            )
            if same:
                names = "和".join(p.name_zh for p in ranked)
                return f"{lead}{names}价格一样，都是{price[top.id]}。"
            if len(ranked) == 2:
                word = "更便宜" if cheaper else "更贵"
                other = rest[0]
                then = f"；{other.name_zh}是{price[other.id]}"
                return f"{lead}{top.name_zh}{word}，{price[top.id]}{then}。"
            word = "最便宜" if cheaper else "最贵"
            then = "".join(f"；其次是{p.name_zh}，{price[p.id]}" for p in rest)
            return f"{lead}{top.name_zh}{word}，{price[top.id]}{then}。"
        lead = ("Yes, " if top.id == products[0].id and not same else "No, ") if yes_no else ""
        if same:
            names = " and the ".join(p.name for p in ranked)
            sentence = f"{lead}the {names} cost the same: {price[top.id]} each."
        elif len(ranked) == 2:
            word = "cheaper" if cheaper else "more expensive"
            other = rest[0]
            sentence = (
                f"{lead}the {top.name} is {word} at {price[top.id]}, and the {other.name} is "
                f"{price[other.id]}."
            )
        else:
            word = "the cheapest" if cheaper else "the most expensive"
            then = "".join(f", then the {p.name} at {price[p.id]}" for p in rest)
            sentence = f"{lead}the {top.name} is {word} at {price[top.id]}{then}."
        return sentence[0].upper() + sentence[1:]

    def _total(self, p: Product, count: int, lang: str) -> str:
        """``count`` of ``p``: the total and the unit price ("Two SnowPeak Thermo Bottles are
        $49 ($24.50 each)."); more than the stock: only the stock is left; sold out: the
        total, and that it is sold out."""
        zh, each = lang == "zh", format_price(p, lang)
        if 0 < p.stock < count:
            if zh:
                return f"{p.name_zh}只剩{p.stock}件了，每件{each}。"
            return f"We only have {p.stock} left of the {p.name}, at {each} each."
        total = format_money(round(count * p.price, minor_digits(p.currency)), p.currency, lang)
        if zh:
            said = f"{_zh_count(count)}件{p.name_zh}一共{total}（每件{each}）。"
        else:
            number = EN_NUMBERS[count] if count < len(EN_NUMBERS) else str(count)
            plural = _plural(p.name)
            items = f"{number} {plural}" if plural else f"{number} of the {p.name}"
            verb = "would be" if p.stock == 0 else "are"
            said = f"{items[0].upper()}{items[1:]} {verb} {total} ({each} each)."
        if p.stock == 0:
            said += ("" if zh else " ") + self._fact(p, "stock", lang)
        return said

    def _detail(self, p: Product, detail: str, lang: str) -> str:
        """What the catalog says about ``detail`` (where it ships to, a warranty, colours,
        size) for ``p``: its selling points or shipping terms that mention it; else "Let me
        check that for you." (the guard's own words for what the catalog does not say), and
        for where it ships to, the shipping terms the catalog has. The topic itself is not
        said back: a warranty or a place named is a claim, whatever surrounds it."""
        zh = lang == "zh"
        terms = p.shipping_zh if zh else p.shipping
        if detail == "destination" and says_detail(terms, detail, lang):
            return self._fact(p, "shipping", lang)
        said = [t for t in (p.points_zh if zh else p.points) if says_detail(t, detail, lang)]
        if detail != "destination" and said:
            if zh:
                return f"{p.name_zh}：{'，'.join(said[:2])}。"
            return f"The {p.name}: {' and '.join(said[:2])}."
        if detail == "destination":
            if zh:
                return f"{CHECK_ZH}目前能告诉您的是：{p.name_zh}{p.shipping_zh}。"
            return f"{CHECK_EN} What I can tell you now: the {p.name} {p.shipping}."
        if zh:
            return f"{CHECK_ZH}{p.name_zh}的资料里没写到这一点。"
        return f"{CHECK_EN} My notes on the {p.name} don't say."

    def _which_product(self, lang: str, check: bool = False) -> str:
        """Which product a question means; ``check``: it asks what the catalog may not say,
        so the host will check once it knows which."""
        if lang == "zh":
            names = "、".join(p.name_zh for p in self.catalog.product)
            lead = CHECK_ZH if check else ""
            return f"{lead}你想问哪一款呢？今天有{names}。"
        names = ", ".join(p.name for p in self.catalog.product)
        lead = f"{CHECK_EN} " if check else ""
        return f"{lead}Which product do you mean? Today we have {names}."

    def _greeting(self, name: str | None, lang: str) -> str:
        if lang == "zh":
            return f"{name or '朋友'}，你好！欢迎来到直播间，我是{self.host_name}。"
        return f"Hi {name or 'friend'}, welcome! I'm {self.host_name}, ask me anything."

    def _fallback(self, name: str | None, lang: str) -> str:
        if lang == "zh":
            return "谢谢你的留言！想了解哪款产品的价格、库存或发货，尽管问我。"
        who = name or "friend"
        return f"Thanks for the message, {who}! Ask me about prices, stock or shipping."


# The kinds of answer that say something of a product (``answer_and_kind``).
PRODUCT_ANSWERS = ("facts", "points", "detail")


def product_answer(catalog: Catalog, question: str, lang: str) -> tuple[str, str] | None:
    """(the catalog's answer, its kind) to ``question`` when it asks something of a product
    it names, read afresh (no follow-up), else None: two questions with the same one ask the
    same ("How much is the aerobrew?", "aero brew price?")."""
    said, kind = CatalogAnswerer(catalog).answer_and_kind(question, None, lang)
    return (said, kind) if kind in PRODUCT_ANSWERS else None


def _zh_count(n: int) -> str:
    """``n`` as counted in Chinese: 2 -> 两, 12 -> 十二, 35 -> 三十五 (100 and more in digits)."""
    if n == 2:
        return "两"
    return zh_numeral(n) if n < 100 else str(n)


def _plural(name: str) -> str | None:
    """An English product name made plural ("SnowPeak Thermo Bottles", "SonicBuds Pro Earbuds"),
    None where a plain "s" would be wrong ("... Battery", "... Pro 2")."""
    if not re.search(r"[a-z]$", name) or re.search(r"[^aeiou]y$", name):
        return None
    if name.endswith("s"):
        return name
    return name + ("es" if name.endswith(("x", "ch", "sh", "z")) else "s")


_DELTA = re.compile(rf"[{UNSPACED}]{{1,2}}|\S+\s*|\s+")


def _deltas(text: str) -> list[str]:
    """Cut text into token-sized deltas: words with their spaces, or two CJK characters."""
    return _DELTA.findall(text)


class CatalogBrain:
    """The Brain role on the catalog: every turn is answered from the catalog as it is now."""

    def __init__(
        self,
        config: CatalogBrainConfig,
        live: LiveCatalog | None = None,
        persona: PersonaConfig | None = None,
    ) -> None:
        """``live``: the catalog to answer from (default: ``config.path``'s, followed live)."""
        self._config = config
        self.live = live if live is not None else LiveCatalog(config.path or None)
        self.answerer = CatalogAnswerer(self.live.current, (persona or PersonaConfig()).name)

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

    def follow(self, turn: Turn) -> None:
        """``turn`` was answered by another brain (the LLM): remember the product it asked
        about, so that the catalog's answer to a follow-up knows what it follows."""
        if turn.kind == TurnKind.ANSWER and turn.message is not None:
            self._answerer().follow(turn.message.text)

    def first_answer(self, turn: Turn) -> str | None:
        """The catalog's answer to ``turn`` when it is a question about a product: its price,
        stock, restock, shipping, a total, a comparison, the selling points of a product it
        names (a small LLM asked for them tends to say the price instead), or what the catalog
        does not say about it ("let me check": a small LLM answers a destination with the
        shipping terms), said first while an LLM continues after it (``[brain.llm]
        answer_first``); None for anything else (a greeting, off-topic chatter, an injection,
        a pitch, a script)."""
        if turn.kind != TurnKind.ANSWER or turn.message is None:
            return None
        text = turn.message.text
        if gives_orders(text):  # an injection naming a product: the LLM alone, guarded
            return None
        said, kind = self._answerer().answer_and_kind(text, turn.message.spoken_name, turn.lang)
        return said if kind in PRODUCT_ANSWERS and said.strip() else None

    async def reply(self, turn: Turn) -> AsyncGenerator[str, None]:
        interval = self._config.token_interval_ms / 1000.0
        for delta in _deltas(self.text_for(turn)):
            yield delta
            await asyncio.sleep(interval)
