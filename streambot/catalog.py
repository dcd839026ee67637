"""The product catalog: its data model, loading, and the live catalog that follows its file.

A leaf module (triage, the brain and the stage all read the catalog; it reads none of them).
``LiveCatalog`` is the one place where an edited catalog file is noticed: every read of
``LiveCatalog.current`` checks the file, so whoever reads the catalog next (the next triaged
message, the next answer or pitch) gets the edit, and a broken edit is reported and the old
catalog kept.
"""

from __future__ import annotations

import logging
import re
import threading
import tomllib
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from streambot.money import decimals, format_money, minor_digits
from streambot.text import fold

log = logging.getLogger(__name__)


class CatalogError(Exception):
    pass


class Product(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    name_zh: str
    aliases: list[str] = []
    aliases_zh: list[str] = []
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")  # before price: it checks it
    # Finite and sane: "price = inf" or nan in a live edit must not reach the host's mouth.
    price: float = Field(ge=0, le=1e9, allow_inf_nan=False)
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

    @field_validator("price")
    @classmethod
    def _price_in_minor_units(cls, price: float, info: ValidationInfo) -> float:
        """At most the currency's minor unit: 0.004 would be said "$0.00", 89.995 "$90.00"."""
        code = info.data.get("currency", "USD")  # absent: the currency itself was refused
        digits = minor_digits(code)
        if decimals(price) > digits:
            allowed = f"at most {digits} decimals" if digits else "no decimals"
            raise ValueError(
                f"product {info.data.get('id', '?')!r}: price {price!r} is finer than {code} "
                f"can be paid ({allowed})"
            )
        return price


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: list[Product] = Field(min_length=1)
    _compiled: list | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Catalog:
        """The catalog at ``path`` (None: the bundled one); ``CatalogError`` says what is
        wrong with a file that cannot be used."""
        return cls.read(path)[0]

    @classmethod
    def read(cls, path: str | Path | None = None) -> tuple[Catalog, str]:
        """``load``, and the text the catalog was parsed from."""
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CatalogError(f"catalog {path}: cannot read: {exc}") from None
        else:
            text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
            path = "bundled catalog.toml"
        try:
            return cls.model_validate(tomllib.loads(text)), text
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise CatalogError(f"catalog {path}: {exc}") from None

    def _matchers(self) -> list[tuple[Product, re.Pattern[str], list[str]]]:
        """Per product: one compiled pattern over its folded English names (longest first,
        plural allowed) and its folded Chinese names. Built once: find() runs on every chat
        message."""
        if self._compiled is None:
            compiled = []
            for product in self.product:
                names = sorted(
                    {fold(n) for n in (product.name, product.id, *product.aliases)} - {""},
                    key=len,
                    reverse=True,
                )
                alternation = "|".join(re.escape(n) for n in names)
                pattern = re.compile(rf"(?<![a-z0-9])({alternation})(?:e?s)?(?![a-z0-9])")
                zh = [f for a in (product.name_zh, *product.aliases_zh) if (f := fold(a))]
                compiled.append((product, pattern, zh))
            self._compiled = compiled
        return self._compiled

    def find(self, text: str) -> list[Product]:
        """Products mentioned in ``text`` (compared folded: case, width and invisible
        characters do not matter), longest alias match first, each at most once."""
        folded = fold(text)
        hits: list[tuple[int, Product]] = []
        for product, pattern, zh_names in self._matchers():
            best = max((len(m.group(1)) for m in pattern.finditer(folded)), default=0)
            for alias in zh_names:
                if alias in folded:
                    best = max(best, len(alias) * 2)
            if best:
                hits.append((best, product))
        hits.sort(key=lambda h: -h[0])
        return [h[1] for h in hits]

    def mentions(self, text: str) -> list[tuple[int, int, Product]]:
        """Where ``text`` names a product, names found as ``find`` finds them: (start, end,
        product) in ``fold(text)``, in the order the text names them, the longest name at a
        place (a name inside a longer one is not counted: "tea" in "tea box")."""
        folded = fold(text)
        spans: list[tuple[int, int, Product]] = []
        for product, pattern, zh_names in self._matchers():
            spans += [(m.start(), m.end(), product) for m in pattern.finditer(folded)]
            for alias in zh_names:
                spans += [
                    (m.start(), m.end(), product) for m in re.finditer(re.escape(alias), folded)
                ]
        taken = bytearray(len(folded))
        out: list[tuple[int, int, Product]] = []
        for start, end, product in sorted(spans, key=lambda s: (s[0], -s[1])):
            if any(taken[start:end]):
                continue
            taken[start:end] = b"\x01" * (end - start)
            out.append((start, end, product))
        return out

    def by_id(self, product_id: str) -> Product | None:
        return next((p for p in self.product if p.id == product_id), None)

    def pitch_topics(self) -> list[str]:
        """The idle pitch schedule: products marked for pitching, weighted, never sold out."""
        schedule = [
            p.id for p in self.product if p.pitch and p.stock > 0 for _ in range(p.pitch_weight)
        ]
        return schedule or [p.id for p in self.product]

    def names(self) -> list[str]:
        """Every id, name and alias of every product, in both languages."""
        return [
            name
            for p in self.product
            for name in (p.id, p.name, p.name_zh, *p.aliases, *p.aliases_zh)
            if name
        ]


def by_price(products: Sequence[Product], way: str) -> list[Product]:
    """``products`` the cheapest first for ``way`` "cheaper", the dearest first for "dearer"
    (``intents.price_comparison``): the first is the answer to the comparison."""
    return sorted(products, key=lambda p: p.price, reverse=way != "cheaper")


def format_price(product: Product, lang: str) -> str:
    """The product's price as the host writes and says it: "$89.99", "500 yen", "89.99美元"."""
    return format_money(product.price, product.currency, lang)


# The fields a sales script's ``{price}`` and an LLM's ``{thermo.price}`` slot may name.
FIELDS = ("name", "price", "stock", "shipping", "restock")


def product_fields(product: Product, lang: str) -> dict[str, str]:
    """What each of ``FIELDS`` says for ``product`` in ``lang`` ("" where the catalog has
    nothing, such as the restock date of a product in stock)."""
    zh = lang == "zh"
    return {
        "name": product.name_zh if zh else product.name,
        "price": format_price(product, lang),
        "stock": str(product.stock),
        "shipping": product.shipping_zh if zh else product.shipping,
        "restock": product.restock_zh if zh else product.restock,
    }


# (st_mtime_ns, st_size, st_ino) of the file, or None when it cannot be read: an editor that
# saves by renaming a new file over the old one changes the inode, a second write within the
# clock's grain the size.
_Signature = tuple[int, int, int] | None


class LiveCatalog:
    """The catalog as its file says now: prices change mid-stream without a restart.

    Every read of ``current`` checks the file, one ``os.stat`` (a few microseconds), and
    reloads it when it changed. Reads come once per triaged message and a few times per turn,
    so this is cheap even in a flood; throttling the check by time instead would let the next
    answer miss an edit made just before it (and on a virtual clock, many stream seconds pass
    in a fraction of a wall-clock second). A consumer that keeps work derived from the catalog
    (a cached system prompt, compiled names) compares the catalog object it read with the one
    it derived from, or asks a ``changes()`` check.

    A broken edit is logged once as an error and the old catalog kept until the file changes
    again. Reloads are serialised by a lock (a brain may read from a worker thread).
    """

    def __init__(self, path: str | Path | None = None, catalog: Catalog | None = None) -> None:
        """``path``: the catalog file (None or "": the bundled catalog, never reloaded);
        ``catalog``: the catalog to start from instead of loading ``path`` now."""
        self.path = Path(path) if path else None
        self._signature = self._stat()  # before loading: an edit during the load is seen next
        # The text the catalog in use was read from (None: given, not read): a writer of the
        # file compares it with the file on disk (panel/catalog_edit.py).
        self._text: str | None = None
        if catalog is None:
            catalog, self._text = Catalog.read(self.path)
        self._catalog = catalog
        self._lock = threading.Lock()
        self.version = 0  # reloads so far

    @classmethod
    def fixed(cls, catalog: Catalog) -> LiveCatalog:
        """A live catalog that never changes (tests, tools, a catalog built in code)."""
        return cls(None, catalog)

    @property
    def current(self) -> Catalog:
        """The catalog now: reloaded first if its file changed."""
        self.reload_if_changed()
        return self._catalog

    def _stat(self) -> _Signature:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload_if_changed(self) -> bool:
        """Reload the file if it changed since the last check; whether the catalog changed."""
        if self.path is None or self._stat() == self._signature:
            return False  # the common case: one stat, no lock
        with self._lock:
            signature = self._stat()
            if signature == self._signature:  # another thread reloaded it meanwhile
                return False
            self._signature = signature  # a broken edit is reported once, not at every read
            try:
                catalog, text = Catalog.read(self.path)
            except CatalogError as exc:
                log.error("catalog changed but cannot be used, keeping the old one: %s", exc)
                return False
            self._catalog, self._text = catalog, text
            self.version += 1
            log.info("catalog reloaded from %s", self.path)
            return True

    def loaded_from(self, text: str) -> bool:
        """Whether ``text`` is what the catalog in use was read from (no reload first)."""
        return self._text is not None and self._text == text

    def changes(self) -> Callable[[], bool]:
        """A check for one consumer: whether the catalog changed since that consumer last
        asked (checking the file first), whoever's read reloaded it."""
        seen = self.version

        def changed() -> bool:
            nonlocal seen
            self.reload_if_changed()
            now_changed, seen = self.version != seen, self.version
            return now_changed

        return changed


def as_live(catalog: Catalog | LiveCatalog) -> LiveCatalog:
    """``catalog`` as a LiveCatalog (a plain Catalog never changes)."""
    return catalog if isinstance(catalog, LiveCatalog) else LiveCatalog.fixed(catalog)
