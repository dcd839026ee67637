"""build_engines.py --only llm judges the pruned LLM by its answers: teacher and student each
answer held-out questions inside the daemon's guarded brain, and a student that is less
accurate than its teacher or writes garbage is never a default. Tiny Qwen2 models built in
fixtures run the real build (few questions and answers, short replies)."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path

import pytest
from needs import need_torch

torch = need_torch()
transformers = pytest.importorskip("transformers")

from streambot.brain.assemble import daemon_brain  # noqa: E402
from streambot.brain.catalog import CatalogBrain  # noqa: E402
from streambot.brain.eval_questions import questions, sample  # noqa: E402
from streambot.brain.evaluate import evaluate  # noqa: E402
from streambot.brain.factory import build_brain  # noqa: E402
from streambot.brain.guard import ReplyGuard  # noqa: E402
from streambot.brain.guarded import GuardedBrain  # noqa: E402
from streambot.brain.llm import LLMBrain, LocalLLM  # noqa: E402
from streambot.brain.llm_load import load_causal_lm  # noqa: E402
from streambot.brain.prompt import system_prompt  # noqa: E402
from streambot.catalog import Catalog  # noqa: E402
from streambot.compress import distill_llm, llm_build, llm_judge, llm_teacher, prune_llm  # noqa: E402
from streambot.compress.common import BuildOptions  # noqa: E402
from streambot.compress.llm_data import (  # noqa: E402
    CHATTER,
    calibration_texts,
    catalog_questions,
    question_key,
    split_questions,
)
from streambot.config import CatalogBrainConfig, load_config  # noqa: E402
from streambot.runtime.manifest import Manifest  # noqa: E402
from tests.llm_fixture import build_tiny_qwen2  # noqa: E402

CATALOG = Catalog.load()
COLLAPSED = ("I. [1.00000000000000000000", "A viewer wrote (quoted): 12000000000000000000")


def corpus() -> list[str]:
    asked = [q for q, _ in catalog_questions(CATALOG, None)]
    return calibration_texts(CATALOG, system_prompt(CATALOG)) + asked


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny random Qwen2: it writes word salad."""
    return build_tiny_qwen2(tmp_path_factory.mktemp("teacher"), corpus())


@pytest.fixture(scope="module")
def silent_teacher(tmp_path_factory) -> Path:
    """A tiny Qwen2 whose final norm is zero: every logit is 0, so it picks token 0,
    <|endoftext|>, a stop token: it never writes a word, and so never writes garbage."""
    folder = build_tiny_qwen2(tmp_path_factory.mktemp("silent"), corpus())
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.save_pretrained(folder)
    return folder


def project(folder: Path, model: Path, catalog: Path | None = None):
    text = f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{model}'\ndevice = 'cpu'\n"
    text += "max_new_tokens = 8\n"
    if catalog is not None:
        text += f"[brain.catalog]\npath = '{catalog}'\n"
    (folder / "config.toml").write_text(text)
    return load_config(folder / "config.toml")


def options(out: Path, **overrides) -> BuildOptions:
    small = {
        "out": out,
        "distil_minutes": 0.005,
        "llm_eval_questions": 8,
        "llm_teacher_answers": 8,
        "llm_kl_answers": 2,
        "max_llm_kl": 1e9,
        "llm_drop_layers": 0,  # of a 2-layer model
        "distil_min_steps": 0,
    }
    return BuildOptions(**{**small, **overrides})


def build(config, opts: BuildOptions):
    manifest = Manifest.load(opts.out)
    job = llm_build.resolve_llm(config, opts)
    (row,) = llm_build.build_llm(config, job, opts, manifest)
    (entry,) = [a for a in manifest.artifacts if a.kind == "llm"]
    return row, entry


class Writes:
    """Counts the teacher's answers written (not read from the cache)."""

    def __init__(self, monkeypatch) -> None:
        self.count, self._write = 0, llm_teacher._write
        monkeypatch.setattr(llm_teacher, "_write", self)
        monkeypatch.setattr(llm_teacher, "ANSWER_TOKENS", 8)

    def __call__(self, *args):
        self.count += 1
        return self._write(*args)


