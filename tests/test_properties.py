"""Property-based tests (hypothesis) of strategy validation and the sampler's invariants.

For any valid strategy the sampler returns only codebook ids, never changes
a token once it is decoded, and leaves exactly ``strategy.masked_counts(L)``
tokens masked after each step; any malformed strategy is refused with an
:class:`AutonatError`. Examples are few (``max_examples=25``) and the model
tiny, so the file runs in seconds.
"""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autonat.errors import AutonatError
from autonat.sampling.sampler import SamplerOptions, TokenSpace, decode, make_generators
from autonat.strategy.core import Strategy

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
finite = st.floats(allow_nan=False, allow_infinity=False)
ratio = st.floats(0.0, 0.999)
temperature = st.floats(0.0, 10.0)
cfg = st.floats(-1.0, 10.0)


@st.composite
def valid_strategies(draw, max_steps: int = 6) -> Strategy:
    """Any strategy validation should accept: non-increasing ratios in [0, 1), temperatures >= 0."""
    t = draw(st.integers(1, max_steps))
    ratios = sorted(draw(st.lists(ratio, min_size=t - 1, max_size=t - 1)), reverse=True)
    return Strategy.create(ratios, draw(st.lists(temperature, min_size=t - 1, max_size=t - 1)),
                           draw(st.lists(temperature, min_size=t, max_size=t)),
                           draw(st.lists(cfg, min_size=t, max_size=t)))


def _vectors(s: Strategy) -> list[list[float]]:
    return [list(s.mask_ratio), list(s.remask_temp), list(s.sample_temp), list(s.cfg_scale)]


@st.composite
def invalid_strategies(draw) -> list[list[float]]:
    """A valid strategy broken in one way: a wrong length, a value out of range, NaN/inf, or rising ratios."""
    vectors = _vectors(draw(valid_strategies()))
    fault = draw(st.sampled_from(["length", "ratio_range", "negative_temp", "nonfinite", "increasing"]))
    which = draw(st.integers(0, 3))
    if fault == "length":
        if vectors[which] and draw(st.booleans()):
            vectors[which].pop()
        else:
            vectors[which].append(draw(st.floats(0.0, 0.5)))
    elif fault == "ratio_range" or (fault == "increasing" and len(vectors[0]) < 2):
        if not vectors[0]:
            vectors = [[0.5], [1.0], [1.0, 1.0], [1.0, 1.0]]
        vectors[0][draw(st.integers(0, len(vectors[0]) - 1))] = draw(
            st.one_of(st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=False), st.floats(1.0, 1e6)))
    elif fault == "negative_temp":
        target = draw(st.sampled_from([i for i in (1, 2) if vectors[i]]))
        vectors[target][draw(st.integers(0, len(vectors[target]) - 1))] = draw(st.floats(-1e6, -1e-6))
    elif fault == "nonfinite":
        target = draw(st.sampled_from([i for i in range(4) if vectors[i]]))
        vectors[target][draw(st.integers(0, len(vectors[target]) - 1))] = draw(
            st.sampled_from([math.nan, math.inf, -math.inf]))
    else:  # a later ratio above an earlier one
        i = draw(st.integers(0, len(vectors[0]) - 2))
        vectors[0][i + 1] = min(0.999, vectors[0][i] + draw(st.floats(1e-3, 0.5)))
        if vectors[0][i + 1] <= vectors[0][i]:
            vectors[0][i] = vectors[0][i + 1] - 1e-3
    return vectors


@SETTINGS
@given(valid_strategies())
def test_valid_strategies_pass_validation_and_survive_a_round_trip(strategy):
    strategy.validate()
    assert Strategy.from_dict(strategy.to_dict()) == strategy
    assert Strategy.from_dict(strategy.to_dict(official=True)) == strategy
    counts = strategy.masked_counts(16)
    assert len(counts) == strategy.steps and counts[-1] == 0
    # MaskGIT's clamp: at least one token stays masked before the last step, never more than before
    assert all(1 <= c < 16 for c in counts[:-1]) and all(a >= b for a, b in zip(counts, counts[1:]))


@SETTINGS
@given(invalid_strategies())
def test_invalid_strategies_are_refused(vectors):
    with pytest.raises(AutonatError):
        Strategy.create(*vectors)
    with pytest.raises(AutonatError):
        Strategy.from_dict(dict(zip(("mask_ratio", "remask_temp", "sample_temp", "cfg_scale"), vectors)))


@SETTINGS
@given(strategy=valid_strategies(), seed=st.integers(0, 2**31),
       order=st.sampled_from(["confidence", "random", "halton"]),
       labels=st.lists(st.integers(0, 3), min_size=1, max_size=3))
def test_sampler_invariants_hold_for_any_valid_strategy(tiny_model, strategy, seed, order, labels):
    _check_invariants(tiny_model, strategy, seed, order, labels)


@pytest.mark.parametrize("strategy", [
    Strategy.create([0.0, 0.0], [0.0, 0.0], [0.0] * 3, [0.0, 3.4028235677973366e+38, 0.0]),  # found by hypothesis
    Strategy.create([0.5, 0.2], [1e38, 1e38], [1e-300] * 3, [-1e30, 1e30, 1e300]),
])
def test_sampler_invariants_survive_float32_overflow(tiny_model, strategy):
    """A valid but extreme CFG scale or temperature overflows float32; decoded tokens must still never change."""
    _check_invariants(tiny_model, strategy, seed=0, order="confidence", labels=[0, 1, 3])


def _check_invariants(model, strategy: Strategy, seed: int, order: str, labels: list[int]) -> None:
    """Only codebook ids come out, a decoded token never changes, and the masked counts are as scheduled."""
    cfg = model.config
    length = cfg.seq_len
    y = torch.tensor(labels)
    gens = make_generators([seed + i for i in range(len(labels))])
    options = SamplerOptions(order=order)
    expected = strategy.masked_counts(length)
    previous = torch.full((len(labels), length), cfg.mask_id)
    with torch.inference_mode():
        states = list(decode(model, strategy, y, gens, TokenSpace.of(cfg), options))
    assert len(states) == strategy.steps
    for t, state in enumerate(states):
        assert state.masked.sum(-1).tolist() == [expected[t]] * len(labels)
        fixed = previous != cfg.mask_id
        assert torch.equal(state.tokens[fixed], previous[fixed]), f"a decoded token changed at step {t}"
        decoded = state.tokens[~state.masked]
        assert ((decoded >= 0) & (decoded < cfg.codebook_size)).all()
        previous = state.tokens
    assert not states[-1].masked.any()
