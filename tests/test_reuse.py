"""Reuse across decoding steps: off by default and then the plain sampler; on, the maths and invariants hold.

The deep-feature pass is checked against the U-ViT split by hand (shallow
blocks on the new tokens, deep features from the stored pass), guidance
reuse against ``cond_t + s * (cond_t' - uncond_t')`` computed directly, and
the decoding loop's invariants (masked counts, fixed tokens, per-sample
seeding) under random reuse schedules, in both CFG batching modes.
"""
from __future__ import annotations

import argparse

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from autonat.errors import AutonatError
from autonat.generator.uvit import DeepReuse, UViT, UViTConfig
from autonat.sampling.sampler import (
    SamplerOptions,
    StepMemory,
    TokenSpace,
    decode,
    guided_logits,
    make_generators,
    sample_seeds,
)
from autonat.strategy.choice import with_constant_cfg, with_reuse_steps
from autonat.strategy.core import Strategy, maskgit_cosine
from autonat.strategy.files import load_strategy, save_strategy

CONFIG = UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=4, num_heads=2, dropout=0.0)


@pytest.fixture(scope="module")
def model() -> UViT:
    torch.manual_seed(0)
    return UViT(CONFIG).eval()


class Calls(nn.Module):
    """Records each call's rows, whether it was given a DeepReuse and whether that reused stored features."""

    def __init__(self, inner: UViT) -> None:
        super().__init__()
        self.inner, self.config, self.calls = inner, inner.config, []

    def forward(self, tokens, labels, **kwargs):
        deep = kwargs.get("deep")
        self.calls.append((tokens.shape[0], "deep" in kwargs, deep is not None and deep.features is not None))
        return self.inner(tokens, labels, **kwargs)


def _states(model, strategy, labels, seed=0, options=None, indices=None):
    """The decode's states; sample ``k`` is seeded from ``(seed, indices[k])`` (default ``k``)."""
    gens = make_generators(sample_seeds(seed, range(len(labels)) if indices is None else indices))
    with torch.inference_mode():
        return list(decode(model, strategy, torch.tensor(labels), gens, TokenSpace.of(model.config), options))


def _plain_forward(m: UViT, tokens, labels):
    """The U-ViT forward pass written out: every in block, the middle, every out block with its long skip."""
    x = torch.cat([m.class_embed(labels[:, None]), m.token_embed(tokens)], dim=1)
    skips = []
    for block in m.in_blocks:
        x = block(x)
        skips.append(x)
    x = m.mid_block(x)
    for block in m.out_blocks:
        x = block(x, skips.pop())
    return m.head(m.final_norm(x), m.token_embed.tokens.weight)[:, 1:, : m.config.codebook_size]


def test_reuse_off_is_the_plain_sampler(model):
    """No reuse schedule, or one of zeros: the model is called exactly as before and the states are identical."""
    strategy = maskgit_cosine(5, cfg_scale=2.0)
    zeros = strategy.with_reuse([0] * 5, [0] * 5)
    assert not zeros.reuses and StepMemory.of(zeros, SamplerOptions(), model) is None
    for mode in ("split", "batched"):
        spy = Calls(model)
        plain = _states(model, strategy, [0, 1, 3], options=SamplerOptions(cfg_batching=mode))
        off = _states(spy, zeros, [0, 1, 3], options=SamplerOptions(cfg_batching=mode))
        assert all(torch.equal(a.tokens, b.tokens) for a, b in zip(plain, off))
        assert not any(given_deep for _, given_deep, _ in spy.calls)
    tokens = torch.randint(0, CONFIG.mask_id + 1, (2, CONFIG.seq_len))
    labels = torch.tensor([0, 3])
    with torch.inference_mode():
        assert torch.equal(model(tokens, labels), _plain_forward(model, tokens, labels))


