"""AutoNAT's official initialisation, the schedule family, CMA-ES over it (resume by replay), noise and price."""
import json
import math

import numpy as np
import pytest

from autonat.errors import AutonatError
from autonat.search.cma import VALIDATION, CMASearch
from autonat.search.generation import SearchConfig
from autonat.search.measure import PricedObjective, forward_passes, load_or_measure_noise
from autonat.strategy.core import Strategy, autonat_init
from autonat.strategy.family import (
    FREE_SETS,
    FamilyBox,
    ScheduleFamily,
    autonat_init_point,
    fit_family,
    free_parameters,
)
from autonat.strategy.zoo import BUILDERS, build_strategy, guided_ramps


# --------------------------------------------------------------------------- the official initialisation
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 8, 12, 16])
def test_autonat_init_is_the_official_dispatcher_start(steps):
    # ImprovedNAT train.py, DisPatcher.init_values, written out independently
    t = steps
    ratios = [math.cos(math.pi / 2 * k / t) for k in range(1, t)]
    remask = [1 - k / t for k in range(0, t - 1)]
    cfg = [k / t for k in range(1, t + 1)]
    s = autonat_init(steps)
    assert s.mask_ratio == pytest.approx(ratios, abs=1e-15)
    assert s.remask_temp == pytest.approx(remask, abs=1e-15)
    assert s.sample_temp == (1.0,) * t
    assert s.cfg_scale == pytest.approx(cfg, abs=1e-15)


def test_earlier_start_keeps_its_own_name():
    s = build_strategy("guided-ramps", 5)
    assert s.remask_temp == pytest.approx([3.0, 2.0 + 1 / 3, 1.0 + 2 / 3, 1.0])
    assert s.cfg_scale == pytest.approx([0.0, 0.75, 1.5, 2.25, 3.0])
    assert build_strategy("autonat-init", 5) == autonat_init(5) != s


# --------------------------------------------------------------------------- the family
@pytest.mark.parametrize("steps", [2, 4, 8, 16])
def test_autonat_init_is_a_family_point_exactly(steps):
    assert autonat_init_point(steps).strategy(steps) == autonat_init(steps)
    assert fit_family(autonat_init(steps)).strategy(steps) == autonat_init(steps)


def _max_gap(a: Strategy, b: Strategy) -> dict:
    return {k: float(np.max(np.abs(np.subtract(getattr(a, k), getattr(b, k))), initial=0.0))
            for k in ("mask_ratio", "remask_temp", "sample_temp", "cfg_scale")}


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("steps", [4, 8, 16])
def test_every_zoo_schedule_is_reachable_or_close(name, steps):
    s = build_strategy(name, steps)
    gap = _max_gap(fit_family(s).strategy(steps), s)
    # temperatures exact up to float32 rounding (the amused schedule is computed in the scheduler's float32)
    assert gap["mask_ratio"] < 0.01 and gap["remask_temp"] < 1e-6 and gap["sample_temp"] < 1e-6
    assert gap["cfg_scale"] <= 0.05 * max(1.0, max(s.cfg_scale))  # the power-cosine ramp is the one not exact


def test_unit_cube_round_trip_and_every_point_is_valid():
    p = ScheduleFamily(mask_a=2.0, mask_b=0.5, remask_start=4.0, remask_end=0.5, sample_start=1.2,
                       sample_end=0.8, cfg_start=0.0, cfg_end=2.0, cfg_power=4.0)
    assert np.allclose(FamilyBox.from_unit(FamilyBox.to_unit(p)).values(), p.values(), rtol=1e-12, atol=1e-12)
    rng = np.random.default_rng(0)
    for z in rng.random((50, 9)):
        FamilyBox.from_unit(z).strategy(6).validate()
    with pytest.raises(AutonatError, match="mask_a"):
        ScheduleFamily(mask_a=0.0)


def test_negative_cfg_start_turns_guidance_off_at_the_first_steps():
    from autonat.search.measure import forward_passes

    p = ScheduleFamily(cfg_start=-1.0, cfg_end=1.0)  # linear: -1, -1/3, 1/3, 1 at T = 4
    assert p.strategy(4).cfg_scale == pytest.approx((0.0, 0.0, 1 / 3, 1.0))
    assert forward_passes(p.strategy(4)) == 6 < forward_passes(autonat_init_point(4).strategy(4)) == 8
    assert FamilyBox.to_unit(p)[FamilyBox.names.index("cfg_start")] > 0  # inside the box, not on its edge


