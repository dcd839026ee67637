import numpy as np
import pytest
from needs import need_torch

torch = need_torch()

from streambot.models.wav2lip import (  # noqa: E402
    CheckpointError,
    Wav2Lip,
    Wav2LipConfig,
    fold_batchnorm,
)

TINY = Wav2LipConfig(
    face_widths=(4, 8, 8, 8, 16, 16, 16),
    audio_widths=(4, 4, 8, 8, 16, 16),
    decoder_widths=(16, 16, 16, 8, 8, 8, 4),
    output_width=4,
)


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Trained-like BatchNorm statistics, so folding and export are really exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    return model.eval()


def inputs(batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 80, 16, generator=g), torch.rand(batch, 6, 96, 96, generator=g)


def test_full_size_module_tree_matches_the_official_checkpoint_layout():
    state = Wav2Lip().state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    # Known shapes of the official 96x96 generator (36.3 M parameters).
    assert shapes["face_encoder_blocks.0.0.conv_block.0.weight"] == (16, 6, 7, 7)
    assert shapes["face_encoder_blocks.6.1.conv_block.0.weight"] == (512, 512, 1, 1)
    assert shapes["audio_encoder.3.conv_block.0.weight"] == (64, 32, 3, 3)
    assert shapes["audio_encoder.12.conv_block.0.weight"] == (512, 512, 1, 1)
    assert shapes["face_decoder_blocks.1.0.conv_block.0.weight"] == (1024, 512, 3, 3)
    assert shapes["face_decoder_blocks.6.0.conv_block.0.weight"] == (160, 64, 3, 3)
    assert shapes["output_block.0.conv_block.0.weight"] == (32, 80, 3, 3)
    assert shapes["output_block.1.weight"] == (3, 32, 1, 1)
    buffers = ("running", "num_batches")
    params = sum(v.numel() for k, v in state.items() if not any(b in k for b in buffers))
    assert params == 36_298_035


def test_official_style_checkpoint_with_module_prefixes_loads(tmp_path):
    source = randomise_batchnorm(Wav2Lip(TINY))
    checkpoint = {
        "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
        "optimizer": {},
        "global_step": 1,
        "global_epoch": 1,
    }
    path = tmp_path / "wav2lip.pth"
    torch.save(checkpoint, path)
    loaded = Wav2Lip.from_checkpoint(path, TINY)
    mel, face = inputs(2)
    with torch.no_grad():
        assert torch.equal(loaded(mel, face), source(mel, face))


def test_wrong_shape_and_missing_keys_are_named():
    state = Wav2Lip(TINY).state_dict()
    bad = dict(state)
    bad["audio_encoder.4.conv_block.0.weight"] = torch.zeros(3, 3, 3, 3)
    with pytest.raises(CheckpointError, match=r"audio_encoder\.4\.conv_block\.0\.weight"):
        Wav2Lip.from_checkpoint(bad, TINY)
    missing = {k: v for k, v in state.items() if not k.startswith("output_block.1")}
    with pytest.raises(CheckpointError, match=r"missing .*output_block\.1\.weight"):
        Wav2Lip.from_checkpoint(missing, TINY)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        Wav2Lip.from_checkpoint(state)  # tiny weights into the full-size widths
    with pytest.raises(CheckpointError, match="not found"):
        Wav2Lip.from_checkpoint("/nonexistent/wav2lip.pth")


def test_pruned_widths_reload_from_plain_state_dict_and_widths(tmp_path):
    model = randomise_batchnorm(Wav2Lip(TINY), seed=3)
    torch.save({"widths": TINY.to_dict(), "state_dict": model.state_dict()}, tmp_path / "p.pt")
    saved = torch.load(tmp_path / "p.pt", weights_only=True)
    again = Wav2Lip.from_checkpoint(saved["state_dict"], Wav2LipConfig.from_dict(saved["widths"]))
    mel, face = inputs(1)
    with torch.no_grad():
        assert torch.equal(again(mel, face), model(mel, face))


def test_batchnorm_folding_keeps_the_output():
    model = randomise_batchnorm(Wav2Lip(), seed=1)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    mel, face = inputs(2, seed=1)
    with torch.no_grad():
        out, out_folded = model(mel, face), folded(mel, face)
    assert out.shape == (2, 3, 96, 96)
    assert torch.allclose(out, out_folded, atol=1e-5)


def test_onnx_runtime_equals_torch_on_random_weights(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from streambot.runtime.export import export_wav2lip_onnx
    from streambot.runtime.onnx_engine import OnnxEngine
    from streambot.runtime.torch_engine import TorchEngine

    torch.manual_seed(0)
    model = randomise_batchnorm(Wav2Lip(), seed=2)
    engine = OnnxEngine(export_wav2lip_onnx(model, tmp_path / "w2l.onnx"))
    reference = TorchEngine(model, ["mel", "face"], ["frame"], device="cpu")
    for batch in (1, 5):  # the batch axis is dynamic
        mel, face = inputs(batch, seed=batch)
        feed = {"mel": mel.numpy(), "face": face.numpy()}
        got, want = engine.run(feed)["frame"], reference.run(feed)["frame"]
        assert got.shape == (batch, 3, 96, 96)
        assert np.abs(got - want).max() < 1e-4