@pytest.mark.parametrize("keep", [1, 2])
def test_deep_reuse_pass_is_the_split_network(model, keep):
    m, half = model, CONFIG.depth // 2
    old = torch.randint(0, CONFIG.mask_id + 1, (2, CONFIG.seq_len))
    new = torch.randint(0, CONFIG.mask_id + 1, (2, CONFIG.seq_len))
    labels = torch.tensor([1, 3])
    with torch.inference_mode():
        deep = DeepReuse(keep)
        assert torch.equal(m(old, labels, deep=deep), m(old, labels))  # a storing pass is the full pass
        stored = deep.features
        assert torch.equal(m(old, labels, deep=deep), m(old, labels))  # nothing changed: reuse is exact
        reused = m(new, labels, deep=deep)
        assert deep.features is stored
        # by hand: in blocks 0..k-1 on the new tokens, the last k out blocks on the stored deep features
        x = torch.cat([m.class_embed(labels[:, None]), m.token_embed(new)], dim=1)
        skips = []
        for i in range(keep):
            x = m.in_blocks[i](x)
            skips.append(x)
        x = stored
        for j in range(half - keep, half):
            x = m.out_blocks[j](x, skips[half - 1 - j])
        expected = m.head(m.final_norm(x), m.token_embed.tokens.weight)[:, 1:, : CONFIG.codebook_size]
        assert torch.allclose(reused, expected, atol=1e-6)
        assert not torch.allclose(reused, m(new, labels), atol=1e-3)  # it is an approximation


@pytest.mark.parametrize("mode", ["split", "batched"])
def test_guidance_reuse_takes_the_stored_residual(model, mode):
    options = SamplerOptions(cfg_batching=mode)
    strategy = maskgit_cosine(2, cfg_scale=1.0).with_reuse(cfg_reuse=[0, 1])
    memory = StepMemory.of(strategy, options, model)
    first, second = (torch.randint(0, CONFIG.mask_id + 1, (2, CONFIG.seq_len)) for _ in range(2))
    labels, null = torch.tensor([0, 2]), torch.full((2,), CONFIG.null_class)
    with torch.inference_mode():
        a = guided_logits(model, first, labels, 1.5, CONFIG.null_class, options, memory.at_step(strategy, 0))
        b = guided_logits(model, second, labels, 2.5, CONFIG.null_class, options, memory.at_step(strategy, 1))
        residual = model(first, labels) - model(first, null)
        assert torch.allclose(a, model(first, labels) + 1.5 * residual, atol=1e-5)
        assert torch.allclose(b, model(second, labels) + 2.5 * residual, atol=1e-5)


@pytest.mark.parametrize("mode, expected", [
    # step 0: both passes full; 1: both reuse deep features; 2: the conditional pass only (guidance reused),
    # full; 3: both reuse deep features again
    ("split", [(2, True, False), (2, True, False), (2, True, True), (2, True, True), (2, True, False),
               (2, True, True), (2, True, True)]),
    ("batched", [(4, True, False), (4, True, True), (2, True, False), (4, True, True)]),
])
def test_forward_passes_of_a_reusing_decode(model, mode, expected):
    strategy = maskgit_cosine(4, cfg_scale=2.0).with_reuse(cfg_reuse=[0, 0, 1, 0], deep_reuse=[0, 1, 0, 1])
    spy = Calls(model)
    states = _states(spy, strategy, [0, 2], options=SamplerOptions(cfg_batching=mode))
    assert spy.calls == expected
    assert [int(s.masked.sum(1).unique()) for s in states] == strategy.masked_counts(CONFIG.seq_len)


def test_reuse_at_a_step_with_nothing_stored_computes_in_full(model):
    """Guidance off at first, then on: the first guided step has no residual and no unconditional features."""
    strategy = Strategy.create([0.8, 0.5], [1.0, 1.0], [1.0] * 3, [0.0, 2.0, 2.0], [0, 1, 1], [0, 1, 1])
    spy = Calls(model)
    _states(spy, strategy, [1], options=SamplerOptions(cfg_batching="split"))
    assert spy.calls == [(1, True, False), (1, True, True), (1, True, False), (1, True, True)]


