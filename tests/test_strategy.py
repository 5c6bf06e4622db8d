import math

import pytest
import yaml
from helpers import OFFICIAL_T8

from autonat.errors import AutonatError
from autonat.strategy.core import Strategy, autonat_init, maskgit_cosine
from autonat.strategy.files import load_strategy, save_strategy


def test_reads_official_autonat_file():
    s = load_strategy(OFFICIAL_T8)
    assert s.steps == 8
    assert s.mask_ratio[0] == pytest.approx(0.9531645174140464)
    assert s.remask_temp[-1] == pytest.approx(0.7843839537838292)
    assert s.sample_temp[0] == pytest.approx(2.8999037830310685)
    assert s.cfg_scale[3] == pytest.approx(0.9151274967591447)


@pytest.mark.parametrize("official", [False, True])
def test_yaml_round_trip(tmp_path, official):
    s = autonat_init(6)
    save_strategy(s, tmp_path / "s.yaml", official=official)
    keys = set(yaml.safe_load((tmp_path / "s.yaml").read_text()))
    assert ("manual_ratios" in keys) == official
    assert load_strategy(tmp_path / "s.yaml") == s


def test_maskgit_cosine_values():
    s = maskgit_cosine(4)
    assert s.mask_ratio == pytest.approx([math.cos(math.pi / 8), math.cos(math.pi / 4), math.cos(3 * math.pi / 8)])
    assert s.remask_temp == pytest.approx([4.5 * 0.75, 4.5 * 0.5, 4.5 * 0.25])
    assert s.masked_counts(256) == [236, 181, 97, 0]


def test_masked_counts_respect_bounds():
    s = Strategy.create([0.99, 0.99, 0.0], [1, 1, 1], [1] * 4, [0] * 4)
    # never more than #masked - 1, never fewer than 1 before the last step
    assert s.masked_counts(10) == [9, 8, 1, 0]


@pytest.mark.parametrize("bad, message", [
    (dict(mask_ratio=[0.5], remask_temp=[1], sample_temp=[1, 1, 1], cfg_scale=[0, 0, 0]), "mask_ratio has 1"),
    (dict(mask_ratio=[0.5, 0.6], remask_temp=[1, 1], sample_temp=[1, 1, 1], cfg_scale=[0, 0, 0]), "non-increasing"),
    (dict(mask_ratio=[1.0, 0.5], remask_temp=[1, 1], sample_temp=[1, 1, 1], cfg_scale=[0, 0, 0]), r"\[0, 1\)"),
    (dict(mask_ratio=[0.5, 0.2], remask_temp=[1, -1], sample_temp=[1, 1, 1], cfg_scale=[0, 0, 0]), ">= 0"),
    (dict(mask_ratio=[0.5, 0.2], remask_temp=[1, 1], sample_temp=[1, float("nan"), 1], cfg_scale=[0, 0, 0]), "NaN"),
    (dict(mask_ratio=[0.5, 0.2], remask_temp=[1, 1], sample_temp=[1, 1, 1]), "lacks cfg_scale"),
    (dict(mask_ratio=[0.5, 0.2], remask_temp=[1, 1], sample_temp=[1, 1, 1], cfg_scale=[0, 0, 0], steps=4), "steps: 4"),
])
def test_bad_strategies_rejected(tmp_path, bad, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(AutonatError, match=message):
        load_strategy(path)


def test_bad_yaml_and_missing_file(tmp_path):
    (tmp_path / "x.yaml").write_text("mask_ratio: [0.5,\n")
    with pytest.raises(AutonatError, match="not valid YAML"):
        load_strategy(tmp_path / "x.yaml")
    with pytest.raises(AutonatError, match="not found"):
        load_strategy(tmp_path / "missing.yaml")


def test_save_does_not_replace_good_file_with_bad(tmp_path):
    path = tmp_path / "s.yaml"
    save_strategy(maskgit_cosine(4), path)
    bad = Strategy((0.5,), (1.0,), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))  # wrong lengths, unvalidated
    with pytest.raises(AutonatError):
        save_strategy(bad, path)
    assert load_strategy(path) == maskgit_cosine(4)


def test_strategy_by_name_builds_a_zoo_schedule_or_reads_a_file_of_the_given_steps(tmp_path):
    from autonat.strategy.choice import strategy_by_name
    from autonat.strategy.files import save_strategy
    from autonat.strategy.zoo import build_strategy

    assert strategy_by_name("guided-ramps", 6, "--also-start") == build_strategy("guided-ramps", 6)
    path = tmp_path / "s.yaml"
    save_strategy(build_strategy("cosine", 4), path)
    assert strategy_by_name(str(path), 4, "--also-start") == build_strategy("cosine", 4)
    with pytest.raises(AutonatError, match=r"--also-start .*s\.yaml has 4 steps, not 8; give a strategy of 8 steps"):
        strategy_by_name(str(path), 8, "--also-start")
    with pytest.raises(AutonatError, match=r"--also-start 'guided-ramp' is neither a strategy file nor a named "
                                           r"schedule \(did you mean 'guided-ramps'\?\); choose one of amused, "):
        strategy_by_name("guided-ramp", 4, "--also-start")


def test_identity_tells_strategies_apart_and_survives_a_file_round_trip(tmp_path):
    a, b = autonat_init(4), autonat_init(4, remask_temp=(3.0, 0.5))
    save_strategy(a, tmp_path / "a.yaml")
    assert load_strategy(tmp_path / "a.yaml").identity() == a.identity()
    assert a.identity() != b.identity()
    assert a.identity() != a.with_reuse(cfg_reuse=[0, 1, 0, 0]).identity()


def test_every_shipped_strategy_file_loads_with_the_steps_its_name_gives():
    """configs/strategies/*.yaml and the demo's strategy_T<k>.yaml: valid strategy files of the steps the last T<k>
    of their name gives."""
    import re
    from pathlib import Path

    from autonat.strategy.files import load_strategy

    root = Path(__file__).resolve().parents[1]
    files = sorted((root / "configs" / "strategies").glob("*.yaml")) + sorted(
        (root / "autonat" / "assets" / "demo").glob("strategy_T*.yaml"))
    assert len(files) >= 7
    for path in files:
        steps = int(re.findall(r"T(\d+)", path.name)[-1])  # paper_T8_as_T4: the last T names the file's
        assert load_strategy(path).steps == steps, path
