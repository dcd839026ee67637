"""What a chat message asks about the products (price, stock, shipping, features) and whether
it is a greeting, in English and Chinese. A leaf module: triage ranks messages by it and the
catalog brain answers by it."""

from __future__ import annotations

import re

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
    """The product questions ``text`` asks ("price", "stock", "shipping", "features")."""
    table = _COMPILED_INTENTS["zh" if lang == "zh" else "en"]
    return [name for name, pattern in table if pattern.search(text)]


def is_greeting(text: str, lang: str) -> bool:
    return _COMPILED_GREETING["zh" if lang == "zh" else "en"].search(text) is not None
