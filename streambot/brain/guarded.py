"""``GuardedBrain`` runs an inner brain (the LLM) through the guard sentence by sentence. The
first rejected sentence is never spoken: the inner brain is closed and the fallback brain (the
catalog brain, which states the exact figures) answers the turn instead; so it does when the
inner brain fails or says nothing at all. When some of the inner brain's sentences were said
already, the fallback's sentences that repeat them are dropped (the viewer hears a fact once).
With ``answer_first`` a question with a factual product answer gets the catalog brain's answer
at once and the inner brain continues after it (guarded the same way, the answer in what was
said so far); then a rejected sentence just ends the reply, since the answer was given. With
``first_sentence_s`` the inner brain has that long to say its first sentence (or, for a script
line, the whole rewording) before the fallback takes the turn: a slow model on a busy CPU never
leaves the stream silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from streambot.brain.babble import only_an_apology, repeat
from streambot.brain.base import AnswersFirst, Brain, continues_replies
from streambot.brain.catalog import product_answer
from streambot.brain.figures import money_figures, same_figure
from streambot.brain.guard import DIGIT, ReplyGuard, unique_products
from streambot.brain.knowledge import squashed
from streambot.catalog import Catalog, LiveCatalog, Product, as_live
from streambot.intents import CHECK_PHRASES, EN_NUMBERS, ZH_NUMERALS, asks_about_a_product
from streambot.sentences import SentenceSplitter, ends_sentence, split_sentences
from streambot.turn import Turn, TurnKind

log = logging.getLogger(__name__)


async def _sentences(stream: AsyncGenerator[str, None]) -> AsyncGenerator[str, None]:
    """The whole sentences of a stream of text deltas, each as soon as it is complete."""
    splitter = SentenceSplitter()
    async for delta in stream:
        for sentence in splitter.feed(delta):
            yield sentence
    for sentence in splitter.flush():
        yield sentence


@dataclass
class _Run:
    """One reply as the guard follows it: the question's products, the products the reply
    named last, the viewer's words, the previous reply, and whether a sentence was refused."""

    question: list[Product]
    asked: str
    previous: tuple[str, ...]  # the recent replies a loop would say again
    recent: list[Product] = field(default_factory=list)
    rejected: bool = False


def _cut_inside_a_figure(sentence: str) -> bool:
    """An unfinished sentence with a figure in it: a reply cut off by its token limit can stop
    inside a figure ("ships in 1 to" of "1 to 2 days"), and a figure cut short is a wrong
    one. (What the guard refuses anyway, garbage, is refused first and counted as such.)"""
    return not ends_sentence(sentence) and DIGIT.search(sentence) is not None


def _same_figures(sentence: str, said: str, new_words: set[str]) -> bool:
    """``sentence`` says money figures, each said already, and no word of its own but a
    number: "Three LumaDesk Lamps would be $177 ($59 each)." after the LLM's "The total for 3
    LumaDesk Lamps would be $177 ($59 each)." (the real 1.5B's, then the catalog brain's)."""
    figures = money_figures(sentence)
    before = money_figures(said)
    return (
        bool(figures)
        and all(any(same_figure(f, b) for b in before) for f in figures)
        and all(w in EN_NUMBERS or all(c in ZH_NUMERALS for c in w) for w in new_words)
    )


