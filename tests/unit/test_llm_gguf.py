"""``[brain.llm] path`` naming a GGUF file: a tiny Qwen2 written the way llama.cpp's converter
writes one loads through transformers' GGUF reader, answers, and computes what the torch model
computes; a file transformers cannot load is refused at start, naming the key."""

from __future__ import annotations

import threading

import pytest
from needs import need_gguf

from streambot.brain.llm_load import gguf_header, is_gguf
from streambot.config import Config, ConfigError
from streambot.preflight import preflight

QUESTION = "how much is the grinder? 保温杯多少钱？"


def llm_config(path, engines: str = "engines", **llm) -> Config:
    config = Config()
    config.engines.dir = engines
    config.brain.backend = "llm"
    config.brain.llm.path = str(path)
    config.brain.llm.device = "cpu"
    config.store.path = ":memory:"
    for key, value in llm.items():
        setattr(config.brain.llm, key, value)
    return config


def corpus() -> list[str]:
    from streambot.brain.prompt import system_prompt
    from streambot.catalog import Catalog

    return [
        system_prompt(Catalog.load()),
        "how much is the grinder? The grinder is $89.99.",
        "保温杯多少钱？雪峰保温杯的价格是24.50美元。",
    ] * 5


def tiny_pair(folder, tie: bool):
    """(a tiny Qwen2 model folder, the same model as a GGUF file in a folder of its own)."""
    from tests.llm_fixture import build_tiny_qwen2, write_gguf

    model = build_tiny_qwen2(folder / "hf", corpus(), tie=tie)
    (folder / "gguf").mkdir()
    return model, write_gguf(model, folder / "gguf" / "tiny-qwen2-f32.gguf")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    need_gguf()
    return tiny_pair(tmp_path_factory.mktemp("gguf"), tie=False)  # output.weight of its own


def turn(text: str):
    from streambot.events import ChatMessage
    from streambot.turn import Turn

    return Turn(1, "answer", ChatMessage("t", "ann", text))


def test_the_header_reader_agrees_with_the_gguf_package(pair):
    from gguf import GGUFReader

    _, path = pair
    keys = ("general.architecture", "general.name", "qwen2.block_count", "tokenizer.chat_template")
    tensors, found = gguf_header(path, keys)  # the chat template comes after the vocabulary
    reader = GGUFReader(path)
    assert tensors == len(reader.tensors) > 0
    assert found == {k: reader.fields[k].contents() for k in keys}
    assert is_gguf(path) and is_gguf("x/Model.GGUF") and not is_gguf(pair[0])


async def test_a_gguf_path_loads_answers_and_matches_the_torch_model(pair, monkeypatch):
    import torch

    from streambot.brain.assemble import RememberingBrain
    from streambot.brain.factory import build_brain
    from streambot.brain.llm import GenerationSettings, LocalLLM
    from streambot.brain.prompt import turn_messages

    folder, path = pair
    config = llm_config(path, str(path.parent / "engines"), max_new_tokens=12)
    preflight(config)  # the start-up check passes
    brain, catalog_brain = build_brain(config)
    assert isinstance(brain, RememberingBrain)
    llm_brain = brain.inner.inner  # RememberingBrain -> GuardedBrain -> LLMBrain
    gguf, torch_model = llm_brain.llm, LocalLLM(folder, device="cpu")
    assert torch_model.model.config.tie_word_embeddings is False
    torch_model.set_system_prompt(llm_brain._system_prompt())

    messages = turn_messages(turn(QUESTION), catalog_brain.live.current)
    ids = gguf.encode(messages, generation_prompt=True)
    assert torch.equal(ids, torch_model.encode(messages, generation_prompt=True))
    with torch.inference_mode():
        logits = gguf.model(input_ids=ids).logits
        expected = torch_model.model(input_ids=ids).logits
    assert torch.allclose(logits, expected, atol=1e-4)
    for cached in (True, False):
        assert torch.allclose(
            gguf.first_token_logits(messages, cached),
            torch_model.first_token_logits(messages, cached),
            atol=1e-4,
        )

    # it writes: a random model may pick its end token at once, so the end tokens are off
    for llm in (gguf, torch_model):
        monkeypatch.setattr(llm, "stop_ids", set())
    settings = GenerationSettings(max_new_tokens=12)
    said = [
        llm.generate(messages, settings, lambda d: None, threading.Event())
        for llm in (gguf, torch_model)
    ]
    assert said[0] and said[0] == said[1]
    deltas = [d async for d in llm_brain.reply(turn(QUESTION))]
    assert "".join(deltas) == said[0]


