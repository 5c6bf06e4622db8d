"""The one training step the loop and the training benchmark both run."""
import copy
from dataclasses import replace

import pytest
import torch

from autonat.errors import AutonatError
from autonat.generator.uvit import UViT
from autonat.training.loop import learning_rate, train_step
from autonat.training.recipe import OptimConfig, Recipe, TrainConfig


def _setup(config, **optim):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = UViT(config)
    ema = copy.deepcopy(model).requires_grad_(False)
    recipe = Recipe(cache="unused", model=config, optim=OptimConfig(warmup_steps=2, **optim), train=TrainConfig(seed=3))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr)
    model, opt = accelerator.prepare(model, opt)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.codebook_size, (6, config.seq_len), generator=g)
    labels = torch.randint(0, config.num_classes, (6,), generator=g)
    return accelerator, model, opt, ema, recipe, tokens, labels


def test_a_step_updates_the_weights_frees_the_gradients_and_moves_the_ema(tiny_config):
    accelerator, model, opt, ema, recipe, tokens, labels = _setup(tiny_config)
    before = [p.detach().clone() for p in model.parameters()]
    ema_before = [p.clone() for p in ema.parameters()]
    quiet = train_step(accelerator, model, opt, ema, tokens, labels, 0, recipe)
    result = train_step(accelerator, model, opt, ema, tokens, labels, 1, recipe, with_stats=True)
    assert quiet.stats is None and result.stats.shape == (4,) and torch.isfinite(result.stats).all()
    assert result.lr == learning_rate(1, recipe.optim) and result.tokens == tokens.numel()
    assert all(p.grad is None for p in model.parameters()), "gradients are freed right after the update"
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(ema_before, ema.parameters()))


def test_the_same_step_twice_gives_the_same_weights(tiny_config):
    """Masks, dropped labels and dropout come from (seed, step): nothing depends on global randomness."""
    runs = []
    for noise in (1, 2):
        accelerator, model, opt, ema, recipe, tokens, labels = _setup(replace(tiny_config, dropout=0.1))
        torch.manual_seed(noise)
        train_step(accelerator, model, opt, ema, tokens, labels, 0, recipe)
        runs.append([p.detach().clone() for p in ema.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_a_non_finite_loss_stops_with_the_explanation(tiny_config):
    accelerator, model, opt, ema, recipe, tokens, labels = _setup(tiny_config)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(AutonatError, match=r"loss became nan at step 4; stopped\. kept: here; lower optim\.lr"):
        train_step(accelerator, model, opt, ema, tokens, labels, 4, recipe, explain=lambda: "kept: here")


def test_the_training_benchmark_times_this_step(tiny_config, monkeypatch):
    import benchmarks.bench_training as bench

    real, steps = bench.train_step, []
    monkeypatch.setattr(bench, "train_step", lambda *args, **kw: steps.append(args[6]) or real(*args, **kw))
    torch.manual_seed(0)
    step = bench.make_step("ours", UViT(tiny_config).train(), torch.device("cpu"))
    tokens = torch.randint(0, tiny_config.codebook_size, (2, tiny_config.seq_len))
    step(tokens, torch.tensor([0, 1]), 0)
    step(tokens, torch.tensor([0, 1]), 1)
    assert steps == [0, 1]
