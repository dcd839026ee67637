"""The embedded default brain: answers from the product catalog with its exact figures.

It recognises what a question is about (price, stock, shipping, features, a greeting) in
English and Chinese, finds the product by name or alias, and answers with the catalog's own
numbers. Text streams out in small deltas, like an LLM's tokens, so the rest of the pipeline
runs the same code path whichever brain is configured.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from streambot.config import CatalogBrainConfig
from streambot.events import Turn
from streambot.lang import detect_lang


class CatalogError(Exception):
    pass


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    name_zh: str
    aliases: list[str] = []
    aliases_zh: list[str] = []
    # Finite and sane: "price = inf" or nan in a live edit must not reach the host's mouth.
    price: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    stock: int = Field(ge=0, le=1_000_000_000)
    restock: str = ""
    restock_zh: str = ""
    shipping: str
    shipping_zh: str
    points: list[str] = []
    points_zh: list[str] = []
    image: str = ""  # picture shown in OBS while the product is discussed
    pitch: bool = True  # include in the idle pitch rotation
    pitch_weight: int = Field(default=1, ge=1, le=10)  # turns per rotation


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: list[Product] = Field(min_length=1)
    _compiled: list | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise CatalogError(f"catalog {path}: cannot read: {exc}") from None
        else:
            text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
            path = "bundled catalog.toml"
        try:
            return cls.model_validate(tomllib.loads(text))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise CatalogError(f"catalog {path}: {exc}") from None

    def _matchers(self) -> list[tuple[Product, re.Pattern[str], list[str]]]:
        """Per product: one compiled pattern over its English names (longest first, plural
        allowed) and its Chinese names. Built once: find() runs on every chat message."""
        if self._compiled is None:
            compiled = []
            for product in self.product:
                names = sorted(
                    {n.lower() for n in (product.name, product.id, *product.aliases)},
                    key=len,
                    reverse=True,
                )
                alternation = "|".join(re.escape(n) for n in names)
                pattern = re.compile(rf"(?<![a-z0-9])({alternation})(?:e?s)?(?![a-z0-9])")
                zh = [a for a in (product.name_zh, *product.aliases_zh) if a]
                compiled.append((product, pattern, zh))
            self._compiled = compiled
        return self._compiled

    def find(self, text: str) -> list[Product]:
        """Products mentioned in ``text``, longest alias match first, each at most once."""
        lowered = text.lower()
        hits: list[tuple[int, Product]] = []
        for product, pattern, zh_names in self._matchers():
            best = max((len(m.group(1)) for m in pattern.finditer(lowered)), default=0)
            for alias in zh_names:
                if alias in text:
                    best = max(best, len(alias) * 2)
            if best:
                hits.append((best, product))
        hits.sort(key=lambda h: -h[0])
        return [h[1] for h in hits]

    def by_id(self, product_id: str) -> Product | None:
        return next((p for p in self.product if p.id == product_id), None)


_CURRENCY_EN = {"USD": "${}", "CNY": "¥{}", "EUR": "€{}", "GBP": "£{}", "JPY": "¥{}"}
_CURRENCY_ZH = {"USD": "{}美元", "CNY": "{}元", "EUR": "{}欧元", "GBP": "{}英镑", "JPY": "{}日元"}


def format_amount(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def format_price(product: Product, lang: str) -> str:
    table = _CURRENCY_ZH if lang == "zh" else _CURRENCY_EN
    pattern = table.get(product.currency, "{} " + product.currency)
    return pattern.format(format_amount(product.price))


_INTENTS_EN = {
    "price": r"\b(price|prices|cost|costs|how much|expensive|cheap|discount|deal)\b|\$",
    "stock": r"\b(stock|available|availability|left|sold out|inventory|any more|remaining)\b",
    "shipping": r"\b(ship|ships|shipping|deliver|delivery|arrive|postage|how long)\b",
    "features": (
        r"\b(feature|features|special|good|spec|specs|details|tell me|what does|why|worth)\b"
    ),
}
_INTENTS_ZH = {
    "price": r"多少钱|价格|价钱|几块|多少元|贵|便宜|优惠|折扣",
    "stock": r"库存|有货|还有|现货|卖完|几件|没货|缺货",
    "shipping": r"发货|快递|包邮|运费|几天|到货|物流|寄",
    "features": r"特点|功能|怎么样|好用|介绍|区别|优点|卖点|值得",
}
_GREETING_EN = r"^\W*(hi|hello|hey|yo|good (morning|afternoon|evening)|greetings)\b"
_GREETING_ZH = r"你好|大家好|哈喽|嗨|早上好|晚上好|下午好|主播好"


_COMPILED_INTENTS = {
    "zh": [(name, re.compile(p)) for name, p in _INTENTS_ZH.items()],
    "en": [(name, re.compile(p, re.IGNORECASE)) for name, p in _INTENTS_EN.items()],
}
_COMPILED_GREETING = {"zh": re.compile(_GREETING_ZH), "en": re.compile(_GREETING_EN, re.I)}


def detect_intents(text: str, lang: str) -> list[str]:
    table = _COMPILED_INTENTS["zh" if lang == "zh" else "en"]
    return [name for name, pattern in table if pattern.search(text)]


def is_greeting(text: str, lang: str) -> bool:
    return _COMPILED_GREETING["zh" if lang == "zh" else "en"].search(text) is not None


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
        if not products and intents and self._last_product is not None:
            products = [self._last_product]  # a follow-up about the product just discussed
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


def _deltas(text: str) -> list[str]:
    """Cut text into token-sized deltas: words with their spaces, or two CJK characters."""
    return re.findall(r"[\u2e80-\u9fff\uff00-\uffef]{1,2}|\S+\s*|\s+", text)


class CatalogBrain:
    def __init__(self, config: CatalogBrainConfig) -> None:
        self._config = config
        self.answerer = CatalogAnswerer(Catalog.load(config.path or None), config.host_name)

    def pitch_topics(self) -> list[str]:
        """The idle pitch schedule: products marked for pitching, weighted, never sold out."""
        catalog = self.answerer.catalog
        schedule = [
            p.id for p in catalog.product if p.pitch and p.stock > 0 for _ in range(p.pitch_weight)
        ]
        return schedule or [p.id for p in catalog.product]

    def text_for(self, turn: Turn) -> str:
        if turn.kind == "pitch":
            return self.answerer.pitch(turn.topic or self.pitch_topics()[0], turn.lang)
        assert turn.message is not None
        return self.answerer.answer(turn.message.text, turn.message.spoken_name, turn.lang)

    async def reply(self, turn: Turn) -> AsyncIterator[str]:
        interval = self._config.token_interval_ms / 1000.0
        for delta in _deltas(self.text_for(turn)):
            yield delta
            await asyncio.sleep(interval)
