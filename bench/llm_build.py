"""build_engines.py --only llm on a small Qwen2 trained here on the stream's own conversations.

The 0.5B bench (bench/llm_prune.py) runs random weights: it measures speed and says nothing
about quality. This one measures quality, on a model that knows something to lose: a Qwen2 (by
default hidden 256, 4 layers, 8 query heads in 2 KV groups) with a byte-level BPE, trained at
the start of the run on the catalog, the system prompt and viewer questions answered by the
catalog brain (so its answers carry the catalog's figures), then handed to the real builder as
``[brain.llm] path``. The figures printed are the build's own report from the manifest: weights,
teacher-student KL and perplexity on held-out teacher-written answers before and after
distillation, and the answer evaluation (brain/evaluate.py) of the teacher and of the pruned
student on held-out questions, each inside the daemon's guarded brain. A small trained model,
not a Qwen checkpoint: it says what the build recovers, not what a 0.5B keeps.

    python bench/llm_build.py                          # ratio 0.5, 4 minutes of distillation
    python bench/llm_build.py --prune 0.25 --distil-minutes 10
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.llm_fixture

import torch  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from streambot.brain.catalog import CatalogAnswerer  # noqa: E402
from streambot.brain.prompt import system_prompt  # noqa: E402
from streambot.catalog import Catalog  # noqa: E402
from streambot.compress.llm_data import calibration_texts, catalog_questions  # noqa: E402
from tests.llm_fixture import build_tiny_qwen2, train_on_texts  # noqa: E402


def conversations(catalog: Catalog, count: int) -> list[list[dict[str, str]]]:
    """Viewer questions with the catalog brain's answer (right figures by construction)."""
    answerer = CatalogAnswerer(catalog)
    chats = []
    for question, lang in catalog_questions(catalog, count, seed=7):
        answer = answerer.answer(question, "friend", lang)
        chats.append(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        )
    return chats


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prune", type=float, default=0.5)
    parser.add_argument("--distil-minutes", type=float, default=4.0)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument(
        "--train-window",
        type=int,
        default=2048,
        help="tokens per training window (longer than any training text: whole texts)",
    )
    parser.add_argument("--llm-heads", default="auto", choices=("auto", "query", "groups"))
    return parser


def _trained_teacher(
    folder: Path, catalog: Catalog, args: argparse.Namespace
) -> tuple[Path, float, float]:
    """A tiny Qwen2 trained on the catalog's texts: its folder, last loss, seconds trained."""
    system = system_prompt(catalog)
    chats = conversations(catalog, 400)
    plain = calibration_texts(catalog, system) + [c[0]["content"] for c in chats]
    teacher = build_tiny_qwen2(
        folder / "teacher",
        plain + [c[1]["content"] for c in chats],
        hidden=args.hidden,
        layers=args.layers,
        heads=args.heads,
        kv_heads=args.kv_heads,
    )
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    texts = plain + [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    started = time.monotonic()
    loss = train_on_texts(teacher, texts, steps=args.train_steps, window=args.train_window)
    return teacher, loss, time.monotonic() - started


def _build_command(folder: Path, args: argparse.Namespace) -> list[str]:
    """build_engines.py pruning and distilling the LLM that folder/config.toml names."""
    return [
        sys.executable,
        str(ROOT / "build_engines.py"),
        "--config",
        str(folder / "config.toml"),
        "--out",
        str(folder / "engines"),
        "--only",
        "llm",
        "--prune",
        str(args.prune),
        "--distil-minutes",
        str(args.distil_minutes),
        "--llm-heads",
        args.llm_heads,
        "--max-llm-kl",
        "100",
    ]


def _report(args: argparse.Namespace, trained_s: float, loss: float, entry: dict) -> None:
    """Print the teacher, the pruning, the distillation and the fidelity of the LLM entry."""
    pruning, fidelity = entry["pruning"], entry["fidelity"]
    before, after = fidelity["before_distillation"], fidelity["after_distillation"]
    print(f"# python bench/llm_build.py {' '.join(sys.argv[1:])}".rstrip())
    print(
        f"# teacher: Qwen2 hidden {args.hidden}, {args.layers} layers, {args.heads}/"
        f"{args.kv_heads} heads, trained here {args.train_steps} steps of "
        f"{args.train_window} tokens in {trained_s:.0f} s "
        f"(last loss {loss:.2f}); {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"pruned to: {pruning['after']}  params {pruning['params_before'] / 1e6:.2f}M -> "
        f"{pruning['params_after'] / 1e6:.2f}M, weights {pruning['weight_bytes'] / 2**20:.1f} "
        f"MiB"
    )
    distil = fidelity["distillation"]
    print(
        f"distillation: {distil['steps']} steps in {distil['seconds']} s, loss "
        f"{distil['first_loss']:.3f} -> {distil['last_loss']:.3f}; held-out answers "
        f"{fidelity['held_out_answers']}"
    )
    print(f"{'':<22}{'KL':>10}{'ppl teacher':>14}{'ppl student':>14}")
    for name, row in (("before distillation", before), ("after distillation", after)):
        print(
            f"{name:<22}{row['kl']:>10.3f}{row['perplexity_teacher']:>14.2f}"
            f"{row['perplexity_student']:>14.2f}"
        )
    for who in ("teacher", "student"):
        a = fidelity["answers"][who]
        print(
            f"{who:<8} {a['questions']} held-out questions: {a['accuracy']:.1%} right, "
            f"garbage written {a['garbage_written']}, said {a['garbage_said']}, LLM share "
            f"{a['llm_share']:.0%}, wrong figures {a['wrong_figures']}, unsupported "
            f"{a['unsupported']}"
        )
    if fidelity["not_default"]:
        print(f"not a default: {'; '.join(fidelity['not_default'])}")


def main() -> int:
    args = _parser().parse_args()
    catalog = Catalog.load()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        teacher, loss, trained_s = _trained_teacher(folder, catalog, args)
        (folder / "config.toml").write_text(
            f"[brain]\nbackend = 'llm'\n[brain.llm]\npath = '{teacher}'\ndevice = 'cpu'\n"
        )
        command = _build_command(folder, args)
        built = subprocess.run(command, capture_output=True, text=True, cwd=folder)
        if built.returncode != 0:
            print(built.stdout, built.stderr[-4000:], sep="\n")
            return built.returncode
        manifest = json.loads((folder / "engines" / "manifest.json").read_text())
    (entry,) = [a for a in manifest["artifacts"] if a["kind"] == "llm"]
    _report(args, trained_s, loss, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