@pytest.fixture(scope="module")
def first_build(teacher, tmp_path_factory):
    """The random teacher's build: (folder, config, row, manifest entry, answers written)."""
    folder = tmp_path_factory.mktemp("build")
    config = project(folder, teacher)
    with pytest.MonkeyPatch.context() as monkeypatch:
        writes = Writes(monkeypatch)
        row, entry = build(config, options(folder / "engines"))
    return folder, config, row, entry, writes.count


# -- the questions -----------------------------------------------------------------------------
def test_held_out_questions_are_never_among_the_questions_the_teacher_answers():
    held, turns = split_questions(CATALOG, 100, 200)
    assert len(held) == 100 and len(turns) == 200
    assert {q.kind for q in held} == {q.kind for q in questions(CATALOG)}  # every kind judged
    held_keys = {question_key(q.text) for q in held}
    held_keys |= {question_key(q.previous.text) for q in held if q.previous is not None}
    taught = {question_key(t.message.text) for t in turns}
    assert not held_keys & taught
    assert len(taught) >= 190  # nearly all distinct; a repeat comes from another viewer
    again = [t for t in turns if [u.message.text for u in turns].count(t.message.text) > 1]
    assert len({(t.message.text, t.message.user) for t in again}) == len(again)
    # "How much is the grinder?" and "how much is the grinder" are one question
    assert question_key("How much is the grinder?") == question_key("how much is the  grinder")


def test_the_teacher_answers_every_kind_of_question_the_student_is_judged_on():
    """Every greeting of the evaluation is held out; a student taught none answered "Hi!" with
    a price. The small talk the build adds is taught instead, in any number of answers."""
    held, _ = split_questions(CATALOG, 100, 200)
    kind_of = {question_key(q.text): q.kind for q in questions(CATALOG)}
    kind_of |= {
        question_key(text): kind
        for kind, by_lang in CHATTER.items()
        for texts in by_lang.values()
        for text in texts
    }
    # the demo catalog gives 4 restock questions, all held out; "is it in stock" is taught
    judged = {q.kind for q in held} - {"restock"}
    for answers in (26, 200):
        _, turns = split_questions(CATALOG, 100, answers)
        taught = {kind_of.get(question_key(t.message.text), "product") for t in turns}
        assert judged <= taught, (answers, judged - taught)


def test_the_kl_answers_are_held_out_of_training_and_spread_over_all_of_them():
    held, train = llm_build.hold_out(list(range(200)), 50)
    assert len(held) == 50 and len(train) == 150 and not set(held) & set(train)
    assert held[0] == 0 and held[-1] >= 190


def test_counts_that_leave_nothing_to_train_on_are_refused_naming_the_option(teacher, tmp_path):
    config = project(tmp_path, teacher)
    with pytest.raises(llm_build.BuildError, match="--llm-kl-answers"):
        llm_build.resolve_llm(config, options(tmp_path, llm_kl_answers=12))
    with pytest.raises(llm_build.BuildError, match="--llm-eval-questions"):
        llm_build.resolve_llm(config, options(tmp_path, llm_eval_questions=0))


def test_the_build_judges_a_model_in_the_very_brain_the_daemon_builds(teacher, tmp_path):
    config = project(tmp_path, teacher)
    config.brain.llm.engine = "none"  # the model itself, not a pruned one from some engines/
    daemon, _ = build_brain(config)
    tokenizer, model = load_causal_lm(teacher, torch.float32, "cpu")
    llm = LocalLLM.from_loaded(tokenizer, model)
    judged = daemon_brain(llm, config, CatalogBrain(config.brain.catalog))
    assert type(judged.inner) is type(daemon.inner) is GuardedBrain
    assert type(judged.inner.inner) is type(daemon.inner.inner) is LLMBrain
    items = sample(questions(CATALOG), 4)
    said = [asyncio.run(evaluate(b, items, CATALOG)).answers for b in (daemon, judged)]
    # the same words said, by the same brain, after the same words written and refused
    assert [(a.text, a.source, a.guard) for a in said[0]] == [
        (a.text, a.source, a.guard) for a in said[1]
    ]
    assert any(a.guard for a in said[0])  # the model wrote, the guard read it
    llm.executor.shutdown()


