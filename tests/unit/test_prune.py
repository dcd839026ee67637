"""Channel pruning of the real-size Wav2Lip: channels and parameters are removed for real, and
the pruned model reloads from a plain state dict plus its widths with the same output."""

from __future__ import annotations

import pytest
from needs import need_torch_pruning

need_torch_pruning()

import torch  # noqa: E402

from streambot.compress.prune import (  # noqa: E402
    PruningError,
    example_inputs,
    parameter_count,
    prune_wav2lip,
    save_pruned,
)
from streambot.models.wav2lip import Wav2Lip, Wav2LipConfig  # noqa: E402


@pytest.fixture(scope="module")
def teacher() -> Wav2Lip:
    torch.manual_seed(0)
    model = Wav2Lip().eval()
    for param in model.parameters():  # as a model loaded for inference: the silent no-op trap
        param.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def half(teacher) -> object:
    return prune_wav2lip(teacher, 0.5)


def test_half_the_channels_go_and_three_quarters_of_the_parameters(teacher, half):
    full = Wav2LipConfig()
    config = half.config
    assert half.params_before == parameter_count(teacher) == 36_298_035
    assert half.params_after == parameter_count(half.model) < 0.3 * half.params_before
    for got, was in zip(
        config.face_widths + config.audio_widths + config.decoder_widths,
        full.face_widths + full.audio_widths + full.decoder_widths,
        strict=True,
    ):
        assert got == was // 2 and got % 8 == 0
    assert config.output_width == full.output_width // 2
    model = half.model
    assert model.face_encoder_blocks[0][0].conv_block[0].in_channels == 6  # inputs untouched
    assert model.audio_encoder[0].conv_block[0].in_channels == 1
    assert model.output_block[1].out_channels == 3  # the output conv untouched
    assert parameter_count(teacher) == 36_298_035  # the teacher itself is left as it was


def test_the_pruned_model_reloads_from_state_dict_and_widths_with_the_same_output(half, tmp_path):
    path = save_pruned(half, tmp_path / "wav2lip-p50.pt")
    saved = torch.load(path, weights_only=True)  # tensors, numbers and strings only
    assert set(saved) == {"state_dict", "widths", "pruning"}
    reloaded = Wav2Lip.from_checkpoint(path)
    assert reloaded.config == half.config
    mel, face = example_inputs(4)
    with torch.no_grad():
        assert torch.allclose(reloaded(mel, face), half.model(mel, face), atol=1e-6)


def test_a_smaller_ratio_keeps_more(teacher):
    light = prune_wav2lip(teacher, 0.25)
    # 75% of each width, rounded down to a multiple of 8 (16 -> 12 -> 8)
    assert light.config.face_widths == (8, 24, 48, 96, 192, 384, 384)
    assert 0.5 * light.params_before < light.params_after < 0.65 * light.params_before


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_a_ratio_outside_0_1_is_refused(teacher, ratio):
    with pytest.raises(ValueError, match="between 0 and 1"):
        prune_wav2lip(teacher, ratio)


def test_a_width_the_config_cannot_hold_is_named(teacher):
    from streambot.compress.prune import widths_of

    model = Wav2Lip().eval()
    bottleneck = model.face_encoder_blocks[6][0].conv_block
    bottleneck[0] = torch.nn.Conv2d(512, 240, 3, 1, 0)
    bottleneck[1] = torch.nn.BatchNorm2d(240)
    with pytest.raises(PruningError, match=r"face_encoder_blocks\.6\.0 has 240 channels"):
        widths_of(model)


def test_the_pruned_model_exported_to_onnx_runs_the_same_in_onnx_runtime(half, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    engine = OnnxEngine(export_wav2lip_onnx(half.model, tmp_path / "p50.onnx"))
    mel, face = example_inputs(3)  # another batch size than the export's: the axis is dynamic
    got = engine.run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    with torch.no_grad():
        expected = half.model(mel, face).numpy()
    assert got.shape == (3, 3, 96, 96)
    assert abs(got - expected).max() < 1e-4


def test_the_pruned_onnx_model_quantizes_to_int8_qdq(half, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from streambot.compress.quantize import quantize_wav2lip
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    fp32 = export_wav2lip_onnx(half.model, tmp_path / "p50.onnx")

    def calibration():
        for seed in range(4):
            mel, face = example_inputs(4)
            yield {"mel": (mel + seed).numpy(), "face": face.numpy()}

    int8 = quantize_wav2lip(fp32, tmp_path / "p50-int8.onnx", calibration(), batches=4)
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert int8.stat().st_size < 0.4 * fp32.stat().st_size  # int8 weights
    mel, face = example_inputs(2)
    out = OnnxEngine(int8).run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    assert out.shape == (2, 3, 96, 96) and out.min() >= 0.0 and out.max() <= 1.0


def _kept_rows(pruned: torch.Tensor, full: torch.Tensor) -> list[int]:
    """Which of ``full``'s output channels survive in ``pruned`` (matched by their weights)."""
    flat = full.flatten(1)
    return [int((flat - row.flatten()).abs().sum(1).argmin()) for row in pruned]


def test_activity_on_the_avatar_keeps_the_channels_that_fire_where_l2_keeps_the_heavy_ones():
    torch.manual_seed(1)
    model = Wav2Lip().eval()
    first = model.face_encoder_blocks[0][0].conv_block  # 16 channels, a group of its own
    with torch.no_grad():
        first[0].weight[:8] *= 10.0  # heavy weights ...
        first[1].weight[:8] = 0.0  # ... on channels whose BatchNorm silences them
        first[1].bias[:8] = 0.0
    calibration = [example_inputs(4) for _ in range(2)]
    by_weight = prune_wav2lip(model, 0.5)
    by_activity = prune_wav2lip(model, 0.5, calibration=calibration)
    assert by_weight.importance == "l2" and by_activity.importance == "activation"
    full = first[0].weight
    kept_by_weight = _kept_rows(
        by_weight.model.face_encoder_blocks[0][0].conv_block[0].weight, full
    )
    kept_by_activity = _kept_rows(
        by_activity.model.face_encoder_blocks[0][0].conv_block[0].weight, full
    )
    assert sorted(kept_by_weight) == list(range(8))  # the silent, heavy channels
    assert sorted(kept_by_activity) == list(range(8, 16))  # the ones that fire
    assert by_activity.config == by_weight.config  # same widths, other channels


def test_the_fp16_export_takes_and_gives_fp32_and_stores_fp16_weights(half, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto

    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine

    fp32 = export_wav2lip_onnx(half.model, tmp_path / "p50.onnx")
    fp16 = export_wav2lip_onnx(half.model, tmp_path / "p50-fp16.onnx", precision="fp16")
    graph = onnx.load(str(fp16)).graph
    assert {i.type.tensor_type.elem_type for i in graph.input} == {TensorProto.FLOAT}
    assert graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    weights = [t for t in graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == TensorProto.FLOAT16 for t in weights)
    assert fp16.stat().st_size < 0.6 * fp32.stat().st_size
    mel, face = example_inputs(5)
    got = OnnxEngine(fp16).run({"mel": mel.numpy(), "face": face.numpy()})["frame"]
    with torch.no_grad():
        expected = half.model(mel, face).numpy()
    assert got.shape == (5, 3, 96, 96)
    assert abs(got - expected).max() < 1e-2  # fp16 rounding, not a different model
