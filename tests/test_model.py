import pytest
import torch

from autonat.generator.uvit import UViT, UViTConfig, named_config


def test_output_shape_and_mask_token(tiny_model, tiny_config):
    tokens = torch.randint(0, tiny_config.codebook_size + 1, (3, tiny_config.seq_len))
    labels = torch.tensor([0, 2, tiny_config.null_class])
    logits = tiny_model(tokens, labels)
    assert logits.shape == (3, tiny_config.seq_len, tiny_config.codebook_size)
    assert torch.isfinite(logits).all()


def test_gradients_reach_every_parameter(tiny_config):
    model = UViT(tiny_config).train()
    tokens = torch.randint(0, tiny_config.codebook_size + 1, (4, tiny_config.seq_len))
    labels = torch.tensor([0, 1, 2, 3])
    model(tokens, labels).logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_block_count_and_skips():
    model = UViT(named_config("tiny", codebook_size=8, grid=(2, 2), num_classes=2))
    assert len(model.in_blocks) == 2 and len(model.out_blocks) == 2
    assert all(b.skip is not None for b in model.out_blocks)
    assert all(b.skip is None for b in model.in_blocks) and model.mid_block.skip is None


def test_named_sizes_match_paper():
    small, large = named_config("autonat-s"), named_config("autonat-l")
    assert (small.depth + 1, small.width) == (13, 512)
    assert (large.depth + 1, large.width, large.num_heads) == (25, 768, 8)


def test_bad_configs_rejected():
    with pytest.raises(ValueError, match="even"):
        UViTConfig(depth=3)
    with pytest.raises(ValueError, match="divisible"):
        UViTConfig(width=100, num_heads=8)
    with pytest.raises(ValueError, match="unknown model size"):
        named_config("huge")