# --------------------------------------------------------------------------- CMA-ES
TARGET = ScheduleFamily(mask_a=1.5, mask_b=0.8, remask_start=3.0, remask_end=0.5, cfg_start=0.0, cfg_end=2.0)


def _objective(calls=None, fail_at=None):
    target = FamilyBox.to_unit(TARGET)

    def objective(strategy, seed):
        if calls is not None:
            calls.append(seed)
            if fail_at is not None and len(calls) == fail_at:
                raise KeyboardInterrupt  # the process dies mid-generation
        z = FamilyBox.to_unit(fit_family(strategy))
        return float(np.sum((z - target) ** 2) + np.random.default_rng(seed).normal(0, 0.002))

    return objective


def _search(out, objective, generations=4, **kw):
    cfg = SearchConfig(steps=generations, method="cma", seed=5, population=4, sigma=1.0, **kw)
    return CMASearch(objective, autonat_init(4), cfg, out, n_eval=10)


def test_cma_improves_and_keeps_the_best_by_validation(tmp_path):
    objective = _objective()
    search = _search(tmp_path, objective, generations=12)
    state = search.run(progress=False)
    assert state.step == 12 and state.evaluations == 1 + 12 * 5 and state.images == 10 * state.evaluations
    records = search.records()
    valid = [r for r in records if r["index"] == VALIDATION]
    assert len({r["seed"] for r in valid}) == 1  # one validation seed set ...
    assert not {r["seed"] for r in valid} & {r["seed"] for r in records if r["index"] != VALIDATION}  # ... apart
    assert len({r["seed"] for r in records if r["generation"] == 3 and r["index"] != VALIDATION}) == 1  # CRN
    best = min(valid, key=lambda r: r["value"])
    assert search.final_strategy() == search.strategy_of(best["z"])
    assert objective(search.final_strategy(), 0) < 0.5 * objective(autonat_init(4), 0)
    history = search.history()
    assert [h["step"] for h in history] == list(range(13)) and history[-1]["images"] == state.images


@pytest.mark.parametrize("named", ["coarse", "no-cfg", "temperatures"])
def test_cma_moves_only_the_free_parameters(tmp_path, named):
    search = _search(tmp_path, _objective(), generations=6, free=free_parameters(named))
    search.run(progress=False)
    start = FamilyBox.to_unit(fit_family(autonat_init(4)))
    moved = {n for r in search.records() for n, a, b in zip(FamilyBox.names, r["z"], start) if abs(a - b) > 1e-12}
    assert moved == set(FREE_SETS[named])  # every free parameter moved at least once, no other ever did
    assert ("cfg_start" in moved) == (named == "coarse")
    best = search.family_of(search.state().best_z)
    assert abs(best.remask_start - TARGET.remask_start) < abs(1.0 - TARGET.remask_start)  # towards the target
    assert free_parameters("cfg_start, cfg_end") == ("cfg_start", "cfg_end")
    for bad in ("cfg_end", "cfg_end,cfg_end", "cfg_end,typo"):
        with pytest.raises(AutonatError, match="--free"):
            SearchConfig(method="cma", free=free_parameters(bad))


def test_cma_starts_from_the_best_validated_alternative(tmp_path):
    near = TARGET.strategy(4)  # an alternative start right at the optimum of the fake objective
    calls = []
    cfg = SearchConfig(steps=2, method="cma", seed=5, population=4, sigma=0.5, validation_sets=2)
    alternatives = [guided_ramps(4), near]
    search = CMASearch(_objective(calls), autonat_init(4), cfg, tmp_path, n_eval=10, alternatives=alternatives)
    state = search.run(progress=False)
    assert len(calls) == 3 * 2 + 2 * (4 + 2)  # three starts validated on two sets, then two generations
    assert state.images == 10 * len(calls) and search.history()[0]["step"] == 0
    first = [r["z"] for r in search.records() if r["generation"] == 1]
    assert np.linalg.norm(np.mean(first, axis=0) - FamilyBox.to_unit(TARGET)) < 0.3  # sampled around `near`
    assert _objective()(search.final_strategy(), 0) < 0.05  # never worse than the best validated start
    again = CMASearch(_objective(more := []), autonat_init(4), cfg, tmp_path, n_eval=10, alternatives=alternatives)
    again.run(progress=False)
    assert more == [] and again.final_strategy() == search.final_strategy()  # resumes by replay
    with pytest.raises(AutonatError, match="other inputs"):
        CMASearch(_objective(), autonat_init(4), cfg, tmp_path, n_eval=10, alternatives=[near]).run(progress=False)


