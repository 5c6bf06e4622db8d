"""The one training step the loop and the training benchmark both run."""
import copy
from dataclasses import replace
from pathlib import Path

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


def test_official_warmup_is_the_official_lambdalr_stepped_after_each_update():
    """train.py: LambdaLR(min(s / W, 1)), ``lr_scheduler.step(step)`` after the update of step ``step``."""
    import warnings

    warmup = 4
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / warmup, 1))
    official = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step(epoch) is deprecated, and what train.py calls
        for step in range(8):
            official.append(opt.param_groups[0]["lr"])
            opt.step()
            scheduler.step(step)
    optim = OptimConfig(lr=1.0, warmup_steps=warmup, warmup="official")
    assert [learning_rate(s, optim) for s in range(8)] == official == [0, 0, 0.25, 0.5, 0.75, 1, 1, 1]
    ours = OptimConfig(lr=1.0, warmup_steps=warmup)
    assert [learning_rate(s, ours) for s in range(5)] == [0.25, 0.5, 0.75, 1, 1]
    assert learning_rate(0, OptimConfig(lr=1.0, warmup_steps=0, warmup="official")) == 1.0


def test_constant_ema_decay_when_its_warmup_is_off():
    from autonat.training.loop import ema_decay_at

    assert [ema_decay_at(s, 0.9999, warmup=False) for s in (0, 1, 10**6)] == [0.9999] * 3
    assert ema_decay_at(0, 0.9999) == 0.1 and ema_decay_at(10**6, 0.9999) == 0.9999


def _step_weights(config, **optim):
    accelerator, model, opt, ema, recipe, tokens, labels = _setup(config, **optim)
    result = train_step(accelerator, model, opt, ema, tokens, labels, 1, recipe)
    return result, [p.detach().clone() for p in model.parameters()]


def test_grad_clip_null_clips_nothing(tiny_config):
    """``optim.grad_clip: null`` is the step of a clip no gradient reaches, and unlike a clip that bites."""
    none, free = _step_weights(tiny_config, grad_clip=None)
    _, huge = _step_weights(tiny_config, grad_clip=1e9)
    _, tight = _step_weights(tiny_config, grad_clip=1e-3)
    assert torch.isfinite(none.grad_norm) and none.grad_norm > 1e-3  # the norm is still measured
    assert all(torch.equal(a, b) for a, b in zip(free, huge))
    assert any(not torch.equal(a, b) for a, b in zip(free, tight))


def test_official_training_options_in_recipes():
    from autonat.io.config import build
    from autonat.training.recipe import load_recipe

    configs = Path(__file__).resolve().parents[1] / "configs"
    recipe = load_recipe(configs / "imagenet256_autonat_l.yaml")
    assert (recipe.optim.grad_clip, recipe.optim.warmup, recipe.train.ema_warmup) == (None, "official", False)
    assert (recipe.optim.lr, recipe.optim.warmup_steps, recipe.train.ema_decay) == (4e-4, 5000, 0.9999)
    assert (recipe.train.batch_size, recipe.train.steps, recipe.model.size) == (2048, 500000, "autonat-l")
    demo = load_recipe(configs / "demo_mnist.yaml")
    assert (demo.optim.grad_clip, demo.optim.warmup, demo.train.ema_warmup) == (1.0, "ours", True)
    with pytest.raises(AutonatError, match="optim.warmup: unknown formula 'paper'; choose one of ours, official"):
        build(OptimConfig, {"warmup": "paper"}, "optim")
    with pytest.raises(AutonatError, match="optim.grad_clip: must be positive"):
        build(OptimConfig, {"grad_clip": 0}, "optim")
