"""The U-ViT masked-token network of AutoNAT.

A bidirectional transformer over the token grid with the class label as one
extra context token in front. Blocks of the first half feed long skip
connections (concatenate, then Linear) into the blocks of the second half.
The output head is tied to the token embedding table (BERT's "MLM layer").

The math follows the official AutoNAT U-ViT (LeapLabTHU/ImprovedNAT,
``libs/nat_model.py``) so that its released weights load by renaming keys
(see :mod:`autonat.generator.official`): token plus position embedding, LayerNorm
(eps 1e-6) and dropout; pre-norm blocks with bias-free qkv; a final
LayerNorm; a head over ``codebook_size + 1`` entries sliced to the codebook.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class UViTConfig:
    """Architecture of the masked-token U-ViT.

    ``depth`` counts the blocks of the two halves; the network has
    ``depth + 1`` blocks in all (one middle block), as in AutoNAT.
    """

    codebook_size: int = 1024
    grid: tuple[int, int] = (16, 16)
    num_classes: int = 1000
    width: int = 768
    depth: int = 24
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.grid = tuple(int(g) for g in self.grid)  # YAML and JSON give lists
        if self.depth % 2:
            raise ValueError(f"depth must be even (two halves around a middle block), got {self.depth}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")

    @property
    def seq_len(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def mask_id(self) -> int:
        """The [MASK] token id: one past the codebook."""
        return self.codebook_size

    @property
    def null_class(self) -> int:
        """The label used for the unconditional branch of classifier-free guidance."""
        return self.num_classes

    def to_dict(self) -> dict:
        return asdict(self)


#: Named sizes. AutoNAT-S and AutoNAT-L follow the paper (13 and 25 blocks).
NAMED_SIZES: dict[str, dict] = {
    "autonat-s": dict(width=512, depth=12, num_heads=8),
    "autonat-l": dict(width=768, depth=24, num_heads=8),
    "tiny": dict(width=128, depth=4, num_heads=4),
}


def named_config(name: str, **overrides) -> UViTConfig:
    """A :class:`UViTConfig` for a named size, with field overrides."""
    key = name.lower()
    if key not in NAMED_SIZES:
        raise ValueError(f"unknown model size {name!r}; choose one of {sorted(NAMED_SIZES)}")
    return UViTConfig(**{**NAMED_SIZES[key], **overrides})


class Embedding(nn.Module):
    """Token plus learned position embedding, then LayerNorm and dropout."""

    def __init__(self, vocab_size: int, length: int, width: int, dropout: float) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, width)
        self.positions = nn.Embedding(length, width)
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tokens(ids) + self.positions.weight[: ids.shape[1]]
        return self.dropout(self.norm(x))


class Attention(nn.Module):
    """Multi-head self-attention with a bias-free qkv projection."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (k h d) -> k b h n d", k=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class Mlp(nn.Module):
    """Two-layer GELU feed-forward network.

    When no gradient is needed (sampling), GELU overwrites the hidden layer in
    place: the same kernel and the same numbers, one ``4 x width`` buffer fewer
    at the network's widest point, which lowers the sampler's peak memory.
    """

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = F.gelu(h) if h.requires_grad else torch.ops.aten.gelu_(h)
        return self.fc2(h)


class Block(nn.Module):
    """Pre-norm transformer block; blocks of the second half first merge a skip."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, skip: bool = False) -> None:
        super().__init__()
        self.skip = nn.Linear(2 * width, width) if skip else None
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, num_heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = Mlp(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TiedHead(nn.Module):
    """BERT's MLM layer: Linear, GELU, LayerNorm, then logits against the token table.

    As in AutoNAT, the embedding table enters the head detached, so the head
    trains ``fc``, ``norm`` and ``bias`` while the table learns from the input side.
    """

    def __init__(self, width: int, vocab_size: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.bias = nn.Parameter(torch.zeros(1, 1, vocab_size))  # official layout

    def forward(self, x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.fc(x)))
        return h @ table.detach().t() + self.bias


class UViT(nn.Module):
    """Masked-token U-ViT: ``forward(tokens [B, L], labels [B]) -> logits [B, L, codebook]``.

    ``tokens`` hold codebook ids or ``config.mask_id``; ``labels`` hold class
    ids in ``[0, num_classes]``, ``num_classes`` being the null class.
    """

    def __init__(self, config: UViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.token_embed = Embedding(c.codebook_size + 1, c.seq_len, c.width, c.dropout)
        self.class_embed = Embedding(c.num_classes + 1, 1, c.width, 0.0)
        half = c.depth // 2
        self.in_blocks = nn.ModuleList(Block(c.width, c.num_heads, c.mlp_ratio) for _ in range(half))
        self.mid_block = Block(c.width, c.num_heads, c.mlp_ratio)
        self.out_blocks = nn.ModuleList(
            Block(c.width, c.num_heads, c.mlp_ratio, skip=True) for _ in range(half)
        )
        self.final_norm = nn.LayerNorm(c.width)
        self.head = TiedHead(c.width, c.codebook_size + 1)
        self.apply(_init_weights)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.class_embed(labels[:, None]), self.token_embed(tokens)], dim=1)
        skips = []
        for block in self.in_blocks:
            x = block(x)
            skips.append(x)
        x = self.mid_block(x)
        for block in self.out_blocks:
            x = block(x, skips.pop())
        logits = self.head(self.final_norm(x), self.token_embed.tokens.weight)
        return logits[:, 1:, : self.config.codebook_size]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal Linear weights, zero biases, unit LayerNorms (as U-ViT)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