@pytest.mark.parametrize("tie", [True, False], ids=["tied head", "own head"])
def test_a_gguf_loaded_model_is_vanilla_and_saves(tmp_path, tie):
    """save_pretrained refuses a model "quantized with gguf": the loader hands back a plain
    model of the same class, so build_engines.py can prune and save it."""
    need_gguf()
    import torch
    from transformers import AutoModelForCausalLM

    from streambot.brain.llm_load import load_causal_lm

    folder, path = tiny_pair(tmp_path, tie)
    tokenizer, model = load_causal_lm(path, torch.float32)
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(model, "hf_quantizer", None) is None
    tied = model.lm_head.weight is model.model.embed_tokens.weight
    assert tied == tie == model.config.tie_word_embeddings
    model.save_pretrained(tmp_path / "saved")
    tokenizer.save_pretrained(tmp_path / "saved")
    ids = torch.tensor([tokenizer(QUESTION).input_ids])
    with torch.inference_mode():
        original = AutoModelForCausalLM.from_pretrained(folder)(input_ids=ids).logits
        saved = AutoModelForCausalLM.from_pretrained(tmp_path / "saved")(input_ids=ids).logits
        loaded = model(input_ids=ids).logits
    assert torch.allclose(loaded, original, atol=1e-4) and torch.equal(loaded, saved)


def test_the_digest_of_a_gguf_file_follows_its_content(pair, tmp_path):
    from streambot.brain.factory import llm_model_path
    from streambot.runtime.manifest import sha256_model
    from streambot.runtime.select import llm_inputs

    _, path = pair
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(path.read_bytes())
    assert llm_inputs(copy) == {"model": sha256_model(path)}
    copy.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\1")
    assert sha256_model(copy) != sha256_model(path)
    # nothing built: the file itself runs
    config = llm_config(path, str(tmp_path / "engines"))
    assert llm_model_path(config) == path


def test_an_architecture_transformers_cannot_load_is_refused_at_start(fast_config, tmp_path):
    gguf = need_gguf()
    import numpy as np

    from streambot.app import App

    path = tmp_path / "rwkv.gguf"
    writer = gguf.GGUFWriter(path, "rwkv6")
    writer.add_name("not for transformers")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    fast_config.brain.backend = "llm"
    fast_config.brain.llm.path = str(path)
    with pytest.raises(ConfigError) as caught:
        App(fast_config)  # before anything is built
    message = str(caught.value)
    assert f'brain.llm.path: {path} is a "rwkv6" model; transformers reads GGUF files of: ' in (
        message
    )
    assert "qwen2" in message and "(convert it or pick another)" in message


@pytest.mark.parametrize("case", ["missing", "a folder", "not a GGUF", "cut short"])
def test_a_gguf_path_that_is_no_gguf_file_is_refused_naming_the_key(tmp_path, case):
    """No optional package needed: the header tells before anything is imported."""
    path = tmp_path / "model.gguf"
    if case == "a folder":
        path.mkdir()
    elif case == "not a GGUF":
        path.write_text("version https://git-lfs.github.com/spec/v1\n")  # an LFS pointer
    elif case == "cut short":
        path.write_bytes(b"GGUF\3\0\0\0\1\0\0\0\0\0\0\0\5\0")
    why = {
        "missing": "does not exist",
        "a folder": "is a folder",
        "not a GGUF": r"is not a GGUF file \(no GGUF magic",
        "cut short": r"is not a GGUF file \(the header is cut short",
    }[case]
    with pytest.raises(ConfigError, match=rf"brain\.llm\.path: {path} {why}"):
        preflight(llm_config(path))
    preflight(llm_config(tmp_path / "folder-model"))  # a folder path: checked when it loads
