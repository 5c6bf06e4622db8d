import pytest
import torch
from scipy.special import betainc

from autonat.training.masking import (
    MaskingConfig,
    mask_counts,
    mask_rows,
    masked_accuracy,
    masked_cross_entropy,
)


def test_mean_masked_fraction_matches_beta_mean():
    cfg = MaskingConfig(alpha=12, beta=3)
    tokens = torch.zeros(4000, 64, dtype=torch.long)
    labels = torch.zeros(4000, dtype=torch.long)
    batch = mask_rows(tokens, labels, 0, (0, 0), cfg, mask_id=99, null_class=10)
    frac = batch.mask.float().mean().item()
    assert abs(frac - cfg.mean_ratio) < 0.01
    assert (batch.inputs[batch.mask] == 99).all() and (batch.inputs[~batch.mask] == 0).all()


def test_at_least_one_token_masked_and_counts_are_rounded():
    """count = clamp(round(r L), 1, L): P(count = 1) = P(r L < 1.5), and the counts stay in [1, L]."""
    cfg = MaskingConfig(alpha=0.5, beta=5.0)  # many tiny ratios
    counts = mask_counts((0, 0), 0, 50_000, 10, cfg)
    assert counts.min() == 1 and counts.max() <= 10
    assert (counts == 1).mean() == pytest.approx(betainc(0.5, 5.0, 0.15), abs=0.01)


def test_label_dropout_rate():
    cfg = MaskingConfig(p_uncond=0.15)
    labels = torch.full((20000,), 3)
    batch = mask_rows(torch.zeros(20000, 4, dtype=torch.long), labels, 0, (1, 0), cfg, 16, 10)
    assert set(batch.labels.unique().tolist()) == {3, 10}
    assert abs((batch.labels == 10).float().mean().item() - 0.15) < 0.01


def test_masking_is_reproducible_from_its_key():
    cfg = MaskingConfig()
    t = torch.randint(0, 16, (8, 16))
    y = torch.zeros(8, dtype=torch.long)
    a, b, c = (mask_rows(t, y, 0, key, cfg, 16, 3) for key in ((5, 1), (5, 1), (5, 2)))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.labels, b.labels) and not torch.equal(a.mask, c.mask)


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
