"""Distilling a pruned LLM on a tiny Qwen2 that was first trained on the stream's text, so the
teacher knows something the pruning takes away and distillation has something to recover."""

from __future__ import annotations

import copy
import math

import pytest
from needs import need_torch

torch = need_torch()
transformers = pytest.importorskip("transformers")

from streambot.brain.llm import LocalLLM  # noqa: E402
from streambot.brain.prompt import system_prompt  # noqa: E402
from streambot.catalog import Catalog  # noqa: E402
from streambot.compress.distill_llm import (  # noqa: E402
    distil_llm,
    full_kl,
    llm_fidelity,
    shared_prefix,
    topk_kl,
    turn_samples,
)
from streambot.compress.llm_data import calibration_texts, catalog_questions  # noqa: E402
from streambot.compress.prune_llm import measure_importance, prune_llm  # noqa: E402
from tests.llm_fixture import build_tiny_qwen2, train_on_texts  # noqa: E402

CATALOG = Catalog.load()
UNTIMED = 3600.0  # a budget no test reaches: the step counts bound them, on a busy machine too


def domain_text() -> list[str]:
    answers = [
        f"{q} Good question! Let me tell you about it." for q, _ in catalog_questions(CATALOG, 40)
    ]
    return calibration_texts(CATALOG, system_prompt(CATALOG)) + answers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, model, tokenizer, train ids, held-out ids): 400 steps on the domain text."""
    texts = domain_text()
    folder = build_tiny_qwen2(tmp_path_factory.mktemp("teacher"), texts)
    train_on_texts(folder, [t for i, t in enumerate(texts) if i % 7 != 1])
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    samples = [torch.tensor(tokenizer(t).input_ids) for t in texts]
    held, train = samples[1::7], [s for i, s in enumerate(samples) if i % 7 != 1]
    return folder, model, tokenizer, train, held


def test_the_trained_teacher_learned_the_domain(trained):
    _, model, _, _, held = trained
    figures = llm_fidelity(model, model, held)
    assert figures["kl"] == pytest.approx(0.0, abs=1e-6)
    assert figures["perplexity_teacher"] < 60  # far below the 600-token vocabulary's uniform


def test_topk_kl_is_zero_for_the_same_logits_and_grows_with_the_difference():
    teacher = torch.randn(5, 50)
    assert float(topk_kl(teacher, teacher, k=8)) == pytest.approx(0.0, abs=1e-6)
    near, far = teacher + 0.1 * torch.randn(5, 50), torch.randn(5, 50)
    assert 0 < float(topk_kl(near, teacher, k=8)) < float(topk_kl(far, teacher, k=8))


def test_distillation_brings_the_pruned_student_back_toward_the_teacher(trained, tmp_path):
    _, teacher, _, train, held = trained
    importance = measure_importance(teacher, train[:8])
    pruned = prune_llm(teacher, importance, ratio=0.5, mode="query")
    before = llm_fidelity(teacher, pruned.model, held)
    assert before["kl"] > 0.05  # pruning took something away
    report = distil_llm(
        teacher,
        pruned.model,
        train,
        budget_s=UNTIMED,
        max_steps=150,
        lr=2e-3,
        window=64,
        resume_path=tmp_path / "resume.pt",
    )
    after = llm_fidelity(teacher, pruned.model, held)
    assert report.steps == 150
    assert after["kl"] < 0.7 * before["kl"]
    assert abs(after["perplexity_student"] - after["perplexity_teacher"]) < abs(
        before["perplexity_student"] - before["perplexity_teacher"]
    )
    # resumable: a second run with the same widths continues from the saved step
    again = distil_llm(
        teacher,
        pruned.model,
        train,
        budget_s=UNTIMED,
        max_steps=2,
        window=64,
        resume_path=tmp_path / "resume.pt",
    )
    assert again.resumed_from == 150


def test_the_pruned_folder_runs_in_the_brain_with_its_prefix_cache(trained, tmp_path):
    _, teacher, tokenizer, train, _ = trained
    pruned = prune_llm(teacher, measure_importance(teacher, train[:4]), ratio=0.5)
    pruned.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    llm = LocalLLM(tmp_path, device="cpu")
    assert llm.model.config.num_attention_heads == 2
    llm.set_system_prompt(system_prompt(CATALOG))
    messages = [
        {"role": "system", "content": system_prompt(CATALOG)},
        {"role": "user", "content": "how much is the grinder?"},
    ]
    cached = llm.first_token_logits(messages, use_cache=True)
    uncached = llm.first_token_logits(messages, use_cache=False)
    assert torch.allclose(cached, uncached, atol=1e-4)


def test_fidelity_is_measured_after_the_prefix_every_text_shares_and_equals_full_runs(trained):
    """The shared prefix (the system prompt) runs once, each text's rest on its KV cache; the
    figures are those of full forward passes scored on the same tokens."""
    _, teacher, _, train, held = trained
    importance = measure_importance(teacher, train[:8])
    student = prune_llm(teacher, importance, ratio=0.5, mode="query").model
    prefix = train[0][:12]
    texts = [torch.cat([prefix, h]) for h in held]
    assert shared_prefix(texts) >= 12
    figures = llm_fidelity(teacher, student, texts)
    p = figures["prefix"]
    kl = nll = 0.0
    for ids in texts:
        with torch.inference_mode():
            t = teacher(input_ids=ids.reshape(1, -1)).logits[0, p - 1 : -1]
            s = student(input_ids=ids.reshape(1, -1)).logits[0, p - 1 : -1]
        kl += float(full_kl(s, t)) * (ids.numel() - p)
        nll += float(torch.nn.functional.cross_entropy(s, ids[p:], reduction="sum"))
    tokens = sum(ids.numel() - p for ids in texts)
    assert figures["tokens"] == tokens
    assert figures["kl"] == pytest.approx(kl / tokens, rel=1e-3)
    assert figures["perplexity_student"] == pytest.approx(math.exp(nll / tokens), rel=1e-3)


def with_prompt(prompt: torch.Tensor, texts: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each text as a turn after ``prompt``, as the teacher's answers come to the build."""
    return [torch.cat([prompt, t[:40]]) for t in texts]


