"""The 96x96 Wav2Lip generator (Prajwal et al., 2020) in plain PyTorch, no I/O but checkpoints.

The module tree matches the official implementation name for name (``face_encoder_blocks``,
``audio_encoder``, ``face_decoder_blocks``, ``output_block``, each conv as
``conv_block.0`` + BatchNorm ``conv_block.1``), so the official ``wav2lip.pth`` and
``wav2lip_gan.pth`` state dicts load unchanged. Channel widths come from ``Wav2LipConfig``, so a
channel-pruned model reloads from a plain state dict plus its widths.

Inputs (inference, 4-D): mel (B, 1, 80, 16) and face (B, 6, 96, 96) = the masked target frame
and the reference frame, each BGR in [0, 1], concatenated on channels. Output (B, 3, 96, 96)
BGR in [0, 1].
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

Stride = int | tuple[int, int]


class CheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names the offending key."""


@dataclass(frozen=True)
class Wav2LipConfig:
    # Output width of each face-encoder block (96, 48, 24, 12, 6, 3, 1 pixels).
    face_widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 512)
    # Output width of each audio-encoder stage; the last is the audio embedding.
    audio_widths: tuple[int, ...] = (32, 64, 128, 256, 512, 512)
    # Output width of each face-decoder block (1, 3, 6, 12, 24, 48, 96 pixels).
    decoder_widths: tuple[int, ...] = (512, 512, 512, 384, 256, 128, 64)
    output_width: int = 32
    img_size: int = 96

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> Wav2LipConfig:
        # a checkpoint's widths, as JSON made them (lists): their types are checked by use
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        return cls(**fields)


