"""The U-ViT's architecture as a value (:class:`UViTConfig`) and its named sizes, without torch.

Recipes are parsed and checked before torch is imported (a typo fails fast);
:mod:`autonat.generator.uvit` builds the network from this config.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class UViTConfig:
    """Architecture of the masked-token U-ViT.

    ``depth`` counts the blocks of the two halves; the network has
    ``depth + 1`` blocks in all (one middle block), as in AutoNAT.
    ``text_width > 0`` makes it text-conditional on ``text_length`` hidden
    states of that width (``num_classes`` is then 0: no class table);
    ``text_width == 0`` is class-conditional, as AutoNAT on ImageNet.
    """

    codebook_size: int = 1024
    grid: tuple[int, int] = (16, 16)
    num_classes: int = 1000
    width: int = 768
    depth: int = 24
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    text_width: int = 0  # 0: class-conditional; else the text encoder's hidden width
    text_length: int = 0  # the text encoder's token count (hidden states per caption)

    def __post_init__(self) -> None:
        self.grid = tuple(int(g) for g in self.grid)  # YAML and JSON give lists
        if self.text_width < 0 or self.text_length < 0:
            raise ValueError(f"text_width and text_length must be >= 0, got {self.text_width}, {self.text_length}")
        if (self.text_width > 0) != (self.text_length > 0):
            raise ValueError(f"a text-conditional model needs both text_width and text_length > 0, got "
                             f"{self.text_width} and {self.text_length}")
        if self.is_text and self.num_classes:
            raise ValueError(f"a text-conditional model has no classes (num_classes 0), got {self.num_classes}")
        if self.depth % 2:
            raise ValueError(f"depth must be even (two halves around a middle block), got {self.depth}")
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by num_heads {self.num_heads}")

    @property
    def seq_len(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def is_text(self) -> bool:
        """True if the model is conditioned on captions (text hidden states), not class ids."""
        return self.text_width > 0

    @property
    def context_len(self) -> int:
        """Context tokens in front of the image tokens: 1 class token, or ``text_length`` text tokens."""
        return self.text_length if self.is_text else 1

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
