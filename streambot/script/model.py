"""A sales script: the authored segments the host runs when chat is quiet (``[script] path``).

A TOML file of ``[[segment]]`` tables, in the order they are run:

    [[segment]]
    id = "bottle-price"
    kind = "price"              # warm-up | intro | price | countdown | cta | qa
    product = "thermo-bottle"   # a catalog id: the card shows it, {price} etc. come from it
    text = "The {name} is only {price} today, and we have {stock} left."
    text_zh = "{name}今天只要{price}，还剩{stock}件。"
    trigger = "quiet"           # quiet (chat quiet for quiet_s) | time (after_s after the
    quiet_s = 8                 #   previous segment) | answers (after `answers` answers)
    duration_s = 300            # countdown: the deal countdown's length; qa: a pause for
                                #   questions after the segment's words

Figures are never typed into a line: ``{name} {price} {stock} {shipping} {restock}`` are
filled from the catalog each time the line is said, so a price edit is followed. A segment
with no text (and not a Q&A break) is a pitch the brain writes about its product, or about
the next product of the catalog's pitch rotation when it names none: the default script, used
when no file is given, is one such segment.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streambot.catalog import FIELDS, Catalog, Product, product_fields

SegmentKind = Literal["warm-up", "intro", "price", "countdown", "cta", "qa"]


class ScriptError(Exception):
    """The script file cannot be used; the message names the file, segment and problem."""


class UnfilledField(ValueError):
    """A line's ``{field}`` has no value now (its product was removed, its restock date is
    empty): the line is not said, so no ``{price}`` is ever read out."""


def placeholders(text: str) -> list[str]:
    """The ``{field}`` names in ``text`` (ValueError for a malformed brace)."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    kind: SegmentKind = "intro"
    product: str = ""
    text: Annotated[str, Field(max_length=600)] = ""
    text_zh: Annotated[str, Field(max_length=600)] = ""
    trigger: Literal["quiet", "time", "answers"] = "quiet"
    quiet_s: Annotated[float, Field(gt=0, le=3600)] | None = None  # default: triage's idle time
    after_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    answers: Annotated[int, Field(ge=1, le=1000)] = 1
    duration_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    countdown_text: Annotated[str, Field(max_length=120)] = ""  # "" = [overlay.countdown] text

    @model_validator(mode="after")
    def _fields_known(self) -> Segment:
        for text in (self.text, self.text_zh):
            try:
                names = placeholders(text)
            except ValueError as exc:
                raise ValueError(f"text {text!r}: {exc} (write {{{{ for a literal brace)") from None
            for name in names:
                if name not in FIELDS:
                    raise ValueError(f"unknown placeholder {{{name}}}; use {', '.join(FIELDS)}")
                if not self.product:
                    raise ValueError(f'{{{name}}} needs a product (product = "catalog id")')
        if self.kind == "countdown" and self.duration_s <= 0:
            raise ValueError("a countdown segment needs duration_s (the deal's length)")
        return self

    @property
    def is_pitch(self) -> bool:
        """No authored words: the brain pitches the product (or the rotation's next)."""
        return not (self.text or self.text_zh) and self.kind != "qa"

    def words(self, lang: str) -> tuple[str, str]:
        """(authored text, its language): ``lang``'s text when written, else the other."""
        if lang == "zh" and self.text_zh:
            return self.text_zh, "zh"
        if self.text:
            return self.text, "en"
        return self.text_zh, "zh"

    def fill(self, text: str, product: Product | None, lang: str) -> str:
        """``text`` with the product's figures as the catalog has them now; UnfilledField
        names a field that has no value (every field is filled, or the line is not said)."""
        values = product_fields(product, lang) if product is not None else {}
        for name in placeholders(text):
            if not values.get(name):
                why = "no product" if product is None else f"no {name} for {product.id!r}"
                raise UnfilledField(f"segment {self.id!r}: {{{name}}} has {why} in the catalog")
        return text.format(**values)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: Annotated[list[Segment], Field(min_length=1, max_length=1000)]
    loop: bool = True  # start again after the last segment (a 24/7 stream)

    @model_validator(mode="after")
    def _unique_ids(self) -> Script:
        seen: set[str] = set()
        for segment in self.segment:
            if segment.id in seen:
                raise ValueError(f"segment id {segment.id!r} is used twice")
            seen.add(segment.id)
        return self

    def index_of(self, segment_id: str) -> int | None:
        return next((i for i, s in enumerate(self.segment) if s.id == segment_id), None)

    def check_lengths(self, catalog: Catalog, max_chars: int, source: str = "script") -> None:
        """Every line, filled from ``catalog``, fits in a reply (``[host] max_reply_chars``):
        the host would cut a longer one off mid-phrase (ScriptError names the segment)."""
        for segment in self.segment:
            product = catalog.by_id(segment.product) if segment.product else None
            for text, lang in ((segment.text, "en"), (segment.text_zh, "zh")):
                try:
                    said = segment.fill(text, product, lang)
                except UnfilledField:  # check_products names the missing product
                    continue
                if len(said) > max_chars:
                    raise ScriptError(
                        f"{source}: segment {segment.id!r}: the {lang} line is {len(said)} "
                        f"characters with the catalog's figures, over [host] max_reply_chars = "
                        f"{max_chars}: shorten it or split it into two segments"
                    )

    def check_products(self, catalog: Catalog, source: str = "script") -> None:
        """Every segment's product must be in the catalog (ScriptError names the segment)."""
        for segment in self.segment:
            if segment.product and catalog.by_id(segment.product) is None:
                raise ScriptError(
                    f"{source}: segment {segment.id!r}: product {segment.product!r} is not in "
                    f"the catalog (ids: {', '.join(p.id for p in catalog.product)})"
                )


def default_script(quiet_s: float | None = None) -> Script:
    """The idle pitch as a script: when chat is quiet, pitch the rotation's next product."""
    return Script(segment=[Segment(id="pitch", kind="intro", quiet_s=quiet_s)])


def load_script(path: str | Path, catalog: Catalog, max_chars: int) -> Script:
    """The script at ``path``, checked against ``catalog`` and its lines against the longest
    reply (``[host] max_reply_chars``); ScriptError says what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScriptError(f"script.path: {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"script.path: {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScriptError(f"{path}: not valid TOML: {exc}") from None
    try:
        script = Script.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = list(error["loc"])
            where = ".".join(str(p) for p in loc) or "(top level)"
            if len(loc) >= 2 and loc[0] == "segment" and isinstance(loc[1], int):
                segments = data.get("segment") or []
                seg_id = segments[loc[1]].get("id", "?") if loc[1] < len(segments) else "?"
                where = f"segment {loc[1] + 1} ({seg_id!r})" + "".join(f".{p}" for p in loc[2:])
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}")
        raise ScriptError(f"{path}: invalid script:\n  " + "\n  ".join(problems)) from None
    script.check_products(catalog, str(path))
    script.check_lengths(catalog, max_chars, str(path))
    return script


@dataclass
class ScriptLine:
    """What one script turn says: the segment, its authored words with the catalog's figures
    filled in, and how many times this segment was said before."""

    segment: Segment
    text: str  # "" for a pitch segment: the brain writes it
    lang: str
    product: str | None
    repetition: int
    # "authored"; "reworded": an LLM's rewording that passed the guard; "written": a pitch
    # segment, written by the brain from the catalog
    spoken_as: str = "authored"
    skipped: str = ""  # why the segment is not said now: its product was removed, a field is empty
