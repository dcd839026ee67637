"""What the face client reads from a served model's metadata (KServe v2's JSON, as Triton sends
it): the datatypes to send, the room to make for the outputs, and what it refuses."""

from __future__ import annotations

import pytest

from streambot.runtime.base import EngineError
from streambot.runtime.triton_engine import ModelWire


def metadata(datatype: str = "FP16", frame: list[int] | None = None) -> dict:
    return {
        "name": "wav2lip-p50-fp16",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [
            {"name": "mel", "datatype": datatype, "shape": [-1, 1, 80, 16]},
            {"name": "face", "datatype": datatype, "shape": [-1, 6, 96, 96]},
        ],
        "outputs": [{"name": "frame", "datatype": datatype, "shape": frame or [-1, 3, 96, 96]}],
    }


def test_the_wire_follows_the_models_datatypes_and_output_sizes():
    wire = ModelWire.from_metadata(metadata("FP16"))
    assert wire.types == {"mel": "FP16", "face": "FP16", "frame": "FP16"}
    assert wire.output_dims == {"frame": (3, 96, 96)}
    assert wire.nbytes("frame", (4, 3, 96, 96)) == 4 * 3 * 96 * 96 * 2  # fp16: 2 bytes


def test_a_model_of_other_datatypes_or_a_frame_of_no_fixed_size_is_refused_by_name():
    with pytest.raises(EngineError, match=r"not FP32/FP16.*INT8"):
        ModelWire.from_metadata(metadata("INT8"))
    with pytest.raises(EngineError, match=r"\['frame'\] have no fixed size"):
        ModelWire.from_metadata(metadata("FP32", frame=[-1, 3, -1, 96]))
