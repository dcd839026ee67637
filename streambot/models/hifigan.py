"""HiFi-GAN generator (Kong et al., 2020) as used as the VITS/Piper decoder, in plain PyTorch.

Module names follow VITS (``conv_pre``, ``ups.{i}``, ``resblocks.{j}.convs.{k}`` for ResBlock2 or
``convs1``/``convs2`` for ResBlock1, ``conv_post``), with weight norm already removed, so the
weights of a Piper voice's decoder map one to one. Stage widths come from the config, so a
channel-pruned decoder reloads from a plain state dict plus its widths.

Input: latent (B, in_channels, T). Output: waveform (B, 1, T * prod(upsample_rates)) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

LRELU_SLOPE = 0.1


class DecoderCheckpointError(ValueError):
    """A decoder checkpoint that is missing or does not fit its widths (the message says why)."""


@dataclass(frozen=True)
class HiFiGANConfig:
    in_channels: int = 192
    initial_channels: int = 256  # conv_pre output
    stage_widths: tuple[int, ...] = (128, 64, 32)  # output width of each upsampling stage
    upsample_rates: tuple[int, ...] = (8, 8, 4)
    upsample_kernels: tuple[int, ...] = (16, 16, 8)
    upsample_paddings: tuple[int, ...] = (4, 4, 2)
    resblock_kernels: tuple[int, ...] = (3, 5, 7)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 2), (2, 6), (3, 12))
    resblock_type: str = "2"
    post_bias: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> HiFiGANConfig:
        def tup(v: Any) -> Any:  # a checkpoint's widths, as JSON made them (lists)
            return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(**{k: tup(v) for k, v in data.items()})


class ResBlock1(nn.Module):
    """Two dilated convs per dilation: leaky -> conv(d) -> leaky -> conv(1), residual."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=(kernel - 1) // 2)
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """One dilated conv per dilation: leaky -> conv(d), residual (Piper's medium voices)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class HiFiGAN(nn.Module):
    def __init__(self, config: HiFiGANConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or HiFiGANConfig()
        self.num_kernels = len(c.resblock_kernels)
        self.conv_pre = nn.Conv1d(c.in_channels, c.initial_channels, 7, 1, padding=3)
        widths = (c.initial_channels, *c.stage_widths)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(widths[i], widths[i + 1], k, r, padding=p)
            for i, (r, k, p) in enumerate(
                zip(c.upsample_rates, c.upsample_kernels, c.upsample_paddings, strict=True)
            )
        )
        block = ResBlock1 if c.resblock_type == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(width, k, d)
            for width in c.stage_widths
            for k, d in zip(c.resblock_kernels, c.resblock_dilations, strict=True)
        )
        self.conv_post = nn.Conv1d(c.stage_widths[-1], 1, 7, 1, padding=3, bias=c.post_bias)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> HiFiGAN:
        """Load a decoder saved as ``{"state_dict", "widths"}`` (a pruned one from the engine
        builder); tensors only, nothing unpickled, every key and shape checked."""
        path = Path(path)
        if not path.is_file():
            raise DecoderCheckpointError(f"decoder checkpoint not found: {path}")
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        if "state_dict" not in checkpoint or "widths" not in checkpoint:
            raise DecoderCheckpointError(f"{path} has no state_dict and widths")
        model = cls(HiFiGANConfig.from_dict(checkpoint["widths"]))
        try:
            model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as exc:  # missing keys or shapes that do not fit the widths
            raise DecoderCheckpointError(f"{path} does not fit its widths: {exc}") from exc
        return model.eval()

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, C, T) -> waveform (B, 1, T * hop)."""
        x = self.conv_pre(latent)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total + block(x)
            x = total / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01 here, as in VITS
        return torch.tanh(x)
