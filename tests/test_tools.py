"""The experiment scripts in tools/ report bad input as the ``autonat`` command does: one line, status 2."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autonat.cli.main import run_reporting_errors
from autonat.errors import AutonatError

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _tool(name: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *argv], capture_output=True, text=True,
                          env=ENV, cwd=ROOT, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("name, argv", [
    ("search_experiment.py", ["--steps", "2"]),
    ("objective_resolution.py", ["--steps", "4", "--strategy", "cosine"]),
])
def test_a_mistyped_checkpoint_is_one_line(name, argv, tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    result = _tool(name, "--checkpoint", str(missing), "--out", str(tmp_path / "out"), *argv)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"{name}: error: {missing} is not a generator checkpoint: config.json is missing; "
                           "check the path"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_accelerate_entry_point_speaks_as_autonat_train():
    """tools/train.py is `autonat train` under accelerate: the same flags, typo hints and one-line errors."""
    result = _tool("train.py", "--confg", "recipe.yaml")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line == ("autonat train: error: unrecognized arguments: --confg; did you mean --confg -> --config? "
                    "(missing: --config) (see `autonat train --help`)"), line


@pytest.mark.slow
def test_a_bad_strategy_of_objective_resolution_is_one_line():
    result = _tool("objective_resolution.py", "--steps", "4", "--strategy", "init:remask_strat=3")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("objective_resolution.py: error: init:remask_strat=3: give key=value pairs of ")
    assert "remask_start" in line and "Traceback" not in result.stdout


def test_run_reporting_errors(capsys):
    def fails(exc):
        def work():
            raise exc
        return work

    assert run_reporting_errors(lambda: None, prog="x") == 0
    assert run_reporting_errors(fails(AutonatError("bad value; give a good one")), prog="x") == 2
    assert capsys.readouterr().err == "x: error: bad value; give a good one\n"
    assert run_reporting_errors(fails(FileNotFoundError(2, "No such file or directory", "a/b")), prog="x") == 2
    assert capsys.readouterr().err == "x: error: a/b: no such file or directory; check the path\n"
    assert run_reporting_errors(fails(KeyboardInterrupt()), prog="x") == 130
    assert capsys.readouterr().err == "x: interrupted\n"
    with pytest.raises(AutonatError, match="bad value"):
        run_reporting_errors(fails(AutonatError("bad value")), debug=True)
    with pytest.raises(ZeroDivisionError):  # a bug is not the user's error: its traceback shows
        run_reporting_errors(fails(ZeroDivisionError()), prog="x")


def test_fresh_scores_are_kept_per_strategy_and_rescored_when_it_changes(tmp_path):
    """tools/search_experiment.py caches fresh-set FIDs by name; another strategy under the same name (a new
    search result in the same --out) must be scored again, not read from the cache."""
    import importlib.util

    from autonat.strategy.core import autonat_init

    spec = importlib.util.spec_from_file_location("search_experiment", ROOT / "tools" / "search_experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    calls = []

    def final(strategy, seed):
        calls.append((strategy.remask_temp[0], seed))
        return strategy.remask_temp[0] + seed / 1e6

    first, second = autonat_init(4), autonat_init(4, remask_temp=(3.0, 0.5))
    scores = module.Scores(tmp_path / "scores.json", final)
    assert scores.get("cma", first, (1, 2)) == [1.0 + 1e-6, 1.0 + 2e-6]
    reread = module.Scores(tmp_path / "scores.json", final)  # from the file, no new evaluation
    assert reread.get("cma", first, (1, 2)) == [1.0 + 1e-6, 1.0 + 2e-6] and len(calls) == 2
    assert reread.get("cma", second, (1,)) == [3.0 + 1e-6] and calls[-1] == (3.0, 1)
    assert module.Scores(tmp_path / "scores.json", final).get("cma", first, (1,)) == [1.0 + 1e-6]
    assert len(calls) == 4  # the first strategy was scored again: the key had moved to the second
