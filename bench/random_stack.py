"""The random-weight models ``bench/neural.py`` runs the daemon on: Qwen2.5's published
architecture with a byte-level BPE trained on the stream's text and filled up with
pronounceable made-up words (so every id decodes to speakable text), the real-size Wav2Lip,
and the avatar (scikit-image's astronaut). Speed figures only: the words are gibberish."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from qwen_configs import QWEN_COMMON, qwen_config

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
SENTENCE_END_PER_100, CLAUSE_END_PER_100 = 6, 8  # of the made-up filler words


# -- the random-weight LLM --------------------------------------------------------------------
def _filler_words(seed: int = 0) -> list[str]:
    """Pronounceable made-up words: every one-syllable word, then two-syllable ones shuffled."""
    onsets = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"]
    codas = ["", "n", "m", "s", "t", "k", "l", "r"]
    syllables = [o + v + c for o in onsets for v in "aeiou" for c in codas]
    pairs = [a + b for a in syllables for b in syllables]
    random.Random(seed).shuffle(pairs)
    return syllables + pairs


def build_tokenizer(corpus: list[str], vocab_size: int) -> tuple[Any, int]:
    """A byte-level BPE trained on ``corpus``, filled up to ``vocab_size`` ids with filler words
    (never produced by encoding, which only follows the trained merges; only decoded), and
    how many of its tokens were trained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=8000,  # more than this corpus can fill: every merge it has
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    data = json.loads(tok.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    trained = len(vocab)
    next_id, placed = max(vocab.values()) + 1, 0
    for word in _filler_words():
        if next_id >= vocab_size:
            break
        slot = placed % 100
        end = "." if slot < SENTENCE_END_PER_100 else "," if slot < 14 else ""
        token = "\u0120" + word + end  # byte-level BPE writes a leading space as U+0120
        if token in vocab:
            continue
        vocab[token] = next_id
        next_id, placed = next_id + 1, placed + 1
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS[1:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer, trained


def llm_corpus(questions: list[str]) -> list[str]:
    """What the tokenizer is trained on: the system prompt, the catalog's sentences and the
    bench's questions."""
    from streambot.brain.prompt import system_prompt
    from streambot.catalog import Catalog
    from streambot.compress.wav2lip_data import catalog_sentences

    catalog = Catalog.load(None)
    return [system_prompt(catalog, "Mia"), *catalog_sentences(catalog), *questions]


def build_random_llm(
    folder: Path, size: str, questions: list[str], seed: int = 0
) -> dict[str, Any]:
    """Qwen2.5-``size``'s published architecture with random weights, plus the tokenizer
    (trained on ``llm_corpus``), saved with ``save_pretrained`` (bfloat16 on disk; the daemon
    loads float32 on a CPU without native bfloat16)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    started = time.perf_counter()
    tokenizer, trained = build_tokenizer(llm_corpus(questions), QWEN_COMMON["vocab_size"])
    config = Qwen2Config(
        **qwen_config(size),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    params = sum(p.numel() for p in model.parameters())
    folder.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return {
        "llm_config": size,
        "params_b": round(params / 1e9, 3),
        "tokenizer_trained_tokens": trained,
        "build_s": round(time.perf_counter() - started, 1),
    }


# -- the random-weight Wav2Lip and the avatar ------------------------------------------------
def random_wav2lip(path: Path, seed: int = 0) -> Path:
    import torch

    from streambot.compress.common import RANDOM_WEIGHTS_KEY
    from streambot.models.wav2lip import Wav2Lip

    torch.manual_seed(seed)
    state = Wav2Lip().state_dict()
    torch.save({"state_dict": state, RANDOM_WEIGHTS_KEY: True}, path)
    return path


def astronaut(path: Path) -> Path:
    from PIL import Image
    from skimage.data import astronaut as image

    Image.fromarray(image()).save(path)
    return path
