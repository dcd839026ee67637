"""A local Hugging Face causal LM as the host's brain, with the system prompt's KV cached.

The system prompt (persona + the whole catalog + house rules) is the same for every reply, so
its keys/values are computed once at start-up (and again when the catalog file changes) and
every reply starts from a copy of that cache: only the turn's own tokens are encoded. The copy
matters: generation appends to a cache in place, and the prefix must stay pristine.

Generation runs token by token in a worker thread (never on the event loop); deltas are handed
to the loop as soon as they decode to whole characters (``IncrementalDecoder``: a short window
of ids per token, never the whole reply again), and a closed or cancelled reply stops the
thread at the next token.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from streambot.brain.llm_load import LLMError, load_causal_lm
from streambot.threads import lower_this_threads_priority
from streambot.turn import Turn

log = logging.getLogger(__name__)
_DONE = object()


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 120
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.9
    seed: int | None = None


class IncrementalDecoder:
    """Turns the reply's token ids, one at a time, into text deltas in O(n) decoding work.

    Re-decoding the whole reply at every token costs O(n^2). Each step here decodes only the
    ids not yet emitted, after the ids of the last delta as context (a tokenizer may add or
    drop a space depending on what precedes a token), and emits what they add to the context's
    text. A window that ends in U+FFFD ends inside a multi-byte character (byte-level BPE
    splits one character over several tokens), so its ids are held back until it completes.
    """

    # A character is at most 4 bytes: this many ids in a row that make no whole character are
    # not one (the model emits broken bytes); they are let out so the windows stay short.
    MAX_HELD = 8

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self.text = ""  # what has been emitted
        self._context = 0  # the last delta's ids start here ...
        self._emitted = 0  # ... and end here, where the ids not yet emitted start
        self._context_text: str | None = None  # what the last delta's ids decode to alone

    def push(self, token: int) -> str:
        """Add one token; the text it completes ("" while a character is incomplete)."""
        self.ids.append(token)
        if self._context_text is None:
            context = self.ids[self._context : self._emitted]
            self._context_text = self._decode(context) if context else ""
        before, after = self._context_text, self._decode(self.ids[self._context :])
        incomplete = (
            after.endswith("\ufffd") or len(after) <= len(before) or not after.startswith(before)
        )
        if incomplete and len(self.ids) - self._emitted < self.MAX_HELD:
            return ""
        delta = after[len(before) :]
        self._context, self._emitted = self._emitted, len(self.ids)
        self._context_text = None
        self.text += delta
        return delta

    def finish(self) -> str:
        """The rest of the reply once it has ended: what the held-back ids add (a character
        cut off by the token limit is dropped)."""
        if self._emitted == len(self.ids):
            return ""
        before = self._context_text or ""  # push() has worked it out for these very ids
        after = self._decode(self.ids[self._context :])
        delta = after[len(before) :].rstrip("\ufffd") if after.startswith(before) else ""
        self._context, self._emitted, self._context_text = self._emitted, len(self.ids), None
        self.text += delta
        return delta


_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU multiplies bfloat16 natively (x86 AVX512-BF16 or AMX), read from the
    kernel's CPU flags: torch has no public check, and without these instructions bfloat16 is
    converted in software and slower than float32. Not Linux: False."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return bool(_CPU_BF16_FLAGS & set(value.split()))
    return False


def pick_dtype(device: torch.device, requested: str) -> torch.dtype:
    """The dtype the model runs in: ``requested``, or for "auto" bfloat16 on a GPU that has
    it (else float16), and on a CPU bfloat16 where the CPU computes it natively: the real
    0.5B and 1.5B answered as right as in float32 there, the 1.5B's first sentence 1.6-1.9x
    sooner (BENCHMARKS.md, thirteenth session); float32 elsewhere."""
    if requested != "auto":
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
            requested
        ]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_has_bfloat16() else torch.float32


def daemon_dtype(model: torch.nn.Module, requested: str) -> torch.dtype:
    """The dtype the daemon would run ``model`` in, on the device it is on."""
    return pick_dtype(next(model.parameters()).device, requested)


@functools.cache
def _cache_argument(model_class: type) -> str:
    parameters = inspect.signature(model_class.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def forward_with_cache(
    model: torch.nn.Module, ids: torch.Tensor, cache: object | None, keep: int = 1
):
    """One forward pass extending ``cache`` (None: a fresh one), the last ``keep`` positions'
    logits (0: all; the default, the last one only, skips a vocabulary-sized matmul per prompt
    token); returns (logits, the extended cache). transformers 5 renames the
    ``past_key_values`` argument and output to ``cache`` (the old name is dropped in 5.40);
    4.x knows only the old one."""
    out = model(
        input_ids=ids, use_cache=True, logits_to_keep=keep, **{_cache_argument(type(model)): cache}
    )
    extended = getattr(out, "cache", None)
    return out.logits, extended if extended is not None else out.past_key_values


class PrefixCache:
    """The system prompt's token ids and their KV cache; hand out copies, never the original.
    ``last_logits``: the prefix's last position's (1, V) logits, the prediction of the first
    token after it."""

    def __init__(self, model: torch.nn.Module, ids: torch.Tensor) -> None:
        self.ids = ids  # (1, P)
        with torch.inference_mode():
            logits, self._cache = forward_with_cache(model, ids, None)
        self.last_logits = logits[0, -1:]

    def fresh(self) -> object:
        """A deep copy of the prefix's transformers Cache, for one reply to extend."""
        return copy.deepcopy(self._cache)

    @property
    def length(self) -> int:
        return int(self.ids.shape[1])


