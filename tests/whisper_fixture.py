"""A tiny random Whisper model, converted to CTranslate2 for faster-whisper.

It has the real multilingual Whisper layout (51 865 tokens: 50 257 text tokens, the special
tokens faster-whisper looks up by name, 99 language tokens, 1 501 timestamp tokens), so
CTranslate2 sees a multilingual model and the ``language=`` and ``task=`` paths are the real
ones, but only 64-wide, 2-layer encoder and decoder: built and converted in a few seconds and
loaded the way a real ``chat.mic.model`` folder is. Its transcripts are random.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

N_TEXT_TOKENS = 50257  # byte-level alphabet + filler, like GPT-2's vocabulary size
N_TIMESTAMPS = 1501  # <|0.00|> ... <|30.00|>
# Whisper (v1/v2) has 99 languages; faster-whisper's list adds "yue" (large-v3's 100th).
_LANGUAGE_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su"
)
LANGUAGES = _LANGUAGE_CODES.split()
assert len(LANGUAGES) == 99
TASK_TOKENS = ["<|translate|>", "<|transcribe|>"]
OTHER_TOKENS = ["<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def _specials() -> list[str]:
    return [
        "<|endoftext|>",
        "<|startoftranscript|>",
        *(f"<|{code}|>" for code in LANGUAGES),
        *TASK_TOKENS,
        *OTHER_TOKENS,
    ]


def build_tokenizer():
    """A byte-level tokenizer with Whisper's token ids for every special token."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for i in range(len(vocab), N_TEXT_TOKENS - 1):
        vocab[f"filler{i}"] = i  # never produced: there are no merges
    # Whisper's multilingual vocabulary has an empty token; CTranslate2 (since 4.7) decides
    # "multilingual" by its presence, so without it the language and task tokens are ignored.
    vocab[""] = N_TEXT_TOKENS - 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(N_TIMESTAMPS)]
    tok.add_special_tokens([AddedToken(t, special=True) for t in (*_specials(), *stamps)])
    assert tok.token_to_id("<|endoftext|>") == 50257
    assert tok.token_to_id("<|en|>") == 50259
    assert tok.token_to_id("<|notimestamps|>") == 50363
    assert tok.get_vocab_size() == 51865
    return tok


def build_tiny_whisper_ct2(folder: Path, seed: int = 0) -> Path:
    """Build, save and convert the model; return the CTranslate2 model directory."""
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import (
        GenerationConfig,
        PreTrainedTokenizerFast,
        WhisperConfig,
        WhisperForConditionalGeneration,
    )

    tok = build_tokenizer()
    ids = {t: tok.token_to_id(t) for t in _specials()}
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=_specials()[1:],
    )
    space = tok.token_to_id("Ġ")
    config = WhisperConfig(
        vocab_size=tok.get_vocab_size(),
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_source_positions=1500,
        max_target_positions=448,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=[],
        begin_suppress_tokens=[space, eot],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=448,
        suppress_tokens=[],
        begin_suppress_tokens=[space, eot],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=True,
        lang_to_id={f"<|{c}|>": ids[f"<|{c}|>"] for c in LANGUAGES},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        alignment_heads=[[1, h] for h in range(4)],
    )
    hf_dir, ct2_dir = folder / "hf", folder / "ct2"
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir)
    hf_tok.save_pretrained(hf_dir)
    tok.save(str(hf_dir / "tokenizer.json"))
    preprocessor = {
        "feature_size": 80,
        "sampling_rate": 16000,
        "hop_length": 160,
        "chunk_length": 30,
        "n_fft": 400,
    }
    (hf_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    TransformersConverter(str(hf_dir)).convert(str(ct2_dir), force=True)
    for name in ("tokenizer.json", "preprocessor_config.json"):
        shutil.copy(hf_dir / name, ct2_dir / name)
    return ct2_dir