def test_each_turn_is_drawn_after_the_prompt_every_text_shares():
    prompt = torch.arange(100, 200)
    texts = with_prompt(prompt, [torch.arange(i, i + 50) for i in range(5)])
    turns = turn_samples(texts, shared_prefix(texts), 16, seed=3)
    for _ in range(20):
        turn, learn_from = next(turns)
        assert learn_from is None  # the teacher's distribution only
        assert turn.numel() == 16  # at most the window, from the turn's start
        assert int(turn[0]) in range(5) and bool((turn[1:] - turn[:-1] == 1).all())


def test_the_student_learns_the_turns_with_the_whole_prompt_before_them(trained, tmp_path):
    """The prompt (the catalog as the system prompt) is longer than the window: the turns are
    still learned after all of it, and the held-out turns' KL falls."""
    _, teacher, tokenizer, train, held = trained
    prompt = torch.tensor(tokenizer(system_prompt(CATALOG)).input_ids)
    window = 32
    assert prompt.numel() > 4 * window
    turns, held_turns = with_prompt(prompt, train), with_prompt(prompt, held)
    importance = measure_importance(teacher, train[:8])
    pruned = prune_llm(teacher, importance, ratio=0.5, mode="query")
    before = llm_fidelity(teacher, pruned.model, held_turns)
    assert before["prefix"] >= prompt.numel()  # measured on the turns only
    distil_llm(teacher, pruned.model, turns, budget_s=UNTIMED, max_steps=60, lr=2e-3, window=window)
    after = llm_fidelity(teacher, pruned.model, held_turns)
    # random windows of the whole texts got to 0.61 of it, learning the prompt; turns 0.40-0.48
    # (the same steps on two CPUs: float order changes the 60 steps' path)
    assert after["kl"] < 0.55 * before["kl"]


def words_loss(model, ids: torch.Tensor, start: int) -> float:
    """The model's cross-entropy on ``ids[start:]`` after what comes before them."""
    with torch.no_grad():
        logits = model(ids[None]).logits[0]
    return float(torch.nn.functional.cross_entropy(logits[start - 1 : -1], ids[start:]))


def test_the_student_learns_the_daemons_words_where_they_replace_the_teachers(trained):
    """A turn whose answer the guard replaced: its words are learnt as they are (from
    ``said_from``), not only the teacher's distribution, which favours what it wrote."""
    _, teacher, tokenizer, train, _ = trained
    prompt = torch.tensor(tokenizer(system_prompt(CATALOG)).input_ids)
    question = torch.tensor(tokenizer("Hi! How are you?").input_ids)
    words = torch.tensor(tokenizer("Welcome to the stream, ask me anything.").input_ids)
    replaced = torch.cat([prompt, question, words])
    start = prompt.numel() + question.numel()
    samples = [*with_prompt(prompt, train[:2]), replaced]
    importance = measure_importance(teacher, train[:8])
    pruned = prune_llm(teacher, importance, ratio=0.5, mode="query").model
    taught, untaught = copy.deepcopy(pruned), copy.deepcopy(pruned)
    settings = {"budget_s": UNTIMED, "max_steps": 40, "lr": 2e-3, "window": 48}
    distil_llm(teacher, taught, samples, said_from=[None, None, start], **settings)
    distil_llm(teacher, untaught, samples, **settings)
    assert words_loss(taught, replaced, start) < 0.5 * words_loss(untaught, replaced, start)
    assert words_loss(taught, replaced, start) < words_loss(teacher, replaced, start)