class LocalLLM:
    """Model + tokenizer + prefix cache; blocking methods, run on ``executor``, the model's
    own thread: one generation at a time, and on a CPU at ``cpu_nice`` so that the face and
    voice, which have deadlines, get the cores first (the LLM's text is needed sooner or
    later; a face frame is needed by its slot)."""

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        cpu_nice: int = 0,
    ) -> None:
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        )
        self.dtype = pick_dtype(self.device, dtype)
        # a model folder or a GGUF file: the one loader build_engines.py's teacher uses too
        self.tokenizer, self.model = load_causal_lm(
            path, self.dtype, self.device, trust_remote_code
        )
        self._ready(str(path), cpu_nice)

    @classmethod
    def from_loaded(
        cls,
        tokenizer: object,
        model: torch.nn.Module,
        cpu_nice: int = 0,
        dtype: torch.dtype | None = None,
    ) -> LocalLLM:
        """A LocalLLM around a model already in memory (build_engines.py judges its teacher and
        its student by their answers, each exactly as the daemon would run it). ``dtype``: a
        copy of the model in that dtype is run (``daemon_dtype``), the model left as it is."""
        llm = cls.__new__(cls)
        if dtype is not None and next(model.parameters()).dtype != dtype:
            model = copy.deepcopy(model).to(dtype)
        weights = next(model.parameters())
        llm.device, llm.dtype = weights.device, weights.dtype
        llm.tokenizer, llm.model = tokenizer, model.eval()
        llm._ready(type(model).__name__, cpu_nice)
        return llm

    def _ready(self, name: str, cpu_nice: int) -> None:
        """Stop tokens, the lock and the model's own thread, for a loaded model."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise LLMError(f"{name}: the tokenizer has no chat template")
        self.stop_ids = {
            i
            for i in (self.tokenizer.eos_token_id, self.model.config.eos_token_id)
            if isinstance(i, int)
        }
        for token in ("<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                self.stop_ids.add(token_id)
        self.prefix: PrefixCache | None = None
        self._lock = threading.Lock()  # one generation at a time on this model
        nice = cpu_nice if self.device.type == "cpu" else 0
        self.executor = ThreadPoolExecutor(
            1, "llm", initializer=lower_this_threads_priority, initargs=(nice,)
        )

    # -- prompts ----------------------------------------------------------------------------
    def encode(
        self, messages: Sequence[dict[str, str]], generation_prompt: bool, prefill: str = ""
    ) -> torch.Tensor:
        """The chat's token ids; ``prefill``: the assistant's turn starts with it (said
        already), and generation continues from there (the system prompt's cache still
        applies: it is the same prefix)."""
        if prefill:
            text = self.tokenizer.apply_chat_template(
                [*messages, {"role": "assistant", "content": prefill}],
                tokenize=False,
                continue_final_message=True,
            )
        else:
            text = self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=generation_prompt
            )
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        return ids.to(self.device)

    def set_system_prompt(self, system: str) -> None:
        """Encode the system prompt once; later replies reuse its KV cache."""
        ids = self.encode([{"role": "system", "content": system}], generation_prompt=False)
        with self._lock:
            self.prefix = PrefixCache(self.model, ids)
        log.info("LLM prefix cache: %d tokens of system prompt", self.prefix.length)

    def after_prefix(self, ids: torch.Tensor) -> tuple[object | None, torch.Tensor]:
        """(a fresh copy of the prefix cache, the ids after the prefix), or (None, all ids)."""
        prefix = self.prefix
        if (
            prefix is not None
            and ids.shape[1] > prefix.length
            and torch.equal(ids[:, : prefix.length], prefix.ids)
        ):
            return prefix.fresh(), ids[:, prefix.length :]
        if prefix is not None:
            log.warning("prompt does not start with the cached system prompt; encoding it all")
        return None, ids

    # -- generation ---------------------------------------------------------------------------
    @torch.inference_mode()
    def first_token_logits(
        self, messages: Sequence[dict[str, str]], use_cache: bool
    ) -> torch.Tensor:
        ids = self.encode(messages, generation_prompt=True)
        cache, todo = self.after_prefix(ids) if use_cache else (None, ids)
        logits, _ = forward_with_cache(self.model, todo, cache)
        return logits[0, -1].float().cpu()

    @torch.inference_mode()
    def generate(
        self,
        messages: Sequence[dict[str, str]],
        settings: GenerationSettings,
        emit: Callable[[str], None],
        stop: threading.Event,
        prefill: str = "",
    ) -> str:
        """Generate a reply, calling ``emit`` with each decoded delta; returns the whole text.
        ``prefill``: the reply's start, already said: generation continues after it, and only
        what it adds is emitted and returned."""
        with self._lock:
            ids = self.encode(messages, generation_prompt=True, prefill=prefill)
            cache, todo = self.after_prefix(ids)
            generator = torch.Generator(device=self.device)
            if settings.seed is not None:
                generator.manual_seed(settings.seed)
            decoder = IncrementalDecoder(
                lambda window: self.tokenizer.decode(window, skip_special_tokens=True)
            )
            for _ in range(settings.max_new_tokens):
                if stop.is_set():
                    break
                logits, cache = forward_with_cache(self.model, todo, cache)
                token = self._pick(logits[0, -1].float(), settings, generator)
                if token in self.stop_ids:
                    break
                todo = torch.tensor([[token]], device=self.device)
                if delta := decoder.push(token):
                    emit(delta)
            if delta := decoder.finish():
                emit(delta)
            return decoder.text

    @staticmethod
    def _pick(
        logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator
    ) -> int:
        if settings.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / settings.temperature, dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < settings.top_p
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])


class LLMBrain:
    """The Brain role on a LocalLLM: grounded messages in, streamed deltas out.

    ``catalog_changed`` (asked before each reply, on the event loop: asking it reads the live
    catalog, which checks its file) says whether the catalog changed since the last reply;
    then the system prompt is re-encoded into a new prefix cache before the reply starts.
    """

    def __init__(
        self,
        llm: LocalLLM,
        build_messages: Callable[[Turn], list[dict[str, str]]],
        system_prompt: Callable[[], str],
        pitch_topics: Callable[[], list[str]],
        settings: GenerationSettings,
        catalog_changed: Callable[[], bool] | None = None,
    ) -> None:
        self.llm, self.settings = llm, settings
        self._build_messages, self._system_prompt = build_messages, system_prompt
        self._pitch_topics, self._catalog_changed = pitch_topics, catalog_changed
        llm.set_system_prompt(system_prompt())

    def pitch_topics(self) -> list[str]:
        return self._pitch_topics()

    async def reply(self, turn: Turn, prefill: str = "") -> AsyncGenerator[str, None]:
        """The reply's deltas; ``prefill``: what was said first (the catalog's answer): the
        assistant's turn starts with it and only what the model adds after it is yielded."""
        if self._catalog_changed is not None and self._catalog_changed():
            prompt = self._system_prompt()
            await asyncio.get_running_loop().run_in_executor(
                self.llm.executor, self.llm.set_system_prompt, prompt
            )
            log.info("catalog changed: system prompt re-encoded")
        messages = self._build_messages(turn)
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def emit(delta: str) -> None:
            loop.call_soon_threadsafe(deltas.put_nowait, delta)

        def work() -> str:
            try:
                return self.llm.generate(messages, self.settings, emit, stop, prefill)
            finally:
                loop.call_soon_threadsafe(deltas.put_nowait, _DONE)

        worker = asyncio.ensure_future(loop.run_in_executor(self.llm.executor, work))
        try:
            while (delta := await deltas.get()) is not _DONE:
                yield delta
            await worker  # re-raises a model error for the host to log
        finally:
            stop.set()  # a cancelled or closed reply stops the thread at the next token