@st.composite
def reuse_strategies(draw) -> Strategy:
    t = draw(st.integers(2, 5))
    ratios = sorted(draw(st.lists(st.floats(0.0, 0.99), min_size=t - 1, max_size=t - 1)), reverse=True)
    flags = [st.lists(st.integers(0, 1), min_size=t - 1, max_size=t - 1) for _ in range(2)]
    return Strategy.create(ratios, draw(st.lists(st.floats(0, 5), min_size=t - 1, max_size=t - 1)),
                           draw(st.lists(st.floats(0, 3), min_size=t, max_size=t)),
                           draw(st.lists(st.floats(-1, 4), min_size=t, max_size=t)),
                           [0, *draw(flags[0])], [0, *draw(flags[1])])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strategy=reuse_strategies(), keep=st.integers(1, 2), mode=st.sampled_from(["split", "batched"]),
       seed=st.integers(0, 2**31))
def test_invariants_and_per_sample_seeding_hold_with_reuse(model, strategy, keep, mode, seed):
    """Masked counts as scheduled, fixed tokens never change, codebook ids only; a sample is the same alone."""
    options = SamplerOptions(cfg_batching=mode, deep_keep=keep)
    labels = [0, 3, 2]
    states = _states(model, strategy, labels, seed, options)
    previous = torch.full((3, CONFIG.seq_len), CONFIG.mask_id)
    for state, count in zip(states, strategy.masked_counts(CONFIG.seq_len)):
        assert state.masked.sum(1).tolist() == [count] * 3
        fixed = previous != CONFIG.mask_id
        assert torch.equal(state.tokens[fixed], previous[fixed])
        assert (state.tokens[~state.masked] < CONFIG.codebook_size).all()
        previous = state.tokens
    alone = _states(model, strategy, labels[1:2], seed, options, indices=[1])
    assert torch.equal(alone[-1].tokens[0], states[-1].tokens[1])


def test_bf16_autocast_with_reuse_keeps_the_invariants(model):
    strategy = maskgit_cosine(4, cfg_scale=2.0).with_reuse([0, 1, 0, 1], [0, 1, 1, 0])
    for mode in ("split", "batched"):
        states = _states(model, strategy, [0, 1], options=SamplerOptions(autocast_dtype=torch.bfloat16,
                                                                        cfg_batching=mode))
        assert [int(s.masked.sum(1).unique()) for s in states] == strategy.masked_counts(CONFIG.seq_len)


def test_trace_with_reuse(model, tmp_path):
    from autonat.sampling.trace import write_trace

    strategy = maskgit_cosine(3, cfg_scale=2.0).with_reuse([0, 1, 1], [0, 0, 1])
    path = write_trace(model, lambda ids: torch.rand(ids.shape[0], 3, 8, 8), strategy, [0, 1], [5, 6],
                       tmp_path / "t.png", TokenSpace.of(CONFIG))
    assert path.exists()


def test_reuse_schedules_in_files_and_their_validation(tmp_path):
    s = maskgit_cosine(4, cfg_scale=2.0).with_reuse([0, 0, 1, 1], [0, 1, 0, 1])
    save_strategy(s, tmp_path / "s.yaml")
    assert load_strategy(tmp_path / "s.yaml") == s
    assert "cfg_reuse" not in maskgit_cosine(4).to_dict()  # absent means off, and is written as absent
    with pytest.raises(AutonatError, match="official strategy format has no reuse"):
        save_strategy(s, tmp_path / "o.yaml", official=True)
    assert not (tmp_path / "o.yaml").exists()
    assert with_constant_cfg(s, 1.0).deep_reuse == s.deep_reuse
    assert s.with_reuse(cfg_reuse=[]).cfg_reuse is None and s.with_reuse(cfg_reuse=[]).deep_reuse == s.deep_reuse
    for bad, message in (([0, 1, 1], "one 0 or 1 per step"), ([0, 2, 0, 0], "one 0 or 1 per step"),
                         ([0, 0.5, 0, 0], "one 0 or 1 per step"), ([1, 0, 0, 0], "step 0")):
        with pytest.raises(AutonatError, match=message):
            maskgit_cosine(4).with_reuse(deep_reuse=bad)
    with pytest.raises(AutonatError, match="deep_reuse"):
        Strategy.from_dict({**maskgit_cosine(4).to_dict(), "deep_reuse": ["yes", 0, 0, 0]})


