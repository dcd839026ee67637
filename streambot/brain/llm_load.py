"""The one way the configured local LLM is loaded: a Hugging Face model folder, or one GGUF file
(what Ollama and LM Studio download), which transformers' GGUF reader dequantizes.

``check_gguf`` reads only the start of a GGUF file's header (its first key-values, never a
tensor), so the daemon can refuse at start, naming the key, a file that is missing, is no
GGUF, or holds an architecture transformers cannot load as a causal LM. ``load_causal_lm``
loads either kind for the brain (``brain/llm.py``) and for ``build_engines.py --only llm``'s
teacher (``compress/llm_build.py``); a GGUF-loaded model comes back as a vanilla one (no
quantization config), so it can be pruned, copied and saved like any other.

The header is read here rather than with the gguf package's ``GGUFReader``: that parses the
whole metadata, the tokenizer's vocabulary and merges included (about 5 s for a Qwen2.5 GGUF
with 151k tokens on a 2-core CPU); the architecture is the file's first key.
"""

from __future__ import annotations

import copy
import importlib.util
import struct
from pathlib import Path
from typing import Any, BinaryIO

KEY = "brain.llm.path"
GGUF_SUFFIX = ".gguf"
GGUF_PACKAGES = ("transformers", "gguf", "accelerate")
_MAGIC = b"GGUF"
# GGUF value types: the fixed-size ones by their struct code; 8 is a string, 9 an array
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q"}
_SCALARS[12] = "d"
_STRING, _ARRAY = 8, 9
# llama.cpp's names for the architectures transformers spells otherwise
_ALIASES = {"qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe"}


class LLMError(RuntimeError):
    pass


def is_gguf(path: str | Path) -> bool:
    """Whether ``path`` names a GGUF file (by its suffix: a folder is a Hugging Face model)."""
    return Path(path).suffix.lower() == GGUF_SUFFIX