# -- the default rule, on scripted answers ------------------------------------------------------
class Hesitant:
    """The catalog brain, except that it says "Let me think." to the first ``misses``
    questions: exactly that many answers fewer right."""

    def __init__(self, misses: int) -> None:
        self.catalog, self.left = CatalogBrain(CatalogBrainConfig()), misses

    def pitch_topics(self) -> list[str]:
        return self.catalog.pitch_topics()

    async def reply(self, turn):
        if self.left > 0:
            self.left -= 1
            yield "Let me think."
            return
        async for delta in self.catalog.reply(turn):
            yield delta


def rates_of(brain, items) -> dict:
    return llm_build.answer_rates(asyncio.run(evaluate(brain, items, CATALOG)))


def test_a_student_more_than_three_points_less_accurate_than_its_teacher_is_refused():
    items = [q for q in sample(questions(CATALOG), 60) if q.previous is None][:40]
    teacher = rates_of(Hesitant(0), items)
    assert teacher["accuracy"] >= 0.9
    close, far = rates_of(Hesitant(1), items), rates_of(Hesitant(2), items)  # 2.5 and 5 pts
    assert llm_build.refusals(close, teacher, 0.1, BuildOptions()) == []
    (why,) = llm_build.refusals(far, teacher, 0.1, BuildOptions())
    assert why == (f"accuracy {far['accuracy']:.1%} < teacher {teacher['accuracy']:.1%} - 3 pts")
    assert llm_build.refusals(far, teacher, 0.1, BuildOptions(max_llm_accuracy_drop=6)) == []
    assert llm_build.refusals(close, teacher, 0.7, BuildOptions()) == ["KL 0.700 > 0.5"]


class Collapsed:
    """An LLM brain that writes what a collapsed pruned student wrote."""

    def __init__(self, text: str) -> None:
        self.text = text

    def pitch_topics(self) -> list[str]:
        return ["thermo"]

    async def reply(self, turn):
        yield self.text


@pytest.mark.parametrize("text", COLLAPSED)
def test_garbage_the_guard_stops_is_still_garbage_written(text):
    catalog_brain = CatalogBrain(CatalogBrainConfig())
    items = [q for q in questions(CATALOG) if q.kind in ("price", "greeting")][:4]
    guarded = GuardedBrain(Collapsed(text), catalog_brain, ReplyGuard(CATALOG), CATALOG)
    report = asyncio.run(evaluate(guarded, items, CATALOG))
    assert report.garbage == 0 and report.llm_share == 0  # never spoken: the catalog answered
    rates = llm_build.answer_rates(report)
    assert rates["garbage_written"] == len(items)  # but written, every time
    assert rates["misses"] == report.misses(llm_judge.MISSES_KEPT)  # kept to learn from
    # ... and so is the garbage it was refused for, each with what the guard said of it
    assert [g["question"] for g in rates["garbage"]] == [q.text for q in items]
    assert all(g["garbage"] and g["said"] != text for g in rates["garbage"])
    clean = {**rates, "garbage_written": 0}
    (why,) = llm_build.refusals(rates, clean, 0.1, BuildOptions())
    assert why == f"writes garbage in {len(items)} of {len(items)} answers (teacher 0)"


# -- the build -----------------------------------------------------------------------------------
def test_the_build_refuses_a_collapsed_student_and_says_why(silent_teacher, tmp_path, monkeypatch):
    """The student writes nothing but "7": behind the guard the catalog says every answer, so
    it is exactly as accurate as its teacher (which writes nothing at all); it is refused for
    the garbage it writes."""
    prune = prune_llm.prune_llm

    def scrambled(*args, **kwargs):
        pruned = prune(*args, **kwargs)
        seven = transformers.AutoTokenizer.from_pretrained(silent_teacher).convert_tokens_to_ids(
            "7"
        )

        def only_sevens(module, inputs, logits):
            forced = torch.full_like(logits, -10.0)
            forced[..., seven] = 10.0
            return logits * 0 + forced  # still attached to the graph: distillation runs

        pruned.model.lm_head.register_forward_hook(only_sevens)
        return pruned

    monkeypatch.setattr(prune_llm, "prune_llm", scrambled)
    Writes(monkeypatch)
    row, entry = build(project(tmp_path, silent_teacher), options(tmp_path / "engines"))
    answers = entry.fidelity["answers"]
    student, teacher = answers["student"], answers["teacher"]
    assert student["garbage_written"] == 8 and teacher["garbage_written"] == 0
    assert student["garbage_said"] == teacher["garbage_said"] == 0  # the guard held
    assert student["accuracy"] == teacher["accuracy"]  # the accuracy alone would pass it
    assert not entry.default
    assert entry.fidelity["not_default"] == ["writes garbage in 8 of 8 answers (teacher 0)"]
    assert row.detail.endswith("; not a default: writes garbage in 8 of 8 answers (teacher 0)")