# -- leaf modules ---------------------------------------------------------------------------
class Conv2d(nn.Module):
    """Conv + BatchNorm + ReLU, optionally residual (input added before the ReLU)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: Stride,
        padding: int,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int,
        stride: int,
        padding: int,
        output_padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _stage(
    cin: int, cout: int, stride: Stride, extra_residual: int, kernel: int = 3, padding: int = 1
) -> list[nn.Module]:
    """A strided conv to ``cout`` then ``extra_residual`` residual 3x3 convs at ``cout``."""
    layers: list[nn.Module] = [Conv2d(cin, cout, kernel, stride, padding)]
    layers += [Conv2d(cout, cout, 3, 1, 1, residual=True) for _ in range(extra_residual)]
    return layers


def _up(
    cin: int, cout: int, residual: int, stride: int = 2, padding: int = 1, output_padding: int = 1
) -> nn.Sequential:
    layers: list[nn.Module] = [Conv2dTranspose(cin, cout, 3, stride, padding, output_padding)]
    layers += [Conv2d(cout, cout, 3, 1, 1, residual=True) for _ in range(residual)]
    return nn.Sequential(*layers)


# -- the generator --------------------------------------------------------------------------
class Wav2Lip(nn.Module):
    def __init__(self, config: Wav2LipConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or Wav2LipConfig()
        f, a, d = c.face_widths, c.audio_widths, c.decoder_widths
        if len(f) != 7 or len(a) != 6 or len(d) != 7:
            raise ValueError("Wav2LipConfig needs 7 face, 6 audio and 7 decoder widths")
        self.face_encoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(6, f[0], 7, 1, 3)),  # 96x96
                nn.Sequential(*_stage(f[0], f[1], 2, 2)),  # 48x48
                nn.Sequential(*_stage(f[1], f[2], 2, 3)),  # 24x24
                nn.Sequential(*_stage(f[2], f[3], 2, 2)),  # 12x12
                nn.Sequential(*_stage(f[3], f[4], 2, 2)),  # 6x6
                nn.Sequential(*_stage(f[4], f[5], 2, 1)),  # 3x3
                nn.Sequential(Conv2d(f[5], f[6], 3, 1, 0), Conv2d(f[6], f[6], 1, 1, 0)),  # 1x1
            ]
        )
        self.audio_encoder = nn.Sequential(  # (B, 1, 80, 16) -> (B, a[5], 1, 1)
            *_stage(1, a[0], 1, 2),  # 80x16
            *_stage(a[0], a[1], (3, 1), 2),  # 27x16
            *_stage(a[1], a[2], 3, 2),  # 9x6
            *_stage(a[2], a[3], (3, 2), 1),  # 3x3
            Conv2d(a[3], a[4], 3, 1, 0),  # 1x1
            Conv2d(a[4], a[5], 1, 1, 0),
        )
        # Decoder block i (i >= 1) sees the previous block's output concatenated with the
        # encoder feature of the same resolution: d[i-1] + f[7-i] channels.
        self.face_decoder_blocks = nn.ModuleList(
            [
                nn.Sequential(Conv2d(a[5], d[0], 1, 1, 0)),  # 1x1
                _up(d[0] + f[6], d[1], 1, stride=1, padding=0, output_padding=0),  # 3x3
                _up(d[1] + f[5], d[2], 2),  # 6x6
                _up(d[2] + f[4], d[3], 2),  # 12x12
                _up(d[3] + f[3], d[4], 2),  # 24x24
                _up(d[4] + f[2], d[5], 2),  # 48x48
                _up(d[5] + f[1], d[6], 2),  # 96x96
            ]
        )
        self.output_block = nn.Sequential(
            Conv2d(d[6] + f[0], c.output_width, 3, 1, 1),
            nn.Conv2d(c.output_width, 3, kernel_size=1, stride=1, padding=0),
            nn.Sigmoid(),
        )

    def forward(self, mel: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """mel (B, 1, 80, 16), face (B, 6, 96, 96) -> (B, 3, 96, 96) in [0, 1]."""
        feats = []
        x = face
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(mel)  # (B, a[5], 1, 1)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)
        return self.output_block(x)

    # -- checkpoints ------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls,
        source: str | Path | Mapping,
        config: Wav2LipConfig | None = None,
        map_location: str = "cpu",
    ) -> Wav2Lip:
        """Load an official checkpoint (``{"state_dict": ...}``, ``module.`` prefixes from
        DataParallel), a plain state dict, or a pruned one saved with its ``widths``; every key
        and shape is checked first."""
        if isinstance(source, Mapping):
            checkpoint = source
        else:
            path = Path(source)
            if not path.is_file():
                raise CheckpointError(f"Wav2Lip checkpoint not found: {path}")
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        if config is None and "widths" in checkpoint:  # a pruned model saved by streambot
            config = Wav2LipConfig.from_dict(checkpoint["widths"])
        state = clean_state_dict(checkpoint)
        model = cls(config)
        check_state_dict(model, state)
        model.load_state_dict(state, strict=False)  # every other key was checked above
        return model.eval()


def clean_state_dict(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        raise CheckpointError("checkpoint holds no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    # BatchNorm step counters are training bookkeeping; old checkpoints may lack them.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(f"checkpoint is missing {len(missing)} key(s), first: {missing[0]}")
    if unexpected:
        raise CheckpointError(f"checkpoint has unexpected key(s), first: {unexpected[0]}")
    for key, tensor in expected.items():
        got = tuple(state[key].shape)
        if got != tuple(tensor.shape):
            raise CheckpointError(
                f"shape mismatch at {key}: checkpoint has {got}, model expects "
                f"{tuple(tensor.shape)} (are the channel widths right?)"
            )


# -- inference transforms -----------------------------------------------------------------------
def _fold(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> nn.Module:
    """A conv whose weights include the BatchNorm that followed it (eval statistics)."""
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    folded = copy.deepcopy(conv)
    scale = bn.weight.detach() / torch.sqrt(var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(mean)
    shape = [1] * conv.weight.dim()
    # Conv2d weights are (out, in, kh, kw); ConvTranspose2d weights are (in, out, kh, kw).
    out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape[out_dim] = -1
    folded.weight = nn.Parameter(conv.weight.detach() * scale.reshape(shape))
    folded.bias = nn.Parameter((bias - mean) * scale + bn.bias.detach())
    return folded


def fold_batchnorm(model: Wav2Lip) -> Wav2Lip:
    """A copy of ``model`` with every BatchNorm folded into its conv (for inference/export)."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if isinstance(module, Conv2d | Conv2dTranspose):
            conv, bn = module.conv_block[0], module.conv_block[1]
            if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and isinstance(bn, nn.BatchNorm2d):
                module.conv_block = nn.Sequential(_fold(conv, bn), nn.Identity())
    return folded