class _Header:
    """Sequential reads of a GGUF header in the file's byte order."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.order = f, "<"

    def unpack(self, code: str) -> Any:
        size = struct.calcsize(code)
        data = self.f.read(size)
        if len(data) != size:
            raise EOFError
        return struct.unpack(self.order + code, data)[0]

    def string(self) -> str:
        length = self.unpack("Q")
        data = self.f.read(length)
        if len(data) != length:
            raise EOFError
        return data.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:  # skipped: no key read here is an array
            item, count = self.unpack("I"), self.unpack("Q")
            if item in _SCALARS:
                self.f.seek(count * struct.calcsize(_SCALARS[item]), 1)
            else:
                for _ in range(count):
                    self.value(item)
            return None
        raise ValueError(f"unknown value type {kind}")


def gguf_header(path: str | Path, wanted: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
    """(tensor count, the ``wanted`` scalar or string key-values the header has), reading only
    as far as the last of them. ValueError when the file is no GGUF (or is cut short)."""
    with open(path, "rb") as f:
        header = _Header(f)
        try:
            if f.read(4) != _MAGIC:
                raise ValueError("no GGUF magic at the start")
            version = header.unpack("I")
            if version & 0xFFFF == 0:  # written on a big-endian machine
                header.order = ">"
                version = struct.unpack(">I", struct.pack("<I", version))[0]
            if version not in (2, 3):
                raise ValueError(f"GGUF version {version} (transformers reads 2 and 3)")
            tensors, count = header.unpack("Q"), header.unpack("Q")
            found: dict[str, Any] = {}
            for _ in range(count):
                if len(found) == len(wanted):
                    break
                key, kind = header.string(), header.unpack("I")
                value = header.value(kind)
                if key in wanted:
                    found[key] = value
        except EOFError:
            raise ValueError("the header is cut short") from None
    return tensors, found


def supported_gguf_architectures() -> list[str]:
    """The GGUF architectures transformers' reader turns into a causal LM (this version's
    list: ``modeling_gguf_pytorch_utils.GGUF_SUPPORTED_ARCHITECTURES``, less the groups that
    are no architecture and the encoder-decoders)."""
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    return [
        a
        for a in GGUF_SUPPORTED_ARCHITECTURES
        if a not in ("general", "tokenizer") and (a in causal or f"{a}_text" in causal)
    ]


def check_gguf(path: str | Path, key: str = KEY) -> str:
    """What the GGUF file at ``path`` holds, in words; an LLMError naming ``key`` when it is
    missing, no GGUF, of an architecture transformers cannot load, or when the packages that
    load a GGUF are not installed."""
    path = Path(path)
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        raise LLMError(f"{key}: {path} {why} (a .gguf path must name a GGUF model file)")
    try:
        tensors, meta = gguf_header(path, ("general.architecture", "general.name"))
    except (OSError, ValueError) as exc:
        raise LLMError(f"{key}: {path} is not a GGUF file ({exc})") from None
    architecture = meta.get("general.architecture")
    if not isinstance(architecture, str):
        raise LLMError(f"{key}: {path} is not a GGUF model file (no general.architecture)")
    missing = [name for name in GGUF_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise LLMError(
            f"{key}: {path} is a GGUF file, which needs {', '.join(missing)}: "
            "pip install 'streambot[llm]'"
        )
    supported = supported_gguf_architectures()
    spellings = {architecture, architecture.replace("-", "_"), _ALIASES.get(architecture)}
    if not spellings & set(supported):
        known = ", ".join(supported)
        raise LLMError(
            f'{key}: {path} is a "{architecture}" model; transformers reads GGUF '
            f"files of: {known} (convert it or pick another)"
        )
    if tensors == 0:
        raise LLMError(f"{key}: {path} holds no weights (a vocabulary-only GGUF file)")
    name = meta.get("general.name")
    return f"{path.name}: {architecture}" + (f' ("{name}")' if name else "")


def _dense(gguf: bool) -> dict[str, Any]:
    """For a GGUF file, the loader's option to unpack every weight into a plain tensor:
    pruning, distillation and ``save_pretrained`` need plain weights, and transformers 5
    otherwise keeps some architectures' weights packed where a kernel is published (and
    warns that a packed file is fastest in float32, though it unpacks ours anyway)."""
    try:
        from transformers import GgufConfig
    except ImportError:  # before transformers 5.x every GGUF file is unpacked
        return {}
    return {"quantization_config": GgufConfig(dequantize=True)} if gguf else {}


def load_causal_lm(
    path: str | Path,
    dtype: Any = None,
    device: Any = "cpu",
    trust_remote_code: bool = False,
    key: str = KEY,
) -> tuple[Any, Any]:
    """(tokenizer, model in eval mode on ``device``) from a Hugging Face model folder or a GGUF
    file (dequantized to ``dtype``, float32 when None). Raises LLMError naming ``key``."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise LLMError("the LLM brain needs transformers: pip install 'streambot[llm]'") from exc
    path = Path(path)
    gguf = is_gguf(path)
    if gguf:
        check_gguf(path, key)
        folder, extra = path.parent, {"gguf_file": path.name}
        dtype = dtype or torch.float32
    else:
        if not (path / "config.json").is_file():
            raise LLMError(f"{path}: not a Hugging Face model folder (no config.json)")
        folder, extra = path, {"trust_remote_code": trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, dtype=dtype, **extra, **_dense(gguf)
        )
    except (OSError, ValueError, ImportError) as exc:
        where = f"{key}: {path}" if gguf else str(path)
        raise LLMError(f"{where}: cannot load the model or tokenizer ({exc})") from exc
    if gguf:
        model = vanilla(model)
    return tokenizer, model.to(device).eval()


def vanilla(model: Any) -> Any:
    """A GGUF-loaded model as a plain one of its class (``save_pretrained`` refuses a model
    "quantized with gguf"): the same class built on the meta device from its config without
    the quantization config, the loaded weights assigned to it strictly (no copy), the
    buffers a state dict leaves out (rotary frequencies) handed over, the head tied again."""
    import torch

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        plain = type(model)(config)
    plain.load_state_dict(model.state_dict(), strict=True, assign=True)
    for name, buffer in model.named_buffers():
        owner, _, attribute = name.rpartition(".")
        module = plain.get_submodule(owner)
        if getattr(module, attribute).is_meta:
            module._buffers[attribute] = buffer
    plain.tie_weights()  # a tied head: one tensor again (untied: nothing to do)
    left = [n for n, t in [*plain.named_parameters(), *plain.named_buffers()] if t.is_meta]
    if left:
        raise LLMError(f"{type(model).__name__} from GGUF: no weights for {', '.join(left)}")
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain
