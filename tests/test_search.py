import numpy as np
import pytest

from autonat.search.generation import (
    Layout,
    SearchConfig,
    StrategySearch,
    fd_gradient,
    nonincreasing,
    project,
    spsa_gradient,
)
from autonat.strategy.core import autonat_init


def test_fd_recovers_quadratic_gradient():
    a = np.array([1.0, 2.0, 3.0])
    target = np.array([0.5, -1.0, 2.0])
    f = lambda x, seed: float(np.sum(a * (x - target) ** 2))  # noqa: E731
    x = np.array([0.0, 0.0, 0.0])
    h = np.array([1e-4, 1e-4, 1e-4])
    grad, f0, n = fd_gradient(f, x, h, lambda j: 0)
    assert grad == pytest.approx(2 * a * (x - target), abs=1e-3)
    assert n == 4 and f0 == pytest.approx(f(x, 0))


def test_spsa_is_unbiased_on_linear_function():
    w = np.array([1.0, -2.0, 0.5, 3.0])
    f = lambda x, seed: float(w @ x)  # noqa: E731
    rng = np.random.default_rng(0)
    grads = [spsa_gradient(f, np.zeros(4), np.full(4, 0.1), lambda j: 0, rng)[0] for _ in range(2000)]
    assert np.mean(grads, axis=0) == pytest.approx(w, abs=0.25)


def test_projection_respects_bounds_and_order():
    layout = Layout(4)
    x = np.array([0.5, 1.2, -0.3, -1.0, 0.0, 2.0, -5.0, 1.0, 1.0, 1.0, 1.0, 1.0, -2.0, 0.0])
    p = project(x, layout)
    ratios = p[:3]
    assert (ratios >= 0).all() and (ratios <= 0.99).all() and (np.diff(ratios) <= 1e-12).all()
    assert (p[3:] >= 1e-4).all()
    layout.unflatten(x)  # always a valid strategy
    assert nonincreasing(np.array([1.0, 3.0, 2.0])) == pytest.approx([2.0, 2.0, 2.0])


def _quadratic_objective(target):
    layout = Layout(target.steps)
    t = layout.flatten(target)

    def objective(strategy, seed):
        x = layout.flatten(strategy)
        noise = np.random.default_rng(seed).normal(0, 0.001)
        return float(np.sum((x - t) ** 2) + noise)

    return objective


@pytest.mark.parametrize("method", ["fd", pytest.param("spsa", marks=pytest.mark.slow)])
def test_search_converges_on_synthetic_objective(tmp_path, method):
    init = autonat_init(3)
    target = autonat_init(3, remask_temp=(2.0, 0.5), cfg_scale=(0.0, 2.0))
    objective = _quadratic_objective(target)
    # SPSA's estimate carries the other coordinates' gradient as noise: smaller steps, more of them
    cfg = SearchConfig(steps=15, method=method, seed=1) if method == "fd" else \
        SearchConfig(steps=300, method=method, seed=1, lr_unbounded=0.02, lr_bounded=0.002)
    search = StrategySearch(objective, init, cfg, tmp_path / method, n_eval=10)
    start = objective(init, 0)
    state = search.run(progress=False)
    assert objective(search.final_strategy(), 0) < 0.2 * start
    history = search.history()
    assert len(history) == cfg.steps
    assert state.images == state.evaluations * 10
    assert (tmp_path / method / "best_strategy.yaml").exists()


def test_interrupted_search_resumes_on_the_same_trajectory(tmp_path):
    init = autonat_init(3)
    objective = _quadratic_objective(autonat_init(3, remask_temp=(1.0, 0.5), cfg_scale=(0.5, 1.0)))
    cfg = SearchConfig(steps=6, seed=3, common_random_numbers=False)
    StrategySearch(objective, init, cfg, tmp_path / "a", 5).run(progress=False)
    calls = []
    StrategySearch(objective, init, cfg, tmp_path / "b", 5).run(progress=False,
                                                                stop=lambda: calls.append(1) or len(calls) == 2)
    assert len(StrategySearch(objective, init, cfg, tmp_path / "b", 5).history()) == 2
    resumed = StrategySearch(objective, init, cfg, tmp_path / "b", 5)
    resumed.run(progress=False)
    a = StrategySearch(objective, init, cfg, tmp_path / "a", 5)
    assert [r["fid"] for r in a.history()] == pytest.approx([r["fid"] for r in resumed.history()], abs=1e-12)
    assert a.final_strategy() == resumed.final_strategy()


def test_training_line_search_finds_the_better_beta(tmp_path):
    from autonat.search.training import LineSearchConfig, TrainingStrategySearch

    calls = []

    def trial(alpha, beta):  # a synthetic FID with its minimum at alpha=6, beta=3
        calls.append((alpha, beta))
        return (np.log(alpha) - np.log(6)) ** 2 + (np.log(beta) - np.log(3)) ** 2

    best = TrainingStrategySearch(trial, LineSearchConfig(alpha=12, beta=3, factor=2), tmp_path).run()
    assert (best.alpha, best.beta) == (6.0, 3.0)
    n = len(calls)
    again = TrainingStrategySearch(trial, LineSearchConfig(alpha=12, beta=3, factor=2), tmp_path).run()
    assert again == best and len(calls) == n  # recorded trials are not run again
