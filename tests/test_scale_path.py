"""The training data path at scale: the per-epoch order, per-row masks, gathered rows, gradient accumulation."""
import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autonat.data.shuffle import epoch_items, epoch_keys, permute
from autonat.training.loop import batch_indices, step_key, train_step
from autonat.training.masking import MaskingConfig, mask_count_cdf, mask_counts, mask_rows, stream_uniforms
from autonat.training.recipe import OptimConfig, Recipe, TrainConfig


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**32), epoch=st.integers(0, 10**6))
def test_each_epoch_is_a_permutation_of_the_items(n, seed, epoch):
    assert sorted(permute(np.arange(n), n, epoch_keys(seed, epoch)).tolist()) == list(range(n))


def test_epochs_differ_and_batches_read_across_an_epoch_boundary():
    n = 50
    a, b = permute(np.arange(n), n, epoch_keys(0, 0)), permute(np.arange(n), n, epoch_keys(0, 1))
    assert not np.array_equal(a, b) and not np.array_equal(a, np.arange(n))
    stream = np.concatenate([batch_indices(s, 7, n, seed=0) for s in range(15)])  # 105 items: 2 epochs and 5
    assert np.array_equal(stream[:50], a) and np.array_equal(stream[50:100], b)
    assert np.array_equal(epoch_items(0, n, 48, 4), np.concatenate([a[48:], b[:2]]))


def test_a_process_reads_its_own_rows_of_the_global_batch():
    whole = batch_indices(9, 12, 1000, seed=4)
    parts = [batch_indices(9, 12, 1000, seed=4, rows=slice(r * 4, r * 4 + 4)) for r in range(3)]
    assert np.array_equal(np.concatenate(parts), whole)


def test_stream_draws_jump_to_any_start():
    full = stream_uniforms((3, 5), 2, 0, 40)
    for start in (0, 1, 3, 4, 9, 17):
        assert np.array_equal(stream_uniforms((3, 5), 2, start, 40 - start), full[start:])
    assert not np.array_equal(stream_uniforms((3, 6), 2, 0, 40), full)


def test_mask_counts_follow_the_rounded_beta():
    """The count CDF against Beta draws rounded to ``clamp(round(r L), 1, L)``; the counts against the CDF."""
    cfg, length = MaskingConfig(alpha=2.0, beta=3.0), 10
    ratios = np.random.default_rng(0).beta(2.0, 3.0, 200_000)
    rounded = np.clip(np.round(ratios * length), 1, length)
    empirical = np.array([(rounded <= k).mean() for k in range(1, length + 1)])
    assert np.abs(mask_count_cdf(length, 2.0, 3.0) - empirical).max() < 0.005
    counts = mask_counts((0, 1), 0, 100_000, length, cfg)
    drawn = np.array([(counts <= k).mean() for k in range(1, length + 1)])
    assert np.abs(drawn - empirical).max() < 0.01 and counts.min() >= 1 and counts.max() <= length


def test_rows_masked_in_pieces_are_the_rows_of_the_whole_batch():
    cfg = MaskingConfig(p_uncond=0.3)
    tokens, labels = torch.arange(12 * 8).view(12, 8) % 7, torch.arange(12) % 3
    whole = mask_rows(tokens, labels, 0, (1, 2), cfg, mask_id=99, null_class=5)
    for start, stop in ((0, 5), (5, 6), (6, 12)):
        part = mask_rows(tokens[start:stop], labels[start:stop], start, (1, 2), cfg, 99, 5)
        assert torch.equal(part.mask, whole.mask[start:stop]) and torch.equal(part.labels, whole.labels[start:stop])
    counts = mask_counts((1, 2), 0, 12, 8, cfg)
    assert whole.mask.sum(1).tolist() == counts.tolist()
    assert torch.equal(whole.inputs, torch.where(whole.mask, 99, tokens))
    assert set(whole.labels.tolist()) <= {0, 1, 2, 5}


def _one_step_weights(config, accum: int, first: int | None, rows: slice, steps: int = 2):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    from autonat.generator.uvit import UViT

    model = UViT(config)
    ema = copy.deepcopy(model).requires_grad_(False)
    recipe = Recipe(cache="unused", model=config, optim=OptimConfig(warmup_steps=0, grad_clip=None),
                    train=TrainConfig(seed=3, batch_size=12, grad_accum_steps=accum))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, opt = accelerator.prepare(model, opt)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.codebook_size, (12, config.seq_len), generator=g)
    labels = torch.randint(0, config.num_classes, (12,), generator=g)
    for step in range(steps):
        result = train_step(accelerator, model, opt, ema, tokens[rows], labels[rows], step, recipe, first=first,
                            with_stats=True)
    return result, [p.detach().clone() for p in model.parameters()]


