"""A VQGAN tokenizer on taming-transformers' Encoder and Decoder.

The module layout (``encoder``, ``decoder``, ``quant_conv``,
``post_quant_conv``, ``quantize.embedding``) is taming's, so a taming
checkpoint's ``state_dict`` loads into it unchanged once its loss and
discriminator entries are dropped. Only taming's network modules are
imported; ``taming.models.vqgan`` does not import with current Lightning.
"""
from __future__ import annotations

import contextlib
import io

import torch
import torch.nn.functional as F
from einops import rearrange
from taming.modules.diffusionmodules.model import Decoder, Encoder
from torch import nn

from autonat.tokenizers.base import GridTokenizer
from autonat.tokenizers.config import VQGANConfig


class Quantizer(nn.Module):
    """Nearest-neighbour vector quantiser with a straight-through gradient."""

    def __init__(self, n_embed: int, embed_dim: int, commitment: float = 0.25) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)
        self.commitment = commitment

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest code of every vector of ``z`` [B, C, h, w] -> [B, h, w]."""
        b, _, h, w = z.shape
        flat = rearrange(z, "b c h w -> (b h w) c").float()
        codes = self.embedding.weight.float()
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)
        return dist.argmin(1).view(b, h, w)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Codes for ids [B, h, w] -> [B, C, h, w]."""
        return rearrange(self.embedding(idx), "b h w c -> b c h w")

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``z``; return (straight-through codes, codebook + commitment loss, ids)."""
        idx = self.indices(z)
        zq = self.lookup(idx)
        loss = F.mse_loss(zq, z.detach()) + self.commitment * F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), loss, idx


class VQGAN(GridTokenizer):
    """taming-style VQGAN with the :class:`~autonat.tokenizers.base.Tokenizer` interface."""

    kind = "taming-vqgan"

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        dd = config.ddconfig()
        self.encoder = Encoder(**dd)
        with contextlib.redirect_stdout(io.StringIO()):  # taming's Decoder prints its latent shape
            self.decoder = Decoder(**dd)
        self.quantize = Quantizer(config.n_embed, config.embed_dim)
        self.quant_conv = nn.Conv2d(config.z_channels, config.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.z_channels, 1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation features of images in [0, 1]."""
        return self.quant_conv(self.encoder(2 * images - 1))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantize.indices(self.features(images))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode quantised vectors [B, C, h, w] to images in [-1, 1] (unclamped)."""
        return self.decoder(self.post_quant_conv(codes))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.decode_codes(self.quantize.lookup(tokens))
        return ((x + 1) / 2).clamp(0, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruct images in [0, 1]; return (reconstruction in [-1, 1] scale, vq loss, ids)."""
        zq, vq_loss, idx = self.quantize(self.features(images))
        return self.decode_codes(zq), vq_loss, idx
