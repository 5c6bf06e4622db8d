"""The U-ViT masked-token network of AutoNAT.

A bidirectional transformer over the token grid with context tokens in front:
the class label as one token (class-conditional, ``text_width == 0``), or a
caption's text-encoder hidden states as ``text_length`` tokens (U-ViT's
MS-COCO design: ``Linear(text_width -> width)`` plus a learned position
embedding per text position, no norm). Blocks of the first half feed long skip
connections (concatenate, then Linear) into the blocks of the second half.
The output head is tied to the token embedding table (BERT's "MLM layer").

The math follows the official AutoNAT U-ViT (LeapLabTHU/ImprovedNAT,
``libs/nat_model.py``) so that its released weights load by renaming keys
(see :mod:`autonat.generator.official`): token plus position embedding, LayerNorm
(eps 1e-6) and dropout; pre-norm blocks with bias-free qkv; a final
LayerNorm; a head over ``codebook_size + 1`` entries sliced to the codebook.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from autonat.errors import AutonatError
from autonat.generator.condition import TextCondition
from autonat.generator.config import NAMED_SIZES, UViTConfig


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

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``keys`` [B, 1, 1, N] bool (True: may be attended to), or None for every position."""
        q, k, v = rearrange(self.qkv(x), "b n (k h d) -> k b h n d", k=3, h=self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
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

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                keys: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip is not None:
            x = self.skip(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x), keys)
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


@dataclass
class DeepReuse:
    """Deep-feature reuse through U-ViT's long skips (DeepCache, Ma et al., CVPR 2024, for masked tokens).

    With ``h = depth / 2``, out block ``j`` merges in block ``h - 1 - j``'s
    output through a long skip. Split the network at ``keep = k``: the
    *shallow* part is in blocks ``0 .. k-1`` and out blocks ``h-k .. h-1``
    (the last ``k``, fed by those in blocks' skips), the *deep* part
    everything between: ``D = out[h-k-1] o ... o out[0] o mid o in[h-1] o ... o in[k]``.

    A forward pass given a ``DeepReuse`` without ``features`` runs in full
    and stores ``features``, the deep part's output ``D(x_k)`` (the input of
    out block ``h - k``); a pass given ``features`` runs only the shallow
    part, ``2k`` of the ``depth + 1`` blocks, and takes ``D`` from them:
    ``out[h-1](... out[h-k](features, skip_{k-1}) ..., skip_0)``, the skips
    ``skip_i`` computed from this pass's tokens. Exact when ``D(x_k)`` has
    not changed since it was stored; between two decoding steps it changes
    little where few tokens changed.
    """

    keep: int
    features: torch.Tensor | None = None