def test_the_summary_line_has_every_rate_of_both_models(first_build):
    _, _, row, entry, _ = first_build
    s, t = entry.fidelity["answers"]["student"], entry.fidelity["answers"]["teacher"]
    after = entry.fidelity["after_distillation"]
    assert s["questions"] == t["questions"] == 8
    for part in (
        f"on 8 held-out questions student {s['accuracy']:.1%} right (teacher {t['accuracy']:.1%})",
        f"garbage written {s['garbage_written']} ({t['garbage_written']})",
        f"said {s['garbage_said']} ({t['garbage_said']})",
        f"LLM share {s['llm_share']:.0%} ({t['llm_share']:.0%})",
        f"wrong figures {s['wrong_figures']} ({t['wrong_figures']})",
        f"unsupported {s['unsupported']} ({t['unsupported']})",
        f"-> {after['kl']:.2f}",
        f"ppl {after['perplexity_student']:.1f} (teacher {after['perplexity_teacher']:.1f}) "
        "on 2 held-out answers",
    ):
        assert part in row.detail, (part, row.detail)
    assert entry.fidelity["held_out_answers"] == 2
    assert entry.fidelity["teacher_writing"]["answers"] == 8


def teacher_answers(config, opts: BuildOptions, daemons_words: bool = True):
    """The build's step that gets the teacher's answers, on its own: (texts, its record)."""
    tokenizer, model = load_causal_lm(Path(config.brain.llm.path), torch.float32, "cpu")
    job = llm_build.resolve_llm(config, opts)
    catalog = Catalog.load(config.brain.catalog.path or None)
    _, turns = split_questions(catalog, opts.llm_eval_questions, opts.llm_teacher_answers)
    return llm_teacher.teacher_texts(config, job, opts.out, tokenizer, model, turns, daemons_words)


def test_the_teachers_answers_are_cached_and_written_again_for_another_catalog(
    first_build, monkeypatch
):
    folder, config, _, entry, written = first_build
    assert written == 8 and entry.fidelity["teacher_writing"]["cached"] == 0
    job = llm_build.resolve_llm(config, options(folder))
    saved = json.loads((folder / "engines" / f".{job.slug}.teacher-answers.json").read_text())
    assert len(saved["answers"]) == 8 and saved["key"]

    writes = Writes(monkeypatch)  # the same model, catalog, prompts and questions: none written
    texts, record = teacher_answers(config, options(folder / "engines"))
    assert writes.count == 0 and record["cached"] == 8
    # each cached answer is in its text unless the guard would not have said it
    assert record["replaced_by_the_daemon"] == sum(t.replaced for t in texts)
    pairs = zip(saved["answers"], texts, strict=True)
    assert all(answer in text.text for answer, text in pairs if not text.replaced)
    # the A/B's other arm learns every answer as the teacher wrote it
    as_written, record = teacher_answers(config, options(folder / "engines"), False)
    assert record["would_be_replaced"] == sum(t.replaced for t in texts) > 0
    assert not any(t.replaced for t in as_written)
    assert all(a in t.text for a, t in zip(saved["answers"], as_written, strict=True))

    text = resources.files("streambot.assets").joinpath("catalog.toml").read_text("utf-8")
    changed = text.replace("89.99", "79.99")
    assert changed != text
    (folder / "catalog.toml").write_text(changed)
    other = project(folder, config.brain.llm.path, folder / "catalog.toml")
    _, record = teacher_answers(other, options(folder / "engines"))
    assert writes.count == 8 and record["cached"] == 0