def test_cma_resumes_by_replay_on_the_same_trajectory(tmp_path):
    straight = _search(tmp_path / "a", _objective())
    straight.run(progress=False)
    calls = []
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of generation 2
        _search(tmp_path / "b", _objective(calls, fail_at=8)).run(progress=False)
    assert len(_search(tmp_path / "b", _objective()).records()) == 7
    more = []
    resumed = _search(tmp_path / "b", _objective(more))
    resumed.run(progress=False)
    assert len(more) == len(straight.records()) - 7  # nothing recorded is evaluated again
    assert resumed.records() == [dict(r, seconds=r2["seconds"]) for r, r2 in
                                 zip(straight.records(), resumed.records())]
    assert resumed.final_strategy() == straight.final_strategy()


def test_cma_refuses_a_record_of_other_settings(tmp_path):
    _search(tmp_path, _objective(), generations=1).run(progress=False)
    with pytest.raises(AutonatError, match="population"):
        CMASearch(_objective(), autonat_init(4), SearchConfig(steps=2, method="cma", seed=5, population=5, sigma=1.0),
                  tmp_path, n_eval=10).run(progress=False)


def test_cma_stop_ends_at_a_generation_boundary(tmp_path):
    state = _search(tmp_path, _objective(), generations=5).run(progress=False, stop=lambda: True)
    assert state.step == 1 and len(_search(tmp_path, _objective()).records()) == 1 + 5


# --------------------------------------------------------------------------- price and noise
def test_forward_passes_count_the_unconditional_pass_only_where_guidance_runs():
    s = Strategy.create([0.6, 0.2], [1, 1], [1, 1, 1], [0.0, 0.0005, 2.0])
    assert forward_passes(s) == 4  # 3 conditional + 1 unconditional (the 0.0005 step is under the threshold)
    assert forward_passes(autonat_init(8)) == 16
    priced = PricedObjective(lambda strategy, seed: 1.5, price=0.25)
    assert priced(s, 0) == pytest.approx(1.5 + 0.25 * 4)


def test_noise_is_measured_once_and_stored(tmp_path):
    calls = []

    def objective(strategy, seed):
        calls.append(seed)
        return float(np.random.default_rng(seed).normal(3.0, 0.1))

    est = load_or_measure_noise(tmp_path, objective, autonat_init(4), n_eval=50, k=4)
    assert len(calls) == 4 and len(set(calls)) == 4
    assert est.std == pytest.approx(np.std(est.values, ddof=1)) and 0 < est.std < 0.5
    assert json.loads((tmp_path / "noise.json").read_text())["n_eval"] == 50
    again = load_or_measure_noise(tmp_path, objective, autonat_init(4), n_eval=50, k=4)
    assert again == est and len(calls) == 4
    assert "N=50" in est.describe()