class UViT(nn.Module):
    """Masked-token U-ViT: ``forward(tokens [B, L], cond) -> logits [B, L, codebook]``.

    ``tokens`` hold codebook ids or ``config.mask_id``. ``cond`` is, for a
    class-conditional model, class ids ``[B]`` in ``[0, num_classes]``
    (``num_classes`` being the null class); for a text-conditional model
    (``config.text_width > 0``) a
    :class:`~autonat.generator.condition.TextCondition` whose hidden states
    ``[B, text_length, text_width]`` become the context tokens
    ``hidden @ W^T + b + P`` (``P`` a learned ``[text_length, width]`` position
    table). Padding text tokens (``mask`` False) are masked as attention keys
    in every block: no position attends to them, so their values never reach
    the image tokens. The pooled embedding, when given, is not read.

    A text model keeps its null condition, the encoded empty caption, as the
    buffers ``empty_hidden`` ``[1, text_length, text_width]`` and
    ``empty_mask`` ``[1, text_length]`` (saved in the checkpoint; set with
    :meth:`set_empty_caption` before training) and returns it from
    :meth:`null_condition`.
    """

    def __init__(self, config: UViTConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.token_embed = Embedding(c.codebook_size + 1, c.seq_len, c.width, c.dropout)
        if c.is_text:
            self.text_embed = nn.Linear(c.text_width, c.width)
            self.text_positions = nn.Parameter(torch.zeros(c.text_length, c.width))
            self.register_buffer("empty_hidden", torch.zeros(1, c.text_length, c.text_width))
            self.register_buffer("empty_mask", torch.ones(1, c.text_length, dtype=torch.bool))
        else:
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
        if c.is_text:
            nn.init.trunc_normal_(self.text_positions, std=0.02)  # as U-ViT's pos_embed

    def context(self, cond) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The context tokens ``[B, context_len, width]`` of ``cond`` and the attention key mask
        ``[B, 1, 1, context_len + L]`` (None for class ids: every key may be attended to)."""
        if not self.config.is_text:
            if isinstance(cond, TextCondition):
                raise AutonatError("this generator is class-conditional: give it class ids (--classes), "
                                   "not captions (--prompt)")
            return self.class_embed(cond[:, None]), None
        if not isinstance(cond, TextCondition):
            raise AutonatError("this generator is text-conditional: give it captions (--prompt / --prompts), "
                               "not class ids (--classes)")
        want = (self.config.text_length, self.config.text_width)
        if tuple(cond.hidden.shape[1:]) != want:
            raise AutonatError(f"text hidden states are {tuple(cond.hidden.shape[1:])} but the generator takes "
                               f"{want} (tokens, width); encode captions with the encoder the checkpoint records")
        x = self.text_embed(cond.hidden.to(self.text_positions.dtype)) + self.text_positions
        # the key mask is passed even when every text token is real, so a row's numbers never depend on
        # which other rows share its batch (one attention kernel for all)
        image = torch.ones(len(cond), self.config.seq_len, dtype=torch.bool, device=cond.mask.device)
        return x, torch.cat([cond.mask.to(torch.bool), image], dim=1)[:, None, None, :]

    def forward(self, tokens: torch.Tensor, cond, deep: DeepReuse | None = None) -> torch.Tensor:
        """Logits; with ``deep`` (see :class:`DeepReuse`) the pass reuses ``deep.features`` or stores them."""
        ctx, keys = self.context(cond)
        x = torch.cat([ctx, self.token_embed(tokens)], dim=1)
        half = len(self.in_blocks)
        reuse = deep is not None and deep.features is not None
        skips = []
        for block in self.in_blocks[: deep.keep if reuse else half]:
            x = block(x, keys=keys)
            skips.append(x)
        if reuse:
            x = deep.features
        else:
            x = self.mid_block(x, keys=keys)
            for block in self.out_blocks[: half - (0 if deep is None else deep.keep)]:
                x = block(x, skips.pop(), keys=keys)
            if deep is not None:
                deep.features = x
        for block in self.out_blocks[half - len(skips):]:
            x = block(x, skips.pop(), keys=keys)
        logits = self.head(self.final_norm(x), self.token_embed.tokens.weight)
        return logits[:, self.config.context_len:, : self.config.codebook_size]

    # ----------------------------------------------------------------------- the null condition (text)
    def set_empty_caption(self, empty: TextCondition) -> None:
        """Store the encoded empty caption (one row) as this model's null condition."""
        if len(empty) != 1 or tuple(empty.hidden.shape[1:]) != tuple(self.empty_hidden.shape[1:]):
            raise AutonatError(f"the empty caption must be one row of {tuple(self.empty_hidden.shape[1:])} hidden "
                               f"states, got {tuple(empty.hidden.shape)}")
        with torch.no_grad():
            self.empty_hidden.copy_(empty.hidden)
            self.empty_mask.copy_(empty.mask)

    def null_condition(self, cond: TextCondition) -> TextCondition:
        """The empty caption for every row of ``cond`` (the unconditional pass of guidance).

        The model reads no pooled embedding; when ``cond`` carries one, the
        null's is zeros of that shape, so the two can share a batch.
        """
        if not self.config.is_text:
            self.context(cond[:0])  # the one error for a condition of the wrong kind
            return torch.full_like(cond, self.config.null_class)
        null = TextCondition(self.empty_hidden, self.empty_mask).repeat(len(cond))
        if cond.pooled is None:
            return null
        return TextCondition(null.hidden, null.mask, torch.zeros_like(cond.pooled))

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