def test_gradient_accumulation_gives_the_update_of_the_large_batch(tiny_config):
    big, weights = _one_step_weights(tiny_config, 1, None, slice(None))
    for accum in (2, 3, 5):  # 5 does not divide 12: micro-batches of 3 and 2 rows
        acc, accumulated = _one_step_weights(tiny_config, accum, 0, slice(None))
        assert max((a - b).abs().max().item() for a, b in zip(weights, accumulated)) < 1e-6
        assert torch.allclose(acc.stats, big.stats, atol=1e-6)


def test_the_step_loss_is_the_mean_over_the_global_batch_masked_positions(tiny_config):
    """Independently: mask the whole batch, take the mean masked cross-entropy of the untrained model."""
    from autonat.generator.uvit import UViT
    from autonat.training.masking import masked_cross_entropy

    result, _ = _one_step_weights(tiny_config, 3, 0, slice(None), steps=1)
    torch.manual_seed(0)
    model = UViT(tiny_config).train()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, tiny_config.codebook_size, (12, tiny_config.seq_len), generator=g)
    labels = torch.randint(0, tiny_config.num_classes, (12,), generator=g)
    batch = mask_rows(tokens, labels, 0, step_key(3, 0), MaskingConfig(), tiny_config.mask_id, tiny_config.null_class)
    with torch.no_grad():
        expected = masked_cross_entropy(model(batch.inputs, batch.labels), tokens, batch.mask, 0.1)
    assert result.stats[0].item() == pytest.approx(expected.item(), abs=1e-5)
    assert result.stats[3].item() == pytest.approx(batch.mask.float().mean().item())


def test_a_batch_that_does_not_split_is_refused(tmp_path):
    from helpers import tiny_recipe, write_tiny_cache

    from autonat.errors import AutonatError
    from autonat.training.loop import train
    from autonat.training.recipe import recipe_from_dict

    d = tiny_recipe(write_tiny_cache(tmp_path / "cache"), tmp_path / "run", steps=1)
    d["train"] = {**d["train"], "batch_size": 10, "grad_accum_steps": 4}
    with pytest.raises(AutonatError, match="batch_size 10 must divide evenly over 1 process.*grad_accum_steps 4"):
        train(recipe_from_dict(d))


def test_rows_are_gathered_from_the_memory_map_and_range_checked(tmp_path, tiny_config):
    from helpers import write_tiny_cache

    from autonat.data.token_cache import read_token_cache
    from autonat.errors import AutonatError
    from autonat.training.loop import read_rows

    cache = read_token_cache(write_tiny_cache(tmp_path / "cache"))
    assert isinstance(cache.tokens, np.memmap) and isinstance(cache.labels, np.memmap)
    idx = np.array([5, 0, 77])
    tokens, labels = read_rows(cache, tiny_config, idx)
    assert tokens.dtype == torch.int64 and torch.equal(tokens, torch.from_numpy(cache.tokens[idx].astype(np.int64)))
    assert cache.value_ranges() == cache.meta["value_ranges"]
    with pytest.raises(AutonatError, match="out of range in its rows"):
        read_rows(cache, replace(tiny_config, num_classes=1), np.arange(96))


@pytest.mark.slow
def test_two_processes_with_accumulation_train_as_one_process(tmp_path):
    """Same data, masks and loss on 1 process x 1 micro-batch and 2 processes x 2 micro-batches (no dropout)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml
    from helpers import tiny_recipe, write_tiny_cache
    from safetensors.torch import load_file
    from test_training import _free_port

    from autonat.training.loop import train
    from autonat.training.recipe import recipe_from_dict

    cache = write_tiny_cache(tmp_path / "cache")
    one = tiny_recipe(cache, tmp_path / "one", steps=4)
    one["model"]["dropout"] = 0.0
    train(recipe_from_dict(one))
    two = {**one, "train": {**one["train"], "out_dir": str(tmp_path / "two"), "grad_accum_steps": 2}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(two))
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(root / "tools" / "train.py"), "--config",
           str(tmp_path / "r.yaml")]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    a = load_file(tmp_path / "one" / "checkpoints" / "step_4" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoints" / "step_4" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
