"""The strategy zoo: valid strategies under every name, the published defaults, CFG conversions."""
import math

import pytest
import torch

from autonat.strategy.zoo import (
    BUILDERS,
    amused,
    build_strategy,
    cfg_from_one_plus_w_form,
    cfg_from_uncond_form,
    cfg_power_cosine,
    cfg_to_one_plus_w_form,
    cfg_to_uncond_form,
    mask_ratios,
    maskgit,
)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("steps", [4, 8, 12])
def test_every_zoo_builder_gives_a_valid_strategy(name, steps):
    s = build_strategy(name, steps)
    s.validate()
    assert s.steps == steps and len(s.mask_ratio) == steps - 1
    counts = s.masked_counts(256)
    assert counts[-1] == 0 and all(a > b for a, b in zip([256] + counts, counts))


def test_zoo_names_are_registered_beside_the_heuristics():
    assert {"maskgit", "arccos", "linear", "sqrt", "square", "cfg-linear", "cfg-pow-cosine", "amused",
            "cosine", "autonat-init"} <= set(BUILDERS)


def test_maskgit_defaults():
    s = maskgit(8)
    assert s.mask_ratio == pytest.approx([math.cos(math.pi / 2 * (t + 1) / 8) for t in range(7)])
    assert s.remask_temp == pytest.approx([4.5 * (1 - (t + 1) / 8) for t in range(7)])
    assert set(s.sample_temp) == {1.0} and set(s.cfg_scale) == {0.0}
    assert s == build_strategy("cosine", 8)  # the strategy module's heuristic is the same thing


@pytest.mark.parametrize("steps", range(2, 65))
def test_cosine_and_maskgit_give_bit_identical_ratios_and_counts(steps):
    """One cosine definition: the heuristic and the zoo name agree to the last bit, so floor(L * ratio) agrees too."""
    cosine, zoo = build_strategy("cosine", steps), build_strategy("maskgit", steps)
    assert cosine.mask_ratio == zoo.mask_ratio == tuple(mask_ratios("cosine", steps))
    for length in (64, 256, 1024):
        assert cosine.masked_counts(length) == zoo.masked_counts(length)


@pytest.mark.parametrize("schedule, r, expected", [
    ("arccos", 0.5, 2 / 3), ("linear", 0.25, 0.75), ("sqrt", 0.25, 0.5), ("square", 0.5, 0.75),
    ("cosine", 0.5, math.sqrt(0.5)),
])
def test_mask_schedules(schedule, r, expected):
    assert mask_ratios(schedule, 4)[int(r * 4) - 1] == pytest.approx(expected)


def test_cfg_ramps_start_at_zero_and_rise():
    for name in ("cfg-linear", "cfg-pow-cosine"):
        cfg = build_strategy(name, 8).cfg_scale
        assert cfg[0] == 0.0 and all(b >= a for a, b in zip(cfg, cfg[1:])) and cfg[-1] > 1.0
    assert build_strategy("cfg-linear", 4).cfg_scale == pytest.approx([0, 0.75, 1.5, 2.25])
    ramp = cfg_power_cosine(4, cfg_max=2.0, power=1.0).cfg_scale  # power 1: a half cosine
    assert ramp == pytest.approx([0.0, 1 - math.cos(math.pi / 4), 1.0, 1 + math.cos(math.pi / 4)])


def test_amused_defaults():
    s = amused(12)
    assert s.mask_ratio == pytest.approx(mask_ratios("cosine", 12))
    assert s.remask_temp == pytest.approx([2 * (1 - t / 11) for t in range(11)])  # linspace(2, 0, 12)[:-1]
    assert set(s.sample_temp) == {1.0} and set(s.cfg_scale) == {9.0}  # guidance_scale 10 = ours 9
    assert set(amused(12, guidance_scale=1.0).cfg_scale) == {0.0}  # aMUSEd skips CFG for g <= 1


def test_cfg_conversions_give_equal_logits():
    gen = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 5, 7, generator=gen)

    def ours(s):
        return cond + s * (cond - uncond)

    for g in (0.5, 1.0, 3.0, 10.0):
        assert torch.allclose(uncond + g * (cond - uncond), ours(cfg_from_uncond_form(g)), atol=1e-5)
        assert cfg_to_uncond_form(cfg_from_uncond_form(g)) == pytest.approx(g)
    for w in (0.0, 1.5, 4.0):
        assert torch.allclose((1 + w) * cond - w * uncond, ours(cfg_from_one_plus_w_form(w)), atol=1e-5)
        assert cfg_to_one_plus_w_form(cfg_from_one_plus_w_form(w)) == pytest.approx(w)


def test_unknown_schedule_is_a_clear_error():
    from autonat.errors import AutonatError

    with pytest.raises(AutonatError, match="unknown mask schedule"):
        mask_ratios("zigzag", 4)
    with pytest.raises(AutonatError, match="amused"):
        build_strategy("nope", 4)