# --------------------------------------------------------------------------- the command
class _SyntheticFID:
    """Stands in for FID in the command (no checkpoint or reference needed)."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, strategy, seed):
        noise = np.random.default_rng(seed).normal(0, 0.01)
        return float(abs(strategy.cfg_scale[-1] - 2.0) + abs(strategy.remask_temp[0] - 3.0) + noise)


def test_search_generation_cma_command(tmp_path, monkeypatch, capsys):
    from helpers import write_tiny_generator

    import autonat.cli.search as search_cli
    from autonat.cli.main import main
    from autonat.strategy.files import load_strategy

    monkeypatch.setattr(search_cli, "FIDObjective", _SyntheticFID)
    out = tmp_path / "s"
    unused = write_tiny_generator(tmp_path)  # recorded in inputs.json, never sampled (the objective is synthetic)
    args = ["search", "generation", "--checkpoint", str(unused), "--reference", "demo:train",
            "--steps", "4", "--method", "cma", "--iterations", "3", "--population", "4", "--n-eval", "10",
            "--price", "0.01", "--noise-seeds", "3", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "seed-to-seed std" in text and "N=10" in text and "FID + 0.01 per forward pass" in text
    assert f"result: {out / 'best_strategy.yaml'} (last CMA-ES mean: {out / 'strategy.yaml'})" in text
    assert "the result leads the start by " in text or "kept the start" in text
    noise = json.loads((out / "noise.json").read_text())
    assert noise["n_eval"] == 10 and len(noise["values"]) == 3
    recorded = json.loads((out / "inputs.json").read_text())
    assert recorded["method"] == "cma" and recorded["population"] == 4 and recorded["price"] == 0.01
    assert load_strategy(out / "best_strategy.yaml").steps == 4 and (out / "search.png").exists()
    assert main(args) == 0  # done already: nothing is evaluated again
    assert len((out / "evaluations.jsonl").read_text().splitlines()) == 1 + 3 * 5


@pytest.mark.slow
def test_kid_objective_on_the_demo_model():
    from autonat.demo import DEMO_CHECKPOINT
    from autonat.search.objective import FIDObjective

    kid = FIDObjective(DEMO_CHECKPOINT, "demo:train", 40, metric="kid")
    fid = FIDObjective(DEMO_CHECKPOINT, "demo:train", 40)
    a, b = kid(autonat_init(2), 1), kid(autonat_init(2), 1)
    assert a == b and abs(a) < 0.5 and a != fid(autonat_init(2), 1)
    with pytest.raises(AutonatError, match="unknown search metric"):
        FIDObjective(DEMO_CHECKPOINT, "demo:train", 40, metric="is")


# --------------------------------------------------------------------------- the shipped demo strategies
@pytest.mark.parametrize("steps", [2, 4, 8])
def test_shipped_demo_strategies_load_and_show(steps, tmp_path, capsys):
    from autonat.cli.main import main
    from autonat.demo import DEMO_ASSETS, searched_strategy

    path = DEMO_ASSETS / f"strategy_T{steps}.yaml"
    assert searched_strategy(steps).steps == steps
    assert main(["strategy", "show", str(path), "--grid", "8", "8", "--plot", str(tmp_path / "s.png")]) == 0
    assert f"{steps} steps on a 8x8 grid" in capsys.readouterr().out and (tmp_path / "s.png").exists()


@pytest.mark.slow
def test_the_demo_scores_cosine_the_initialisation_and_the_searched_strategy(tmp_path, capsys):
    import argparse

    from autonat.demo import run_demo

    run_demo(argparse.Namespace(out=str(tmp_path / "demo.png"), eval_samples=20, seed=0))
    out = capsys.readouterr().out
    assert all(name in out for name in ("MaskGIT cosine", "AutoNAT initialisation", "searched (CMA-ES, default)"))


def test_cma_validation_on_several_seed_sets_keeps_the_best_mean_value(tmp_path):
    search = _search(tmp_path, _objective(), generations=3, validation_sets=3)
    state = search.run(progress=False)
    valid = [r for r in search.records() if r["index"] < 0]
    assert len(valid) == 3 * 4 and len({r["seed"] for r in valid}) == 3
    means = [np.mean([r["value"] for r in valid if r["generation"] == g]) for g in range(4)]
    assert [h["fid"] for h in search.history()] == pytest.approx(means)
    assert state.best_value == pytest.approx(min(means)) and state.evaluations == 3 + 3 * (4 + 3)


def test_the_closing_line_reads_the_lead_against_its_noise():
    """The lead over the start is compared with std * sqrt(2 / sets), the std of a difference of two means of
    ``sets`` validation values; two stds or more is called beyond the noise."""
    from autonat.cli.search import _lead_line
    from autonat.search.measure import NoiseEstimate

    noise = NoiseEstimate(100, [1, 2, 3], [3.0, 3.2, 3.4])  # std 0.2
    spread = noise.lead_noise(2)
    assert spread == pytest.approx(0.2)
    assert _lead_line(3.0, 3.0, spread) == "kept the start: no CMA-ES mean validated better"
    assert _lead_line(3.0, 2.7, spread).startswith("the result leads the start by 0.300 on the validation seeds, "
                                                   "1.5 x the std of that lead (0.200): within the noise")
    assert _lead_line(3.0, 2.5, spread).endswith("2.5 x the std of that lead (0.200): beyond the noise")
    one_set = NoiseEstimate(100, [1], [3.0]).lead_noise(2)  # nan: no std from one seed set
    assert _lead_line(3.0, 2.5, one_set).endswith("its noise is unknown (--noise-seeds 3 measures it)")
