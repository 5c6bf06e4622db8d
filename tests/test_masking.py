import pytest
import torch

from autonat.training.masking import (
    MaskingConfig,
    mask_batch,
    masked_accuracy,
    masked_cross_entropy,
    random_mask,
)


def test_mean_masked_fraction_matches_beta_mean():
    cfg = MaskingConfig(alpha=12, beta=3)
    tokens = torch.zeros(4000, 64, dtype=torch.long)
    labels = torch.zeros(4000, dtype=torch.long)
    batch = mask_batch(tokens, labels, cfg, mask_id=99, null_class=10, generator=torch.Generator().manual_seed(0))
    frac = batch.mask.float().mean().item()
    assert abs(frac - cfg.mean_ratio) < 0.01
    assert (batch.inputs[batch.mask] == 99).all() and (batch.inputs[~batch.mask] == 0).all()


def test_at_least_one_token_masked_and_counts_are_rounded():
    ratios = torch.tensor([0.0, 0.001, 0.5, 0.99])
    mask = random_mask((4, 10), ratios, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [1, 1, 5, 10]


def test_label_dropout_rate():
    cfg = MaskingConfig(p_uncond=0.15)
    labels = torch.full((20000,), 3)
    batch = mask_batch(torch.zeros(20000, 4, dtype=torch.long), labels, cfg, 16, 10,
                       generator=torch.Generator().manual_seed(1))
    assert set(batch.labels.unique().tolist()) == {3, 10}
    assert abs((batch.labels == 10).float().mean().item() - 0.15) < 0.01


def test_masking_is_reproducible_from_generator():
    cfg = MaskingConfig()
    t = torch.randint(0, 16, (8, 16))
    y = torch.zeros(8, dtype=torch.long)
    a = mask_batch(t, y, cfg, 16, 3, generator=torch.Generator().manual_seed(5))
    b = mask_batch(t, y, cfg, 16, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.labels, b.labels)


def test_cross_entropy_ignores_unmasked_positions():
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = True
    loss = masked_cross_entropy(logits, targets, mask, label_smoothing=0.1)
    changed = logits.clone()
    changed[~mask] = 100.0  # anything at unmasked positions must not matter
    assert torch.allclose(loss, masked_cross_entropy(changed, targets, mask, 0.1))
    expected = torch.nn.functional.cross_entropy(logits[mask], targets[mask], label_smoothing=0.1)
    assert torch.allclose(loss, expected)


def test_masked_accuracy_on_hand_built_example():
    logits = torch.tensor([[[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]]])
    targets = torch.tensor([[1, 1, 1]])
    mask = torch.tensor([[True, True, False]])
    assert masked_accuracy(logits, targets, mask, 1).item() == pytest.approx(0.5)
    assert masked_accuracy(logits, targets, mask, 2).item() == pytest.approx(1.0)


def test_bad_beta_parameters_rejected():
    with pytest.raises(ValueError, match="positive"):
        MaskingConfig(alpha=0, beta=3)