# -- the guarded brain ------------------------------------------------------------------------
class GuardedBrain:
    """An inner brain (the LLM) whose every sentence passes the guard before it is spoken, with a
    fallback brain (the catalog brain) that answers whenever a sentence is rejected, the inner
    brain fails, or it says nothing."""

    def __init__(
        self,
        inner: Brain,
        fallback: Brain,
        guard: ReplyGuard,
        catalog: Catalog | LiveCatalog,
        answer_first: bool = False,
        first_sentence_s: float = 0.0,
        remembered: int = 1,
    ) -> None:
        """``catalog``: read at the start of each reply, and every sentence of that reply is
        checked against what was read (a live catalog follows its file). ``answer_first``: a
        question with a factual product answer gets the fallback's (the catalog brain's
        ``first_answer``) at once, and the inner brain continues after it (its ``reply``
        takes the words said as ``prefill``); what it adds is guarded like any reply, and a
        rejected sentence ends the reply there (the answer was said already).
        ``first_sentence_s``: how long the inner brain may take to its first sentence when
        nothing was said first, and to a script line's whole rewording (0: as long as it
        takes); past it the fallback answers and the inner brain is closed (the LLM stops).
        ``remembered``: how many recent replies a model's loop is looked for in (at least the
        last): the turns its prompt replays ([brain.llm] memory_turns), which a small model
        says again (the real 1.5B answered a lamp's points and its arrival with the "sold
        out, back next Friday" of its four answers before)."""
        self.inner, self.fallback, self.guard = inner, fallback, guard
        self.live = as_live(catalog)
        self.catalog = self.live.current
        self.last_verdicts: list[tuple[str, str | None]] = []  # (sentence, reason) of a reply
        self.last_text = ""  # what the last reply actually said
        self.last_asked = ""  # the viewer's words the last reply answered ("": not an answer)
        self.last_about: list[Product] = []  # the products the last reply was about
        self._recent: deque[tuple[str, str]] = deque(maxlen=max(1, remembered))  # (asked, said)
        self.last_first = ""  # the catalog's answer the last reply started with ("": none)
        self.last_added = 0  # sentences the inner brain said after it
        self.rejections = 0  # replies handed to the fallback, for metrics
        self.cut_short = 0  # answered-first replies whose continuation was rejected, for metrics
        self.first_sentence_s = first_sentence_s
        self.too_slow = 0  # replies the fallback took because the first sentence was late
        # the catalog brain's optional help: an answer to say first, and following the
        # questions the inner brain answers (so its answer to a follow-up knows the product)
        factual = fallback if isinstance(fallback, AnswersFirst) else None
        self._follow = factual.follow if factual is not None else None
        first_answer = factual.first_answer if factual is not None else None
        takes_prefill = continues_replies(inner)
        self._first_answer = first_answer if answer_first and takes_prefill else None
        if answer_first and self._first_answer is None:
            log.warning("answer_first: %s cannot continue a reply; it is off", type(inner).__name__)

    def pitch_topics(self) -> list[str]:
        return self.fallback.pitch_topics()

    def _question_products(self, turn: Turn) -> list[Product]:
        """The products ``turn`` is about: a pitch's or script line's topic, else those the
        viewer names; a follow-up that names none ("那还有货吗？") is about the one the last
        reply was about, as its prompt says, so the model's "还有42件。" is checked as the
        grinder's count, not refused as nobody's."""
        if turn.kind in (TurnKind.PITCH, TurnKind.SCRIPT):
            product = self.catalog.by_id(turn.topic) if turn.topic else None
            return [product] if product else []
        if turn.message is None:
            return []
        named = self.catalog.find(turn.message.text)
        if named or not asks_about_a_product(turn.message.text, turn.lang):
            return named
        return [p for p in self.last_about[:1] if self.catalog.by_id(p.id) is not None]

    async def _script_line(self, turn: Turn) -> AsyncIterator[str]:
        """A script line reworded by the inner brain, spoken only if every sentence of the
        rewording passes the guard; else the line as authored (the fallback says it). The
        whole rewording is checked before any of it is said, so a line is never half one,
        half the other."""
        products = self._question_products(turn)
        self.last_about = products or self.last_about
        reworded: list[str] = []
        failed: str | None = None
        stream = self.inner.reply(turn)
        deadline = asyncio.timeout(self.first_sentence_s or None)
        try:
            async with deadline, contextlib.aclosing(_sentences(stream)) as sentences:
                async for sentence in sentences:
                    failed = self._script_sentence(sentence, products, turn.lang, reworded)
                    if failed:
                        break
        except Exception as exc:  # the LLM failed or is late: the line is said as authored
            if isinstance(exc, TimeoutError) and deadline.expired():
                self.too_slow += 1
                failed = f"no rewording within {self.first_sentence_s:g} s"
            else:
                log.exception("inner brain failed rewording turn %d; said as authored", turn.id)
                failed = "inner brain failed"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if not failed and not reworded:
            failed = "the rewording was empty"
        if failed:
            self.rejections += 1
            self.last_verdicts.append(("", failed))
            log.info("script line of turn %d said as authored: %s", turn.id, failed)
            async for delta in self.fallback.reply(turn):
                self.last_text += delta
                yield delta
            return
        if turn.script is not None:
            turn.script.spoken_as = "reworded"
        for sentence in reworded:
            self.last_text += sentence + " "
            yield sentence + " "

    def _script_sentence(
        self, sentence: str, products: list[Product], lang: str, kept: list[str]
    ) -> str | None:
        """Check one sentence of a rewording: None and kept when it passes, else why not."""
        verdict = self.guard.check(sentence, products, lang, previous=kept, so_far=" ".join(kept))
        self.last_verdicts.append((sentence, verdict.reason))
        if not verdict.ok:
            return verdict.reason or "rejected"
        if verdict.text != sentence:  # a corrected figure: the author's line is safer
            return f"corrected: {verdict.reason}"
        kept.append(sentence)
        return None

    async def reply(self, turn: Turn) -> AsyncGenerator[str, None]:
        # the recent replies: the guard refuses a sentence of them said again (a model's loop)
        if self.last_text:
            self._recent.append((self.last_asked, self.last_text))
        self.last_verdicts, self.last_text = [], ""
        asked = turn.message.text if turn.kind == TurnKind.ANSWER and turn.message else ""
        self.last_asked = asked
        self.last_first, self.last_added = "", 0
        if turn.kind == TurnKind.SAY:  # the operator's own words: trusted, said as they are
            said = turn.topic or (turn.message.text if turn.message else "")
            for sentence in split_sentences(said):
                self.last_text += sentence + " "
                yield sentence + " "
            return
        self.catalog = self.guard.catalog = self.live.current  # one catalog for the whole reply
        if turn.kind == TurnKind.SCRIPT:
            async for delta in self._script_line(turn):
                yield delta
            return
        products = self._question_products(turn)
        self.last_about = products or self.last_about
        # a reply to the same question (two viewers ask the price in a row) may be said the
        # same way again: an answer then, not a model's loop
        answer = product_answer(self.catalog, asked, turn.lang) if asked else None
        previous = tuple(
            said
            for before, said in self._recent
            if answer is None
            or not before
            or product_answer(self.catalog, before, turn.lang) != answer
        )
        run = _Run(products, asked, previous)
        first = self._say_first(turn, run)
        if first:  # the catalog's exact answer at once; the inner brain continues after it
            yield first + " "
            stream = self.inner.reply(turn, prefill=first)  # type: ignore[call-arg]
        else:
            stream = self.inner.reply(turn)
        async for text in self._guarded(turn, stream, run, said_first=bool(first)):
            yield text
        if first:  # answered already: a rejected or failed continuation just ends the reply
            self.cut_short += run.rejected
            return
        async for delta in self._fallback_after(turn, run.rejected):
            yield delta

    def _say_first(self, turn: Turn, run: _Run) -> str:
        """The catalog's exact answer to say first ("" when none), noted as said; a turn with
        none the catalog brain follows, so its answer to a follow-up knows the product."""
        first = (self._first_answer(turn) or "") if self._first_answer is not None else ""
        if not first:
            if self._follow is not None:  # an answer said first has followed it already
                self._follow(turn)
            return ""
        first = first.strip()
        self.last_first = first
        for sentence in split_sentences(first, early_first_clause=False):
            self.last_verdicts.append((sentence, None))
        run.recent = unique_products(p for _, _, p in self.guard.mentions(first))
        self.last_text = first + " "
        return first

    async def _guarded(
        self, turn: Turn, stream: AsyncIterator[str], run: _Run, said_first: bool
    ) -> AsyncIterator[str]:
        """The inner brain's sentences that pass the guard, until one does not, the stream
        fails or ends, or no first sentence comes in time (``run.rejected`` then)."""
        splitter = SentenceSplitter(holds_first_clause=only_an_apology)
        started = asyncio.get_running_loop().time()
        try:
            done = False
            while not done and not run.rejected:
                deadline = asyncio.timeout_at(self._deadline(started, said_first))
                try:
                    async with deadline:
                        delta = await anext(stream)
                    sentences = splitter.feed(delta)
                except StopAsyncIteration:
                    done, sentences = True, splitter.flush()
                except Exception as exc:  # the LLM failed or is late: the catalog brain answers
                    if isinstance(exc, TimeoutError) and deadline.expired():
                        self.too_slow += 1
                        why = f"no first sentence within {self.first_sentence_s:g} s"
                        log.warning("inner brain: %s on turn %d; fallback answers", why, turn.id)
                    else:
                        why = "inner brain failed"
                        log.exception("inner brain failed on turn %d; fallback answers", turn.id)
                    self.last_verdicts.append(("", why))
                    run.rejected = True
                    break
                for text in self._passed(sentences, turn, run, ended=done):
                    self.last_added += said_first
                    yield text
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _passed(
        self, sentences: list[str], turn: Turn, run: _Run, ended: bool = False
    ) -> list[str]:
        """What of ``sentences`` is said, as the guard passed or corrected it, up to the first
        it refuses (``run.rejected`` then); each is noted as said. ``ended``: the reply ended
        after them, so an unfinished last one is what the token limit cut off."""
        said: list[str] = []
        for i, sentence in enumerate(sentences):
            # a sentence that names no product speaks of the one named last ("The lamp is
            # sold out," then "and it's $24.50."), else of the question's
            verdict = self.guard.check(
                sentence,
                run.recent or run.question,
                turn.lang,
                question=run.asked,
                previous=(*self._recent_unless_a_part(sentence, run), self.last_text),
                so_far=self.last_text,
            )
            self.last_verdicts.append((sentence, verdict.reason))
            if not verdict.ok:
                log.warning("guard rejected %r: %s", sentence, verdict.reason)
                run.rejected = True
                break
            if verdict.text in CHECK_PHRASES and verdict.text in self.last_text:
                continue  # one "let me check" a reply is enough
            if ended and i == len(sentences) - 1 and _cut_inside_a_figure(sentence):
                log.warning("guard dropped %r on turn %d: a sentence cut off", sentence, turn.id)
                self.last_verdicts[-1] = (sentence, "a sentence cut off inside a figure")
                continue
            if verdict.reason:
                log.info("guard corrected %r: %s", sentence, verdict.reason)
            named = unique_products(p for _, _, p in self.guard.mentions(sentence))
            run.recent = named or run.recent
            self.last_text += verdict.text + " "
            said.append(verdict.text + " ")
        return said

    def _recent_unless_a_part(self, sentence: str, run: _Run) -> tuple[str, ...]:
        """The recent replies, whose sentences said again are a model's loop, or none where
        ``sentence`` comes after this reply's opening and names only products the question
        names: a fact of theirs said again for this answer ("..., and the AeroBrew Coffee
        Grinder is $89.99." in a comparison, after a reply that ended so; a loop starts a
        reply with an earlier one)."""
        if not self.last_text or not run.question:
            return run.previous
        named = unique_products(p for _, _, p in self.guard.mentions(sentence))
        asked = {p.id for p in run.question}
        return () if named and all(p.id in asked for p in named) else run.previous

    async def _fallback_after(self, turn: Turn, rejected: bool) -> AsyncIterator[str]:
        """The fallback's answer when the inner brain's was refused, failed or empty: all of
        it when nothing was said, else only its sentences that add to what was."""
        if not rejected and not self.last_text:  # the LLM said nothing: never silence
            log.warning("inner brain said nothing on turn %d; the fallback answers", turn.id)
            self.last_verdicts.append(("", "the reply was empty"))
            rejected = True
        if not rejected:
            return
        self.rejections += 1
        if not self.last_text:
            async for delta in self.fallback.reply(turn):
                self.last_text += delta
                yield delta
            return
        # a mixed reply: the fallback's sentences that repeat what the LLM said are dropped
        text = "".join([delta async for delta in self.fallback.reply(turn)])
        kept = self._unsaid(text, self.last_text)
        self.last_text += kept
        if kept:
            yield kept

    def _deadline(self, started: float, said_first: bool) -> float | None:
        """When the wait for the inner brain's next delta ends (the loop's clock): while
        nothing has been said, ``first_sentence_s`` after the reply started; None after that,
        or when the catalog's answer was said first, or with no limit."""
        if said_first or self.last_text or not self.first_sentence_s:
            return None
        return started + self.first_sentence_s

    def _unsaid(self, text: str, said: str) -> str:
        """``text`` less its sentences that repeat ``said`` (the guard's repeat rule, or the
        same words); ``text`` as it is when none do."""
        sentences = split_sentences(text, early_first_clause=False)
        kept = [s for s in sentences if not self._repeats(s, said)]
        if len(kept) == len(sentences):
            return text
        for sentence in sentences:
            if sentence not in kept:
                self.last_verdicts.append((sentence, "fallback repeats what was said; dropped"))
        return "".join(s + " " for s in kept)

    def _repeats(self, sentence: str, said: str) -> bool:
        """``sentence`` (the fallback's) adds nothing to ``said``: it is a sentence of it (the
        product's name said another way: "The AeroBrew Coffee Grinder is $89.99." after "The
        grinder is $89.99."), or repeats one (the guard's rule) and has no word of its own;
        the lamp's "sold out right now, back next Friday" after an LLM's "The LumaDesk Lamp
        is sold out," is said."""
        if any(self._same_saying(sentence, s) for s in split_sentences(said, False)):
            return True
        kn = self.guard.knowledge
        new_words = kn.new_words(sentence, said)
        if repeat(sentence, [said], kn) is not None and not new_words:
            return True
        return _same_figures(sentence, said, new_words)

    def _same_saying(self, a: str, b: str) -> bool:
        """``a`` and ``b`` are the same words of the same products, their names aside."""
        if squashed(a) == squashed(b):
            return True
        kn = self.guard.knowledge
        if kn.nameless(a) != kn.nameless(b):
            return False
        products = [unique_products(p for _, _, p in self.guard.mentions(t)) for t in (a, b)]
        return bool(products[0]) and products[0] == products[1]
