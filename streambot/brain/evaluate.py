"""Answer accuracy: questions generated from a catalog (brain/eval_questions.py), each answer
scored against it (brain/eval_score.py), a brain asked them all (here).

``questions(catalog)`` writes viewer questions from any catalog, in English and Chinese, each
with machine-checkable expectations: what a right answer must contain (``Fact``s: the price in
any accepted writing, the stock, the shipping terms, a selling point, the product's name or an
alias, a total, "let me check" where the catalog is silent ...). ``score(answer, question,
catalog)`` says what an answer got right and wrong (``Verdict``): facts missing, wrong figures
(a money figure that is no right one, a number that is none of the product's facts),
unsupported claims (a discount, a shipping destination, a warranty or a colour the catalog does
not have, a sold-out product called available, a comparison the wrong way round, "it's free"),
an echo of the question, garbage (digit runs, repeated fragments, prompt scaffolding), an
answer in the wrong language. ``evaluate(brain, questions, catalog)`` asks a brain every
question the way the host does (a ``Turn`` per message, ``Brain.reply`` streamed through the
host's sentence splitter) and returns a ``Report``: accuracy, the counts, per-kind accuracy,
who said each answer (the LLM, or the catalog brain as the guard's fallback) and the time to
the first sentence (when the voice can start).

Who said it: a ``GuardedBrain`` found in the brain (directly or as an ``inner`` of a wrapper)
counts each reply it hands to its fallback (``rejections``) and keeps the guard's verdict of
each sentence (``last_verdicts``), so an answer is "llm" (every sentence the LLM's), "mixed"
(some of the LLM's sentences, then the fallback's answer) or "fallback"; with answer_first, a
reply that starts with the catalog's exact answer is "first+llm" (the LLM added sentences after
it) or "first" (it added nothing, or what it added was refused): neither counts in the LLM
share, which is answers the LLM said whole. A bare catalog brain's
answers are "catalog"; any other unguarded brain's are "llm". A brain that refuses everything
scores well on wrong figures and low on LLM share: read the numbers together. An empty answer
is "none" (nothing was said, whoever failed to say it).

Scoring reads money the way the guard does (``figures.money_figures``: "$89.99", "89.99美元",
"二十四块五", "USD 20"), so the two cannot disagree about what a figure is.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streambot.brain.base import Brain
from streambot.brain.eval_questions import KINDS, Question
from streambot.brain.eval_score import Verdict, score
from streambot.brain.guarded import GuardedBrain
from streambot.catalog import Catalog
from streambot.events import ChatMessage
from streambot.lang import detect_lang
from streambot.sentences import SentenceSplitter, split_sentences
from streambot.turn import Turn, TurnKind

# Who said an answer (see the module docstring); "none": nothing was said.
SOURCES = ("llm", "mixed", "fallback", "first+llm", "first", "catalog", "none")


# -- evaluation -------------------------------------------------------------------------------
@dataclass
class Answer:
    question: Question
    text: str
    verdict: Verdict
    source: str  # one of SOURCES
    first_text_ms: float | None = None  # the first delta
    first_audio_ms: float | None = None  # the first sentence: when the voice can start
    total_ms: float = 0.0
    guard: list[str] = field(default_factory=list)  # the guard's corrections and rejections
    error: str | None = None  # the brain raised or timed out
    llm_sentences: int = 0  # sentences of it the LLM wrote (a GuardedBrain's answers)


def _percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Report:
    name: str
    answers: list[Answer]

    @property
    def n(self) -> int:
        return len(self.answers)

    def _share(self, count: int) -> float:
        return count / self.n if self.n else 0.0

    @property
    def correct(self) -> int:
        return sum(a.verdict.correct for a in self.answers)

    @property
    def accuracy(self) -> float:
        return self._share(self.correct)

    @property
    def wrong_figures(self) -> int:
        """Wrong figures spoken, all answers together."""
        return sum(len(a.verdict.wrong_figures) for a in self.answers)

    @property
    def unsupported(self) -> int:
        """Unsupported or false claims spoken, all answers together."""
        return sum(len(a.verdict.unsupported) for a in self.answers)

    @property
    def echoes(self) -> int:
        return sum(a.verdict.echo for a in self.answers)

    @property
    def garbage(self) -> int:
        """Answers that are garbage (an answer counts once, whatever its faults)."""
        return sum(bool(a.verdict.garbage) for a in self.answers)

    @property
    def wrong_language(self) -> int:
        return sum(a.verdict.wrong_language for a in self.answers)

    @property
    def missing(self) -> int:
        """Answers missing a required fact."""
        return sum(bool(a.verdict.missing) for a in self.answers)

    @property
    def errors(self) -> int:
        return sum(a.error is not None for a in self.answers)

    def sources(self) -> dict[str, int]:
        counts = Counter(a.source for a in self.answers)
        return {s: counts.get(s, 0) for s in SOURCES}

    @property
    def llm_share(self) -> float:
        """Answers the LLM said whole, no fallback."""
        return self._share(self.sources()["llm"])

    @property
    def llm_edited(self) -> int:
        """Answers the LLM said whole with a figure the guard put right or added (a count)."""
        return sum(1 for a in self.answers if a.source == "llm" and a.guard)

    def llm_sentences(self) -> str:
        """How much of what was said the LLM wrote, by sentence ("" without a guarded LLM)."""
        said = sum(len(split_sentences(a.text, early_first_clause=False)) for a in self.answers)
        wrote = sum(a.llm_sentences for a in self.answers)
        if not wrote:
            return ""
        return f"the LLM wrote {wrote} of {said} sentences said ({wrote / said:.1%})"

    def first_audio_ms(self, p: float) -> float | None:
        return _percentile([a.first_audio_ms for a in self.answers if a.first_audio_ms], p)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind -> (correct, asked), in ``KINDS`` order."""
        out = {k: [0, 0] for k in KINDS}
        for a in self.answers:
            counts = out.setdefault(a.question.kind, [0, 0])
            counts[0] += a.verdict.correct
            counts[1] += 1
        return {k: (c, n) for k, (c, n) in out.items() if n}

    # printing
    COLUMNS = (
        "brain",
        "n",
        "accuracy",
        "wrong figures",
        "unsupported",
        "echoes",
        "garbage",
        "wrong lang",
        "LLM share",
        "first audio p50 ms",
        "p95 ms",
    )

    @classmethod
    def header(cls) -> str:
        return "| " + " | ".join(cls.COLUMNS) + " |\n|" + "|".join("---" for _ in cls.COLUMNS) + "|"

    def row(self) -> str:
        def ms(value: float | None) -> str:
            if value is None:
                return "-"
            return f"{value:.1f}" if value < 10 else f"{value:.0f}"

        cells = (
            self.name,
            str(self.n),
            f"{self.accuracy:.1%}",
            str(self.wrong_figures),
            str(self.unsupported),
            str(self.echoes),
            str(self.garbage),
            str(self.wrong_language),
            f"{self.llm_share:.1%}",
            ms(self.first_audio_ms(50)),
            ms(self.first_audio_ms(95)),
        )
        return "| " + " | ".join(cells) + " |"

    def kinds_table(self) -> str:
        kinds = self.by_kind()
        head = "| brain | " + " | ".join(kinds) + " |"
        rule = "|---|" + "|".join("---" for _ in kinds) + "|"
        cells = " | ".join(f"{c}/{n}" for c, n in kinds.values())
        return f"{head}\n{rule}\n| {self.name} | {cells} |"

    def misses(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The answers that were not right (at most ``limit``), each with what was asked,
        what was said, by whom, why it is wrong and what the guard did: the record a build
        keeps, so a model's mistakes can be read later and turned into guard rules."""
        wrong = [a for a in self.answers if not a.verdict.correct][:limit]
        return [
            {
                "kind": a.question.kind,
                "lang": a.question.lang,
                "question": a.question.text,
                "said": a.text,
                "source": a.source,
                "problems": a.verdict.problems(),
                "guard": list(a.guard),
            }
            for a in wrong
        ]

    def failures(self) -> str:
        """Every answer that was not right, with why: one block each."""
        lines = []
        for miss in self.misses():
            lines.append(f"[{miss['kind']}/{miss['lang']}] {miss['question']}")
            lines.append(f"  -> ({miss['source']}) {miss['said']!r}")
            lines.append(f"  {'; '.join(miss['problems'])}")
            if miss["guard"]:
                lines.append(f"  guard: {'; '.join(miss['guard'])}")
        return "\n".join(lines)


def table(reports: Iterable[Report]) -> str:
    """A markdown table, one row per brain."""
    return "\n".join([Report.header(), *(r.row() for r in reports)])


def guarded_brain(brain: object) -> GuardedBrain | None:
    """The ``GuardedBrain`` in ``brain``: itself, or the ``inner`` of a wrapper around it."""
    seen = 0
    while brain is not None and seen < 16:
        if isinstance(brain, GuardedBrain):
            return brain
        brain, seen = getattr(brain, "inner", None), seen + 1
    return None


class _Asker:
    """Asks a brain questions the way the host does: one Turn per message, its reply streamed
    through the host's sentence splitter and cut at ``[host] max_reply_chars``."""

    def __init__(self, brain: Brain, max_reply_chars: int, timeout_s: float | None) -> None:
        from streambot.brain.catalog import CatalogBrain

        self.brain, self.limit, self.timeout = brain, max_reply_chars, timeout_s
        self.guarded = guarded_brain(brain)
        self.catalog_only = self.guarded is None and isinstance(brain, CatalogBrain)
        self.turns = itertools.count(1)

    async def ask(self, question: Question) -> Answer:
        message = ChatMessage("eval", "viewer", question.text, spoken_name="Sam")
        turn = Turn(next(self.turns), TurnKind.ANSWER, message, detect_lang(question.text))
        rejections = self.guarded.rejections if self.guarded is not None else 0
        start = time.perf_counter()
        turn.timings.arrived = turn.timings.dequeued = message.arrived = start
        first_sentence: float | None = None
        error: str | None = None
        splitter = SentenceSplitter()
        stream = self.brain.reply(turn)
        try:
            async with asyncio.timeout(self.timeout):
                async for delta in stream:
                    now = time.perf_counter()
                    if turn.timings.first_text is None:
                        turn.timings.first_text = now
                    delta = delta[: max(0, self.limit - len(turn.reply))]
                    turn.reply += delta
                    if splitter.feed(delta) and first_sentence is None:
                        first_sentence = now
                    if len(turn.reply) >= self.limit:
                        break
        except TimeoutError:
            error = f"no whole reply in {self.timeout} s"
        except Exception as exc:  # a failing brain is a result, not the end of the run
            error = f"{type(exc).__name__}: {exc}"
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        end = time.perf_counter()
        if first_sentence is None and splitter.flush():
            first_sentence = end
        source, notes = self._source(rejections)
        source = source if turn.reply.strip() else "none"
        return Answer(
            question,
            turn.reply,
            Verdict(),
            source,
            _ms(turn.timings.first_text, start),
            _ms(first_sentence, start),
            (end - start) * 1000.0,
            notes,
            error,
            self._llm_sentences(source, turn.reply),
        )

    def _llm_sentences(self, source: str, said: str) -> int:
        if self.guarded is None or source not in ("llm", "mixed", "first+llm"):
            return 0
        if source == "first+llm":
            return self.guarded.last_added
        if source == "llm":
            return len(split_sentences(said, early_first_clause=False))
        return max(0, len(self.guarded.last_verdicts) - 1)  # all but the rejected one

    def _source(self, rejections_before: int) -> tuple[str, list[str]]:
        if self.guarded is None:
            return ("catalog" if self.catalog_only else "llm"), []
        verdicts = list(self.guarded.last_verdicts)
        notes = [f"{reason} ({sentence!r})" for sentence, reason in verdicts if reason]
        if self.guarded.last_first:  # the catalog's answer first, the LLM after it
            return ("first+llm" if self.guarded.last_added else "first"), notes
        if self.guarded.rejections == rejections_before:
            return "llm", notes
        passed = len(verdicts) - 1  # every sentence before the rejected one was said
        return ("mixed" if passed > 0 else "fallback"), notes


def _ms(instant: float | None, start: float) -> float | None:
    return None if instant is None else (instant - start) * 1000.0


async def evaluate(
    brain: Brain,
    items: Sequence[Question],
    catalog: Catalog,
    *,
    name: str = "brain",
    max_reply_chars: int = 400,
    timeout_s: float | None = 120.0,
    progress: Callable[[int, int, Answer], None] | None = None,
) -> Report:
    """Ask ``brain`` every question in order and score each answer against ``catalog`` (the
    catalog the questions were written from, and the one the brain answers from). A
    follow-up's previous question is asked just before it, unscored. ``progress(i, n,
    answer)`` hears of each scored answer."""
    asker = _Asker(brain, max_reply_chars, timeout_s)
    answers: list[Answer] = []
    for i, question in enumerate(items, 1):
        if question.previous is not None:
            await asker.ask(question.previous)
        answer = await asker.ask(question)
        answer.verdict = score(answer.text, question, catalog)
        if answer.error is not None:
            answer.verdict.garbage.append(f"no whole answer: {answer.error}")
        answers.append(answer)
        if progress is not None:
            progress(i, len(items), answer)
    return Report(name, answers)
