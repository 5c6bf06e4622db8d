"""The MaskGIT VQGAN: the tokenizer of MaskGIT, MAGE and AutoNAT, in our own code.

Google's MaskGIT trained this VQGAN in JAX; MAGE (LTH14/mage) released a
PyTorch port, ``vqgan_jax_strongaug.ckpt``, config ``vq-f16-jax``, which
AutoNAT (LeapLabTHU/ImprovedNAT) uses: 256x256 images to 16x16 tokens from
1024 codes. It differs from taming-transformers' VQGAN in ways that matter
for loading and for the numbers it produces:

* no attention blocks anywhere (``attn_resolutions`` in its YAML is ignored);
* the 3x3 convolutions of the residual blocks and the encoder's input
  convolution have no bias;
* a residual block that changes width applies its 1x1 shortcut to the block's
  *output*, not its input: ``out = h + shortcut(h)``;
* the encoder downsamples by 2x2 average pooling, the decoder upsamples by
  nearest neighbour then a 3x3 convolution (with bias);
* each decoder level has ``num_res_blocks`` blocks (taming's has one more);
* no ``quant_conv``/``post_quant_conv``: the encoder emits the code vectors
  directly (``z_channels`` = code width);
* images go in as [0, 1] and come out in [0, 1] scale (clamped here).

The module names below reproduce the released checkpoint's keys
(``encoder.down.0.block.0.conv1.weight``, ``encoder.mid.block_1...``,
``decoder.up.1.upsample.conv.bias``, ``quantize.embedding.weight``) so the
file loads strictly; :mod:`autonat.tokenizers.foreign` detects and reads it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from autonat.tokenizers.base import GridTokenizer
from autonat.tokenizers.taming import Quantizer


@dataclass
class MaskGITVQGANConfig:
    """Architecture of the MaskGIT VQGAN; the defaults are ``vq-f16-jax``.

    ``channels`` must be a multiple of 32 (GroupNorm with 32 groups).
    """

    resolution: int = 256
    in_channels: int = 3
    channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    n_embed: int = 1024

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        if self.channels % 32:
            raise ValueError(f"channels must be a multiple of 32 (GroupNorm groups), got {self.channels}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channel_mult"] = list(self.channel_mult)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MaskGITVQGANConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; a width change adds ``nin_shortcut(h)`` to ``h``."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.nin_shortcut = nn.Conv2d(c_out, c_out, 1, bias=False) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        residual = x if self.nin_shortcut is None else self.nin_shortcut(h)
        return h + residual


class MidBlocks(nn.Module):
    """The two residual blocks at the lowest resolution (``mid.block_1``, ``mid.block_2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResBlock(channels, channels)
        self.block_2 = ResBlock(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.block_1(x))


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution (``upsample.conv``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Level(nn.Module):
    """One resolution: ``block`` (residual blocks), then an optional resampling."""

    def __init__(self, c_in: int, c_out: int, n_blocks: int, upsample: bool = False) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResBlock(c_in if i == 0 else c_out, c_out) for i in range(n_blocks))
        if upsample:
            self.upsample = Upsample(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        return x


class Encoder(nn.Module):
    """Images -> code vectors; 2x2 average pooling between levels."""

    def __init__(self, c: MaskGITVQGANConfig) -> None:
        super().__init__()
        widths = [c.channels * m for m in c.channel_mult]
        self.conv_in = nn.Conv2d(c.in_channels, c.channels, 3, padding=1, bias=False)
        ins = [c.channels] + widths[:-1]
        self.down = nn.ModuleList(Level(i, o, c.num_res_blocks) for i, o in zip(ins, widths))
        self.mid = MidBlocks(widths[-1])
        self.norm_out = _norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], c.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            h = level(h)
            if i < len(self.down) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Code vectors -> images; ``up[i]`` is level ``i`` (run from the lowest resolution up)."""

    def __init__(self, c: MaskGITVQGANConfig) -> None:
        super().__init__()
        widths = [c.channels * m for m in c.channel_mult]
        self.conv_in = nn.Conv2d(c.z_channels, widths[-1], 3, padding=1)
        self.mid = MidBlocks(widths[-1])
        ins = widths[1:] + widths[-1:]  # level i receives the output width of level i + 1
        self.up = nn.ModuleList(Level(ins[i], widths[i], c.num_res_blocks, upsample=i > 0)
                                for i in range(len(widths)))
        self.norm_out = _norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], c.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class MaskGITVQGAN(GridTokenizer):
    """MaskGIT VQGAN with the :class:`~autonat.tokenizers.base.Tokenizer` interface.

    ``MaskGITVQGAN()`` is the released ``vq-f16-jax`` architecture; pass a
    :class:`MaskGITVQGANConfig` for other sizes (tests use small ones).
    """

    kind = "maskgit-vqgan"

    def __init__(self, config: MaskGITVQGANConfig | None = None) -> None:
        super().__init__()
        self.config = config or MaskGITVQGANConfig()
        self.encoder = Encoder(self.config)
        self.decoder = Decoder(self.config)
        self.quantize = Quantizer(self.config.n_embed, self.config.z_channels)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> ``LongTensor[B, H/16, W/16]`` (fed to the encoder as is)."""
        return self.quantize.indices(self.encoder(images))

    def decode_raw(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token grid -> decoder output in [0, 1] scale, unclamped."""
        return self.decoder(self.quantize.lookup(tokens))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.decode_raw(tokens).clamp(0, 1)