def test_deep_keep_and_the_model_are_checked(model):
    strategy = maskgit_cosine(3).with_reuse(deep_reuse=[0, 1, 1])
    with pytest.raises(AutonatError, match="deep_keep must lie in 1..2"):
        _states(model, strategy, [0], options=SamplerOptions(deep_keep=3))
    with pytest.raises(AutonatError, match="deep_keep"):
        SamplerOptions(deep_keep=0)

    class NotUViT(nn.Module):
        def forward(self, tokens, labels):
            return torch.zeros(*tokens.shape, CONFIG.codebook_size)

    def run(s):
        with torch.inference_mode():
            return list(decode(NotUViT(), s, torch.tensor([0]), make_generators([0]), TokenSpace.of(CONFIG)))

    with pytest.raises(AutonatError, match="needs a U-ViT"):
        run(strategy)
    assert len(run(maskgit_cosine(3, cfg_scale=2.0).with_reuse(cfg_reuse=[0, 1, 1]))) == 3  # guidance reuse: any


def test_reuse_flags_of_the_command_line():
    from autonat.cli.args import add_generation_arguments, chosen_strategy, sampler_options

    p = argparse.ArgumentParser()
    add_generation_arguments(p)
    args = p.parse_args(["--schedule", "cosine", "--steps", "6", "--cfg-reuse", "2", "4", "--deep-reuse", "5",
                         "--deep-keep", "2"])
    s = chosen_strategy(args)
    assert s.cfg_reuse == (0, 0, 1, 0, 1, 0) and s.deep_reuse == (0, 0, 0, 0, 0, 1)
    assert sampler_options(args).deep_keep == 2
    plain = chosen_strategy(p.parse_args(["--schedule", "cosine"]))
    assert plain.cfg_reuse is None and plain.deep_reuse is None
    with pytest.raises(AutonatError, match="only steps 1..5"):
        with_reuse_steps(maskgit_cosine(6), [0], None)
    with pytest.raises(AutonatError, match="only steps 1..5"):
        with_reuse_steps(maskgit_cosine(6), None, [6])


@pytest.mark.parametrize("mode", ["split", "batched"])
def test_reuse_with_a_text_conditional_model(mode):
    """Captions as the condition: the deep features include the context tokens; a sample is the same alone."""
    from autonat.generator.condition import TextCondition

    torch.manual_seed(1)
    text = UViT(UViTConfig(codebook_size=16, grid=(2, 3), num_classes=0, width=32, depth=4, num_heads=2,
                           dropout=0.0, text_width=6, text_length=5)).eval()
    cond = TextCondition(torch.randn(3, 5, 6), torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]) > 0)
    strategy = maskgit_cosine(4, cfg_scale=2.0).with_reuse([0, 0, 1, 1], [0, 1, 0, 1])
    options = SamplerOptions(cfg_batching=mode)
    space = TokenSpace.of(text.config)
    with torch.inference_mode():
        batch = list(decode(text, strategy, cond, make_generators(sample_seeds(0, range(3))), space, options))
        alone = list(decode(text, strategy, cond[1], make_generators(sample_seeds(0, [1])), space, options))
    assert [int(s.masked.sum(1).unique()) for s in batch] == strategy.masked_counts(space.seq_len)
    assert torch.equal(alone[-1].tokens[0], batch[-1].tokens[1])
