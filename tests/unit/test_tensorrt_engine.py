"""The TensorRT path. TensorRT cannot be installed in this workplace, so here it is checked by
its call sequence against a recording stand-in with the API's names (TensorRT 10, and 11
without the STRONGLY_TYPED flag); it runs for real where tensorrt imports and a GPU exists."""

from __future__ import annotations

import sys
import types

import pytest

from streambot.runtime.base import EngineError
from streambot.runtime.tensorrt_engine import BATCH_MAX, BATCH_OPT, build_engine, load_tensorrt


class _Recorder:
    """Records every call made on the API's objects; answers with more recorders."""

    def __init__(self, log: list, name: str) -> None:
        self._log, self._name = log, name

    def __getattr__(self, attr: str):
        def call(*args, **kwargs):
            self._log.append((f"{self._name}.{attr}", args))
            if attr == "parse":
                return True
            if attr == "build_serialized_network":
                return b"engine"
            if attr == "serialize":
                return b"cache"
            if attr == "get_input":
                name, shape = (("mel", (-1, 1, 80, 16)), ("face", (-1, 6, 96, 96)))[args[0]]
                return types.SimpleNamespace(name=name, shape=shape)
            return _Recorder(self._log, attr)

        return call


def _fake_tensorrt(log: list, strongly_typed: bool) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    flags = {"STRONGLY_TYPED": 1} if strongly_typed else {}
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(**flags)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})

    def builder(logger):
        network = _Recorder(log, "network")
        network.num_inputs = 2
        recorder = _Recorder(log, "builder")
        recorder.create_network = lambda flags: log.append(("create_network", flags)) or network
        return recorder

    trt.Builder = builder
    trt.OnnxParser = lambda network, logger: _Recorder(log, "parser")
    return trt


@pytest.mark.parametrize(("strongly_typed", "flags"), [(True, 2), (False, 0)], ids=["10", "11"])
def test_the_build_calls_tensorrt_as_its_api_says(tmp_path, monkeypatch, strongly_typed, flags):
    log: list = []
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(log, strongly_typed))
    onnx = tmp_path / "w2l.onnx"
    onnx.write_bytes(b"onnx")
    engine = build_engine(onnx, tmp_path / "w2l.plan", tmp_path / "timing.cache")
    assert engine.read_bytes() == b"engine" and (tmp_path / "timing.cache").read_bytes() == b"cache"
    calls = [name for name, _ in log]
    assert ("create_network", flags) in log  # strongly typed on 10; always so on 11
    assert calls.index("parser.parse") < calls.index("builder.build_serialized_network")
    shapes = [args for name, args in log if name.endswith(".set_shape")]
    assert shapes == [
        ("mel", (1, 1, 80, 16), (BATCH_OPT, 1, 80, 16), (BATCH_MAX, 1, 80, 16)),
        ("face", (1, 6, 96, 96), (BATCH_OPT, 6, 96, 96), (BATCH_MAX, 6, 96, 96)),
    ]
    assert any(name.endswith("set_memory_pool_limit") for name in calls)
    assert any(name.endswith("set_timing_cache") for name in calls)
    assert not any("FP16" in name for name in calls)  # no builder flag: TensorRT 11 has none


def test_only_type_stubs_or_no_tensorrt_is_not_tensorrt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # a namespace
    with pytest.raises(EngineError, match="has no Builder"):
        load_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineError, match="TensorRT is not available here"):
        load_tensorrt()


@pytest.mark.gpu
def test_a_real_engine_from_the_fp16_export_matches_torch(tmp_path):
    from needs import need_tensorrt_gpu

    need_tensorrt_gpu()
    import torch

    from streambot.compress.prune import example_inputs
    from streambot.models.wav2lip import Wav2Lip
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.tensorrt_engine import TensorRTEngine

    model = Wav2Lip().eval()
    onnx = export_wav2lip_onnx(model, tmp_path / "w2l-fp16.onnx", precision="fp16")
    engine = TensorRTEngine(build_engine(onnx, tmp_path / "w2l.plan", tmp_path / "t.cache"))
    mel, face = example_inputs(8)
    got = engine.run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    with torch.no_grad():
        assert abs(got - model(mel, face).numpy()).max() < 1e-2