# -- decode speed, the teacher judged once, a folder's distillation continued --------------------
def test_both_models_decode_speed_is_recorded_and_the_speedup_is_in_the_row(first_build):
    _, _, row, entry, _ = first_build
    decode = entry.fidelity["decode"]
    assert decode["teacher_tok_s"] > 0 and decode["student_tok_s"] > 0
    assert decode["speedup"] == pytest.approx(
        decode["student_tok_s"] / decode["teacher_tok_s"], rel=0.01
    )
    assert decode["tokens"] == llm_judge.DECODE_TOKENS and decode["repeats"] >= 3
    assert f"params, decode {decode['speedup']:.2f}x (" in row.detail


class Judged:
    """Counts the models judged, by name (the teacher's through its cache, the student's
    directly)."""

    def __init__(self, monkeypatch) -> None:
        self.names: list[str] = []
        self._judge = llm_judge.judge
        monkeypatch.setattr(llm_judge, "judge", self)
        monkeypatch.setattr(llm_build, "judge", self)

    def __call__(self, model, tokenizer, config, items, name):
        self.names.append(name)
        return self._judge(model, tokenizer, config, items, name)


def built(config, opts: BuildOptions):
    """Build into ``opts.out`` beside what is there: (row, the entry of this build's folder)."""
    manifest = Manifest.load(opts.out)
    job = llm_build.resolve_llm(config, opts)
    (row,) = llm_build.build_llm(config, job, opts, manifest)
    (entry,) = [a for a in manifest.artifacts if a.file == job.folder]
    return row, entry, job


def test_another_ratio_neither_writes_nor_judges_the_teacher_again(first_build, monkeypatch):
    folder, config, _, first, _ = first_build
    assert first.fidelity["answers"]["teacher_cached"] is False
    judged, writes = Judged(monkeypatch), Writes(monkeypatch)
    teacher_answers(config, options(folder / "engines"))  # this catalog's (a test cached another)
    writes.count = 0
    opts = options(folder / "engines", prune_given=0.25, llm_drop_layers=1)
    _, entry, job = built(config, opts)
    assert judged.names == ["student"] and writes.count == 0
    assert entry.fidelity["answers"]["teacher_cached"] is True
    assert entry.fidelity["answers"]["teacher"] == first.fidelity["answers"]["teacher"]
    assert (
        job.folder.endswith("-p25-d1")
        and entry.pruning["params_after"] < (first.pruning["params_after"])
    )


def test_the_teachers_rates_are_judged_again_when_anything_they_depend_on_changes(
    teacher, tmp_path
):
    config = project(tmp_path, teacher)
    inputs = llm_build.resolve_llm(config, options(tmp_path)).inputs
    held, _ = split_questions(CATALOG, 8, 8)
    system = system_prompt(CATALOG)

    def key(config=config, inputs=inputs, system=system, held=held, dtype="torch.float32"):
        return llm_judge.rates_key(config, inputs, system, held, dtype)

    other = project(tmp_path, teacher)
    other.brain.llm.max_new_tokens = 16
    no_first = project(tmp_path, teacher)
    no_first.brain.llm.answer_first = False
    changed = [
        key(held=held[:7]),
        key(held=[*held[:7], held[0]]),  # one question another
        key(inputs={**inputs, "catalog": "0" * 64}),
        key(inputs={**inputs, "model": "0" * 64}),
        key(system=system + " "),
        key(dtype="torch.bfloat16"),
        key(config=other),
        key(config=no_first),
    ]
    assert key() == key(config=project(tmp_path, teacher))  # the same inputs: the same key
    assert len({key(), *changed}) == len(changed) + 1
    # ... and the pruning is no part of it: every ratio shares the teacher's
    assert key(inputs={**inputs, "build settings": "0" * 64}) == key()


def test_a_build_of_the_same_folder_continues_its_distillation(first_build, monkeypatch):
    folder, config, _, first, _ = first_build
    Writes(monkeypatch)
    done = first.fidelity["distillation"]
    assert done["resumed_from_step"] == 0 and done["steps"] > 0
    opts = options(folder / "engines", distil_minutes=0.002)
    job = llm_build.resolve_llm(config, opts)
    step = distill_llm._resumed_step(job.resume_path(opts.out))
    assert step >= done["steps"]  # this file's builds so far
    _, entry, _ = built(config, opts)
    again = entry.fidelity["distillation"]
    assert again["resumed_from_step"] == step and again["steps"] > 0
    assert distill_llm._resumed_step(job.resume_path(opts.out)) == step + again["steps"]
