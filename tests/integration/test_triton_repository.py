"""`build_engines.py --backends onnx,triton`: a Triton model repository of the face engines,
checked against the ONNX files it serves and, where tritonclient is installed, parsed with
Triton's own model-config schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_build_engines import build, project  # noqa: F401  (a fixture)

pytest.importorskip("onnx")
import onnx

from streambot.compress.triton_repo import onnx_tensors

TRITON_HINT = "needs tritonclient (Triton's model-config schema): pip install 'streambot[triton]'"


@pytest.fixture(scope="module")
def served(project: Path) -> Path:  # noqa: F811
    result = build(project, "--backends", "onnx,triton", out="served")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "triton/wav2lip-p50" in result.stdout and "serves wav2lip-p50.onnx" in result.stdout
    return project / "served"


def manifest(folder: Path) -> dict[str, dict]:
    data = json.loads((folder / "manifest.json").read_text())
    return {a["file"]: a for a in data["artifacts"]}


@pytest.mark.slow
def test_every_onnx_engine_gets_a_triton_model_recorded_in_the_manifest(served, project):  # noqa: F811
    entries = manifest(served)
    engines = [a for a in entries.values() if a["backend"] == "onnxruntime"]
    assert {e["precision"] for e in engines} >= {"fp32", "fp16"}
    for engine in engines:
        name = Path(engine["file"]).stem
        folder = served / "triton" / name
        model = folder / "1" / "model.onnx"
        if engine["precision"] == "fp16":
            assert_fp16_edges_draw_what_the_engine_draws(model, served / engine["file"])
        else:
            assert model.read_bytes() == (served / engine["file"]).read_bytes()
        entry = entries[f"triton/{name}"]
        assert (entry["backend"], entry["precision"]) == ("triton", engine["precision"])
        assert entry["inputs"]["engine"] == engine["sha256"]  # stale once the engine changes
        assert entry["default"] == engine["default"]
        assert entry["fidelity"]["serves"] == engine["file"]
        text = (folder / "config.pbtxt").read_text()
        assert f'name: "{name}"' in text and 'backend: "onnxruntime"' in text
        assert ("KIND_GPU" in text) == (engine["precision"] == "fp16")
        assert ('name: "tensorrt"' in text) == (engine["precision"] == "fp16")
    # nothing changed: up to date; a model recorded for another build of its engine: rewritten
    again = build(project, "--backends", "onnx,triton", out="served")
    served_rows = [line for line in again.stdout.splitlines() if "triton/" in line]
    assert served_rows and all("up to date" in line for line in served_rows), again.stdout
    path = served / "manifest.json"
    data = json.loads(path.read_text())
    for artifact in data["artifacts"]:
        if artifact["file"] == "triton/wav2lip-p50":
            artifact["inputs"]["engine"] = "0" * 64
    path.write_text(json.dumps(data))
    third = build(project, "--backends", "onnx,triton", out="served")
    rewritten = [line for line in third.stdout.splitlines() if "triton/wav2lip-p50 " in line]
    assert rewritten and "serves wav2lip-p50.onnx" in rewritten[0], third.stdout
    assert manifest(served)["triton/wav2lip-p50"]["inputs"]["engine"] != "0" * 64


def assert_fp16_edges_draw_what_the_engine_draws(model: Path, engine: Path) -> None:
    """The fp16 model takes and gives fp16 (half the bytes on the wire) and computes what
    its engine (fp32 edges) computes."""
    import numpy as np
    import onnxruntime as ort

    inputs, outputs = onnx_tensors(model)
    assert {t.data_type for t in (*inputs, *outputs)} == {"TYPE_FP16"}
    rng = np.random.default_rng(0)
    feeds = {"mel": rng.standard_normal((3, 1, 80, 16)), "face": rng.random((3, 6, 96, 96))}
    served = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    local = ort.InferenceSession(str(engine), providers=["CPUExecutionProvider"])
    (half,) = served.run(None, {k: v.astype(np.float16) for k, v in feeds.items()})
    (full,) = local.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})
    assert half.dtype == np.float16
    assert np.abs(half.astype(np.float32) - full).max() < 2e-3  # fp16's step near 1: 1e-3


@pytest.mark.slow
def test_the_model_config_parses_with_tritons_schema_and_matches_the_onnx(served):
    pytest.importorskip("tritonclient.grpc", reason=TRITON_HINT)
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    data_types = {
        onnx.TensorProto.FLOAT: model_config_pb2.TYPE_FP32,
        onnx.TensorProto.FLOAT16: model_config_pb2.TYPE_FP16,
    }
    for folder in sorted((served / "triton").iterdir()):
        config = text_format.Parse(
            (folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
        )
        graph = onnx.load(str(folder / "1" / "model.onnx")).graph
        assert config.name == folder.name and config.backend == "onnxruntime"
        assert config.max_batch_size == 64  # the TensorRT engines' batch profile
        for section, values in ((config.input, graph.input), (config.output, graph.output)):
            assert [t.name for t in section] == [v.name for v in values]
            for tensor, value in zip(section, values, strict=True):
                shape = value.type.tensor_type.shape.dim
                assert list(tensor.dims) == [d.dim_value for d in shape[1:]]
                assert tensor.data_type == data_types[value.type.tensor_type.elem_type]
        batching = config.dynamic_batching
        assert list(batching.preferred_batch_size) == [16, 32]
        assert 0 < batching.max_queue_delay_microseconds <= 5000
        assert (batching.priority_levels, batching.default_priority_level) == (2, 2)
        (group,) = config.instance_group
        gpu = folder.name.endswith("-fp16")
        kinds = model_config_pb2.ModelInstanceGroup
        assert group.kind == (kinds.KIND_GPU if gpu else kinds.KIND_CPU)
        accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
        assert [a.name for a in accelerators] == (["tensorrt"] if gpu else [])
        if gpu:
            assert accelerators[0].parameters["precision_mode"] == "FP16"


def test_the_served_tensors_are_read_from_the_onnx_file_without_the_batch_axis(tmp_path):
    from onnx import TensorProto, helper

    mel = helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", 1, 80, 16])
    frame = helper.make_tensor_value_info("frame", TensorProto.FLOAT16, ["batch", 3, "h", 96])
    fixed = helper.make_tensor_value_info("fixed", TensorProto.FLOAT, [4, 3])
    identity = helper.make_node("Identity", ["mel"], ["frame"])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(helper.make_graph([identity], "g", [mel], [frame])), path)
    (inputs,), (outputs,) = onnx_tensors(path)
    assert (inputs.name, inputs.data_type, inputs.dims) == ("mel", "TYPE_FP32", (1, 80, 16))
    assert (outputs.data_type, outputs.dims) == ("TYPE_FP16", (3, -1, 96))
    onnx.save(helper.make_model(helper.make_graph([], "g", [fixed], [fixed])), path)
    from streambot.compress.triton_repo import TritonRepoError

    with pytest.raises(TritonRepoError, match="fixed has no variable batch axis"):
        onnx_tensors(path)
