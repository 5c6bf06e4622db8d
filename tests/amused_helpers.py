"""A tiny random-weight aMUSEd pipeline folder (diffusers layout) built from configs; nothing is downloaded."""
from __future__ import annotations

import json
from pathlib import Path

#: 8x8 images, 4x4 tokens from a 16-code VQ model (f = 2); the [MASK] id is the last of 24 transformer vocabulary ids.
CODEBOOK, MASK_ID, VOCAB = 16, 23, 24
GRID_SIDE, TEXT_LENGTH = 4, 8
IMAGE_SIDE = 2 * GRID_SIDE


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet: printable bytes stand for themselves, the rest map above 255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_clip_tokenizer(path: Path) -> None:
    """A CLIP BPE tokenizer (byte alphabet, a handful of merges) with ``model_max_length`` TEXT_LENGTH."""
    path.mkdir(parents=True, exist_ok=True)
    alphabet = _bytes_to_unicode()
    merges = [("t", "h"), ("th", "e</w>"), ("a", "t</w>"), ("o", "g</w>"), ("d", "og</w>"), ("c", "at</w>")]
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (path / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": TEXT_LENGTH, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"}))
    (path / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}))


def build_tiny_amused(seed: int = 0, grid_side: int = GRID_SIDE):
    """The five components of a tiny ``AmusedPipeline`` (random weights, fixed by ``seed``): ``grid_side``
    squared tokens, images twice that side."""
    import torch
    from diffusers import AmusedScheduler, UVit2DModel, VQModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    transformer = UVit2DModel(
        hidden_size=16, use_bias=False, cond_embed_dim=8, micro_cond_encode_dim=2, micro_cond_embed_dim=10,
        encoder_hidden_size=8, vocab_size=VOCAB, codebook_size=CODEBOOK, in_channels=8, block_out_channels=8,
        num_res_blocks=1, downsample=False, upsample=False, block_num_heads=1, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=16, sample_size=grid_side)
    # random weights give near-uniform logits; a larger output layer spreads them like a trained model's
    with torch.no_grad():
        transformer.mlm_layer.conv2.weight.mul_(20.0)
    vqvae = VQModel(block_out_channels=[8, 8], down_block_types=["DownEncoderBlock2D"] * 2,
                    up_block_types=["UpDecoderBlock2D"] * 2, latent_channels=4, layers_per_block=1,
                    norm_num_groups=4, num_vq_embeddings=CODEBOOK, sample_size=2 * grid_side,
                    mid_block_add_attention=False, lookup_from_codebook=True)
    text_config = CLIPTextConfig(hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=2,
                                 projection_dim=8, vocab_size=520, max_position_embeddings=TEXT_LENGTH,
                                 bos_token_id=518, eos_token_id=519, pad_token_id=519)
    text_encoder = CLIPTextModelWithProjection(text_config)
    return dict(vqvae=vqvae, transformer=transformer, text_encoder=text_encoder,
                scheduler=AmusedScheduler(mask_token_id=MASK_ID))


def write_tiny_amused(path: Path, seed: int = 0, grid_side: int = GRID_SIDE) -> Path:
    """Save a tiny ``AmusedPipeline`` to ``path`` with ``save_pretrained`` (the released folder layout)."""
    from diffusers import AmusedPipeline
    from transformers import CLIPTokenizer

    write_clip_tokenizer(path.parent / f"{path.name}-clip-tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(path.parent / f"{path.name}-clip-tokenizer", local_files_only=True)
    AmusedPipeline(tokenizer=tokenizer, **build_tiny_amused(seed, grid_side)).save_pretrained(path)
    return path
