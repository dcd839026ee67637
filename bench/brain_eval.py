"""Answer accuracy of the host's brains on questions generated from the catalog.

Every brain answers the same questions (``streambot.brain.evaluate.questions``: price, stock,
restock, shipping, selling points, comparisons, totals, discount requests, what the catalog
does not say, follow-ups, greetings, off-topic, prompt injections; English and Chinese), asked
the way the host asks (a turn per message, the reply streamed through the sentence splitter),
built the way the daemon builds it (``build_brain``: an LLM behind the guard, the catalog brain
as its fallback). One markdown row per brain.

    python bench/brain_eval.py                                   # the catalog brain
    python bench/brain_eval.py --brain catalog --brain llm --model ~/models/Qwen2.5-0.5B-Instruct
    python bench/brain_eval.py --brain llm --model model.gguf --limit 60 --langs en
    python bench/brain_eval.py --brain llm --model model.gguf --memory summary --facts slots
    python bench/brain_eval.py --brain llm --model m.gguf --answer-first off --first-sentence-s 0
    python bench/brain_eval.py --brain openai --openai-model qwen2.5 --base-url http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import sys

from streambot.brain.eval_questions import questions, sample
from streambot.brain.evaluate import Report, evaluate, table
from streambot.brain.factory import build_brain
from streambot.catalog import LiveCatalog
from streambot.config import Config, load_config


def _config(args: argparse.Namespace, backend: str) -> Config:
    config = load_config(args.config) if args.config else Config()
    config.brain.backend = backend
    if args.catalog:
        config.brain.catalog.path = args.catalog
    if args.model:
        config.brain.llm.path = args.model
    if args.device:
        config.brain.llm.device = args.device
    if args.dtype:
        config.brain.llm.dtype = args.dtype
    if args.answer_first is not None:
        config.brain.llm.answer_first = config.brain.openai.answer_first = args.answer_first
    for section in (config.brain.llm, config.brain.openai):
        section.memory = args.memory or section.memory
        section.facts = args.facts or section.facts
        if args.first_sentence_s is not None:
            section.first_sentence_s = args.first_sentence_s
    if args.openai_model:
        config.brain.openai.model = args.openai_model
    if args.base_url:
        config.brain.openai.base_url = args.base_url
    return config


async def _run(args: argparse.Namespace) -> list[Report]:
    reports = []
    for backend in args.brain:
        config = _config(args, backend)
        live = LiveCatalog(config.brain.catalog.path or None)
        brain, catalog_brain = build_brain(config, live)
        if backend != "catalog" and brain is catalog_brain:
            raise SystemExit(f"the {backend} brain could not be built (see the warning above)")
        items = sample(questions(live.current, args.langs), args.limit)

        def progress(i: int, n: int, answer, backend: str = backend) -> None:
            if args.verbose:
                mark = "ok " if answer.verdict.correct else "BAD"
                print(f"{backend} {i}/{n} {mark} {answer.question.text!r} -> {answer.text!r}")
                for note in answer.guard:  # what the guard refused or put right, and why
                    print(f"    guard: {note}")

        report = await evaluate(
            brain,
            items,
            live.current,
            name=backend,
            max_reply_chars=config.host.max_reply_chars,
            timeout_s=args.timeout,
            progress=progress,
        )
        reports.append(report)
        if args.failures:
            print(f"\n{backend}: answers that were not right\n{report.failures()}\n")
    return reports


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--brain",
        action="append",
        choices=("catalog", "llm", "openai"),
        help="a brain to evaluate; repeat for several (default: catalog)",
    )
    parser.add_argument("--model", help="[brain.llm] path: a model folder or a .gguf file")
    parser.add_argument("--device", help="[brain.llm] device (auto, cpu, cuda)")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        help="[brain.llm] dtype (default: the config's)",
    )
    parser.add_argument("--openai-model", help="[brain.openai] model")
    parser.add_argument("--base-url", help="[brain.openai] base_url")
    parser.add_argument(
        "--answer-first",
        choices=("on", "off"),
        help="[brain.llm] / [brain.openai] answer_first (default: the config's)",
    )
    parser.add_argument(
        "--memory",
        choices=("turns", "summary", "none"),
        help="[brain.llm] / [brain.openai] memory (default: the config's)",
    )
    parser.add_argument(
        "--facts",
        choices=("text", "slots"),
        help="[brain.llm] / [brain.openai] facts (default: the config's)",
    )
    parser.add_argument(
        "--first-sentence-s",
        type=float,
        help="[brain.llm] / [brain.openai] first_sentence_s (default: the config's; 0 judges "
        "the model's words whatever this machine's load, the fallback never taking a turn "
        "for lateness)",
    )
    parser.add_argument("--config", help="a config.toml to start from (default: the defaults)")
    parser.add_argument("--catalog", help="[brain.catalog] path (default: the demo catalog)")
    parser.add_argument("--limit", type=int, help="at most N questions, every kind represented")
    parser.add_argument(
        "--langs",
        type=lambda s: tuple(x.strip() for x in s.split(",") if x.strip()),
        default=("en", "zh"),
        help="languages, comma-separated (default: en,zh)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per answer")
    parser.add_argument("--failures", action="store_true", help="print every wrong answer")
    parser.add_argument("--kinds", action="store_true", help="print per-kind accuracy")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    return parser


def _report(args: argparse.Namespace, reports: list[Report]) -> None:
    """Print the run's header, the accuracy table and who said the answers."""
    print(f"command: python {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, {platform.machine()}")
    print(f"questions: {reports[0].n if reports else 0}, languages {','.join(args.langs)}\n")
    print(table(reports))
    if args.kinds:
        for report in reports:
            print(f"\n{report.kinds_table()}")
    for report in reports:
        said = ", ".join(f"{source} {n}" for source, n in report.sources().items() if n)
        print(f"\n{report.name}: who said the answers: {said}")
        if report.llm_sentences():
            print(f"{report.name}: {report.llm_sentences()}")
        if report.llm_edited:
            print(
                f"{report.name}: of the LLM's whole answers, {report.llm_edited} with a figure "
                "the guard put right or added"
            )


def main() -> int:
    args = _parser().parse_args()
    args.brain = args.brain or ["catalog"]
    args.answer_first = None if args.answer_first is None else args.answer_first == "on"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    reports = asyncio.run(_run(args))
    _report(args, reports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
