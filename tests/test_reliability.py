"""Reliability: exact resume after SIGKILL, preemption, atomic writes, bad input, untrusted files.

A long run on a shared machine gets killed; its user must lose nothing and be
told plainly what is wrong with their input. The kill and signal tests run
``autonat`` in subprocesses (a real SIGKILL cannot be simulated in-process);
failures in the middle of a write are simulated by monkeypatching the writer
to write half of its output and then fail as a full disk does.
"""
from __future__ import annotations

import csv
import errno
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import tokenize
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_recipe, write_tiny_cache
from PIL import Image
from safetensors.torch import load_file

from autonat.cli.main import main
from autonat.data.token_cache import read_token_cache, write_token_cache
from autonat.errors import AutonatError
from autonat.generator.checkpoint import load_generator, save_generator
from autonat.generator.uvit import UViT, UViTConfig
from autonat.training.recipe import recipe_from_dict
from autonat.training.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
STEPS = 120  # long enough (~1 s of steps) that a kill after step 10 lands before the end


# --------------------------------------------------------------------------- helpers
def _write_recipe(folder: Path, cache: Path, out: Path, steps: int = STEPS, **train_overrides) -> Path:
    """A tiny training recipe logging every step, checkpointing every 10."""
    cfg = folder / f"{out.name}.yaml"
    cfg.write_text(yaml.safe_dump(tiny_recipe(cache, out, steps=steps, log_every=1, **train_overrides)))
    return cfg


def _autonat(*args) -> list[str]:
    return [sys.executable, "-m", "autonat.cli", *map(str, args)]


def _driver(folder: Path, patch: str) -> list[str]:
    """``autonat`` with ``patch`` applied first (to inject a fault into the subprocess)."""
    script = folder / f"driver_{abs(hash(patch))}.py"
    script.write_text(f"import os, signal, sys\n{patch}\nfrom autonat.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    return [sys.executable, str(script)]


def _start(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def _wait_for(condition, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Poll ``condition()`` every 10 ms while ``proc`` runs."""
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"process ended (rc {proc.returncode}) before the condition held:\n{log.read_text()[-2000:]}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("timed out waiting")
        time.sleep(0.01)


def _state_written(run: Path, step: int):
    return lambda: (run / "state" / f"step_{step}" / "trainer.json").exists()


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


def _assert_same_run(reference: Path, run: Path) -> float:
    """Same loss sequence, same EMA checkpoint and same raw weights as the uninterrupted run; returns max diff."""
    assert len(_losses(run)) == STEPS
    assert _losses(run) == pytest.approx(_losses(reference), abs=1e-6)
    ema = _max_weight_diff(reference / "checkpoints" / f"step_{STEPS}" / "model.safetensors",
                           run / "checkpoints" / f"step_{STEPS}" / "model.safetensors")
    raw = _max_weight_diff(reference / "state" / f"step_{STEPS}" / "model.safetensors",
                           run / "state" / f"step_{STEPS}" / "model.safetensors")
    print(f"max weight difference after resume: EMA {ema:.3g}, raw {raw:.3g}")
    assert ema < 1e-6 and raw < 1e-6
    return max(ema, raw)


def _one_line_error(capsys, *fragments: str) -> str:
    """The error is the last line on stderr (after any progress bar), alone, and there is no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("autonat: error:") and "Traceback" not in err, err[-2000:]
    assert sum("autonat: error:" in line for line in lines) == 1, err[-2000:]
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def _disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_full(real):
    """A writer that writes half of what ``real`` writes to its file argument, then fails as a full disk does."""

    def writer(obj, filename, *args, **kwargs):
        real(obj, filename, *args, **kwargs)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        raise _disk_full()

    return writer


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A token cache and one uninterrupted subprocess run of the tiny recipe (shared by the resume tests)."""
    folder = tmp_path_factory.mktemp("reference")
    cache = write_tiny_cache(folder / "cache")
    run = folder / "run"
    result = _run(_autonat("train", "--config", _write_recipe(folder, cache, run)), folder)
    assert result.returncode == 0, result.stderr[-2000:]
    return cache, run


# --------------------------------------------------------------------------- 1. exact resume after SIGKILL
@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(reference, tmp_path):
    cache, ref = reference
    run = tmp_path / "run"
    cfg = _write_recipe(tmp_path, cache, run)
    log = tmp_path / "killed.log"
    proc = _start(_autonat("train", "--config", cfg), tmp_path, log)
    _wait_for(_state_written(run, 10), proc, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "checkpoints" / f"step_{STEPS}").exists(), "the run ended before it was killed"
    killed_at = RunDir(run).latest_state()[0]
    resumed = _run(_autonat("train", "--config", cfg), tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from {run / 'state' / f'step_{killed_at}'}" in resumed.stdout
    _assert_same_run(ref, run)


KILL_IN_CHECKPOINT = '''
import safetensors.torch as st
_real = st.save_file
def save_file(tensors, filename, metadata=None):
    _real(tensors, filename, metadata)
    if "/checkpoints/.step_20." in str(filename):  # half of the EMA weights reached the disk, then SIGKILL
        data = open(filename, "rb").read()
        open(filename, "wb").write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
st.save_file = save_file
'''

KILL_IN_STATE = '''
import accelerate
_real = accelerate.Accelerator.save_state
def save_state(self, output_dir=None, **kwargs):
    out = _real(self, output_dir, **kwargs)
    if str(output_dir).endswith(".step_30.tmp"):  # state files half-written, trainer.json not yet: SIGKILL
        path = os.path.join(output_dir, "model.safetensors")
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return out
accelerate.Accelerator.save_state = save_state
'''


@pytest.mark.slow
def test_sigkill_in_the_middle_of_checkpoint_writes_keeps_the_previous_ones(reference, tmp_path):
    cache, ref = reference
    run = tmp_path / "run"
    cfg = _write_recipe(tmp_path, cache, run)
    # killed while writing checkpoints/step_20 (atomic_dir): step 10 stays the latest, and loadable
    first = _run(_driver(tmp_path, KILL_IN_CHECKPOINT) + ["train", "--config", str(cfg)], tmp_path)
    assert first.returncode == -signal.SIGKILL
    assert list((run / "checkpoints").glob(".step_20.*")) and not (run / "checkpoints" / "step_20").exists()
    assert RunDir(run).latest_state()[0] == 10
    load_generator(run / "checkpoints" / "step_10")
    # resumed, then killed while writing state/.step_30.tmp: step 20 stays the latest
    second = _run(_driver(tmp_path, KILL_IN_STATE) + ["train", "--config", str(cfg)], tmp_path)
    assert second.returncode == -signal.SIGKILL
    assert (run / "state" / ".step_30.tmp").is_dir() and not (run / "state" / "step_30").exists()
    assert RunDir(run).latest_state()[0] == 20
    load_generator(run / "checkpoints" / "step_20")
    # the third run cleans the partial directories up and ends where the uninterrupted run ended
    third = _run(_autonat("train", "--config", cfg), tmp_path)
    assert third.returncode == 0, third.stderr[-2000:]
    assert not list((run / "state").glob(".step_*")) and not list((run / "checkpoints").glob(".step_*"))
    _assert_same_run(ref, run)


def test_latest_state_ignores_partial_directories(tmp_path):
    run = RunDir(tmp_path)
    for step, complete in ((10, True), (20, True), (30, False)):
        (run.state / f"step_{step}").mkdir(parents=True)
        if complete:
            (run.state / f"step_{step}" / "trainer.json").write_text("{}")
    (run.state / ".step_40.tmp").mkdir()
    (run.state / "step_notanumber").mkdir()
    (run.checkpoints / ".step_40.abc.tmp").mkdir(parents=True)
    assert run.latest_state() == (20, run.state / "step_20")
    removed = {p.name for p in run.clean_partial()}
    assert removed == {".step_40.tmp", "step_30", ".step_40.abc.tmp"}
    assert run.latest_state() == (20, run.state / "step_20")


SEARCH_JOB = '''
"""A generation-strategy search with a synthetic, slow objective (for the kill test)."""
import sys
import time

import numpy as np

from autonat.search.generation import Layout, SearchConfig, StrategySearch
from autonat.strategy.core import autonat_init

DELAY = 0.0
TARGET = Layout(3).flatten(autonat_init(3, remask_temp=(1.0, 0.5), cfg_scale=(0.5, 1.0)))


def objective(strategy, seed):
    time.sleep(DELAY)
    x = Layout(strategy.steps).flatten(strategy)
    return float(np.sum((x - TARGET) ** 2) + np.random.default_rng(seed).normal(0, 0.001))


def search(out):
    return StrategySearch(objective, autonat_init(3), SearchConfig(steps=10, method="spsa", seed=3), out, n_eval=5)


if __name__ == "__main__":
    DELAY = float(sys.argv[2])
    search(sys.argv[1]).run(progress=False)
'''


def _search_step(out: Path) -> int:
    try:
        return json.loads((out / "state.json").read_text())["step"]
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_sigkilled_search_resumes_on_the_same_trajectory(tmp_path):
    script = tmp_path / "search_job.py"
    script.write_text(SEARCH_JOB)
    spec = importlib.util.spec_from_file_location("search_job", script)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    straight = job.search(tmp_path / "straight")
    straight.run(progress=False)

    out, log = tmp_path / "killed", tmp_path / "search.log"
    proc = _start([sys.executable, str(script), str(out), "0.1"], tmp_path, log)
    _wait_for(lambda: _search_step(out) >= 2, proc, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and _search_step(out) < 10
    resumed = job.search(out)
    resumed.run(progress=False)
    assert [r["fid"] for r in resumed.history()] == [r["fid"] for r in straight.history()]
    assert resumed.final_strategy() == straight.final_strategy()


# --------------------------------------------------------------------------- 2. preemption
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow
def test_a_signal_during_training_saves_at_the_next_step_and_exits(reference, tmp_path, sig):
    cache, _ = reference
    run = tmp_path / "run"
    log = tmp_path / "train.log"
    proc = _start(_autonat("train", "--config", _write_recipe(tmp_path, cache, run, steps=100_000)), tmp_path, log)
    _wait_for(_state_written(run, 10), proc, log)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    text = log.read_text()
    assert proc.returncode == 128 + sig, text[-2000:]
    found = re.search(rf"stopped by {sig.name} at step (\d+): state saved in (\S+); run the same command again", text)
    assert found and "Traceback" not in text, text[-2000:]
    step = int(found.group(1))
    assert step >= 10 and RunDir(run).latest_state() == (step, run / "state" / f"step_{step}")
    assert load_generator(run / "checkpoints" / f"step_{step}").config.codebook_size == 16


def test_a_second_signal_aborts_without_waiting(capsys):
    from autonat.training.loop import StopRequest

    with StopRequest() as stop:
        stop._handle(signal.SIGTERM, None)
        assert stop.signal == signal.SIGTERM and stop.name == "SIGTERM"
        assert "stopping at the next step boundary" in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)
    assert signal.getsignal(signal.SIGTERM) is not stop._handle  # handlers restored


FAKE_FID = '''
import time
import autonat.cli.search as search_cli

class SlowSyntheticFID:
    """Stands in for FID (the checkpoint is never sampled); slow enough to be interrupted."""
    def __init__(self, *args, **kwargs):
        pass
    def __call__(self, strategy, seed):
        time.sleep(0.1)
        return float(sum(strategy.cfg_scale) + sum(strategy.sample_temp))

search_cli.FIDObjective = SlowSyntheticFID
'''


@pytest.mark.slow
def test_sigterm_during_a_generation_search_stops_at_a_step_boundary(tmp_path):
    out, log = tmp_path / "search", tmp_path / "search.log"
    from autonat.demo import DEMO_CHECKPOINT  # a real checkpoint: its inputs are recorded; FID is the fake above

    cmd = _driver(tmp_path, FAKE_FID) + ["search", "generation", "--checkpoint", str(DEMO_CHECKPOINT),
                                         "--out", str(out), "--steps", "3", "--iterations", "1000", "--method", "spsa"]
    proc = _start(cmd, tmp_path, log)
    _wait_for(lambda: _search_step(out) >= 1, proc, log)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    text = log.read_text()
    assert proc.returncode == 128 + signal.SIGTERM, text[-2000:]
    found = re.search(r"stopped by SIGTERM after search step (\d+): state saved in", text)
    assert found and "Traceback" not in text, text[-2000:]
    with open(out / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert _search_step(out) == int(found.group(1)) == len(rows)


# --------------------------------------------------------------------------- 3. atomic writes under failure
def _tiny_generator(seed: int) -> UViT:
    torch.manual_seed(seed)
    return UViT(UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=2, num_heads=2))


def test_checkpoint_write_failing_halfway_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    import safetensors.torch

    old = _tiny_generator(0)
    save_generator(tmp_path / "ckpt", old, old.config, {"path": "none"})
    monkeypatch.setattr(safetensors.torch, "save_file", _half_then_full(safetensors.torch.save_file))
    new = _tiny_generator(1)
    with pytest.raises(AutonatError, match=r"disk is full while writing .*ckpt; the previous version.* is intact"):
        save_generator(tmp_path / "ckpt", new, new.config, {"path": "none"})
    loaded = load_generator(tmp_path / "ckpt").model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in old.state_dict().items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left behind


def test_token_cache_write_failing_halfway_keeps_the_old_cache(tmp_path, monkeypatch):
    cache = write_tiny_cache(tmp_path / "cache")
    before = np.asarray(read_token_cache(cache).tokens).copy()
    real = np.save

    def save(file, arr, *args, **kwargs):
        real(file, arr, *args, **kwargs)
        Path(file).write_bytes(Path(file).read_bytes()[:60])
        raise _disk_full()

    monkeypatch.setattr(np, "save", save)
    with pytest.raises(AutonatError, match="disk is full"):
        write_token_cache(cache, before[:, ::-1].copy(), np.zeros(len(before), np.int64),
                          {**read_token_cache(cache).meta})
    assert np.array_equal(read_token_cache(cache).tokens, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def _half_text_then_full(real):
    def write_text(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise _disk_full()

    return write_text


def test_strategy_file_write_failing_halfway_keeps_the_old_file(tmp_path, monkeypatch):
    from autonat.strategy.core import autonat_init, maskgit_cosine
    from autonat.strategy.files import load_strategy, save_strategy

    path = tmp_path / "s.yaml"
    save_strategy(maskgit_cosine(6), path)
    monkeypatch.setattr(Path, "write_text", _half_text_then_full(Path.write_text))
    with pytest.raises(AutonatError, match="disk is full.*s.yaml; the previous version, if any, is intact"):
        save_strategy(autonat_init(6), path)
    monkeypatch.undo()
    assert load_strategy(path) == maskgit_cosine(6)
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]


def test_results_append_failing_halfway_keeps_the_old_records(tmp_path, monkeypatch):
    from autonat.evaluation.metrics import append_record

    path = tmp_path / "results.jsonl"
    append_record(path, {"fid": 1.5})
    monkeypatch.setattr(Path, "write_text", _half_text_then_full(Path.write_text))
    with pytest.raises(AutonatError, match="disk is full"):
        append_record(path, {"fid": 2.5})
    monkeypatch.undo()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"fid": 1.5}]


def test_search_state_write_failing_halfway_resumes_on_the_same_trajectory(tmp_path, monkeypatch):
    from autonat.search.generation import SearchConfig, StrategySearch
    from autonat.strategy.core import autonat_init

    def objective(strategy, seed):
        return float(sum(strategy.cfg_scale) ** 2 + np.random.default_rng(seed).normal(0, 1e-3))

    def make(out):
        return StrategySearch(objective, autonat_init(3), SearchConfig(steps=4, method="spsa", seed=1), out, 5)

    straight = make(tmp_path / "straight")
    straight.run(progress=False)
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):  # the state.json of step 3 fails half-way
        if self.name.startswith(".state.json.") and json.loads(data)["step"] == 3:
            real(self, data[: len(data) // 2])
            raise _disk_full()
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "failed"
    with pytest.raises(AutonatError, match="disk is full while writing .*state.json"):
        make(out).run(progress=False)
    monkeypatch.undo()
    assert json.loads((out / "state.json").read_text())["step"] == 2  # the last good state, intact
    resumed = make(out)
    resumed.run(progress=False)
    assert [r["fid"] for r in resumed.history()] == [r["fid"] for r in straight.history()]
    assert resumed.final_strategy() == straight.final_strategy()


@pytest.mark.slow
def test_training_state_write_failing_on_a_full_disk(tmp_path, monkeypatch, capsys):
    """A full disk while saving the training state: a one-line message, the earlier state loadable and resumable."""
    import accelerate

    cache = write_tiny_cache(tmp_path / "cache")
    run = tmp_path / "run"
    cfg = _write_recipe(tmp_path, cache, run, steps=15, checkpoint_every=5)
    real = accelerate.Accelerator.save_state

    def save_state(self, output_dir=None, **kwargs):
        out = real(self, output_dir, **kwargs)
        if str(output_dir).endswith(".step_10.tmp"):
            path = Path(output_dir) / "model.safetensors"
            path.write_bytes(path.read_bytes()[:100])
            raise _disk_full()
        return out

    monkeypatch.setattr(accelerate.Accelerator, "save_state", save_state)
    assert main(["train", "--config", str(cfg)]) == 2
    _one_line_error(capsys, "the disk is full while writing", ".step_10.tmp",
                    "the earlier checkpoints and states are intact")
    assert not (run / "state" / ".step_10.tmp").exists()  # the partial state is removed, freeing its space
    assert RunDir(run).latest_state() == (5, run / "state" / "step_5")
    monkeypatch.undo()
    assert main(["train", "--config", str(cfg)]) == 0
    assert "resumed from" in capsys.readouterr().out


# --------------------------------------------------------------------------- 4. bad input
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys, bad):
    from autonat.training import loop as training

    real, calls = training.masked_cross_entropy, []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * bad if len(calls) > 7 else loss

    monkeypatch.setattr(training, "masked_cross_entropy", poisoned)
    run = tmp_path / "run"
    cfg = _write_recipe(tmp_path, write_tiny_cache(tmp_path / "cache"), run, steps=10, checkpoint_every=5)
    assert main(["train", "--config", str(cfg)]) == 2
    _one_line_error(capsys, f"loss became {bad} at step 7",
                    f"last good checkpoint is kept: {run / 'checkpoints' / 'step_5'}")
    assert RunDir(run).latest_state()[0] == 5
    load_generator(run / "checkpoints" / "step_5")


@pytest.mark.slow
def test_corrupt_training_state_is_a_clear_error(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _write_recipe(tmp_path, write_tiny_cache(tmp_path / "cache"), run, steps=5, checkpoint_every=5)
    assert main(["train", "--config", str(cfg)]) == 0
    weights = run / "state" / "step_5" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    assert main(["train", "--config", str(cfg), "train.steps=10"]) == 2
    _one_line_error(capsys, f"cannot resume from {run / 'state' / 'step_5'}", "train.resume=false")


@pytest.fixture
def sampling_setup(tmp_path, tiny_vqgan_config):
    """A tiny tokenizer (16 codes, 8px -> 4x4) and a matching, untrained generator checkpoint."""
    from autonat.tokenizers.taming import VQGAN
    from autonat.tokenizers.training import save_tokenizer

    torch.manual_seed(0)
    save_tokenizer(VQGAN(tiny_vqgan_config), tmp_path / "tok")
    model = _tiny_generator(0)
    save_generator(tmp_path / "ckpt", model, model.config, {"path": str(tmp_path / "tok")})
    return tmp_path / "ckpt", tmp_path / "tok"


def _strategy_file(tmp_path: Path, **vectors) -> Path:
    base = {"mask_ratio": [0.5, 0.2], "remask_temp": [1.0, 0.5], "sample_temp": [1.0, 1.0, 1.0],
            "cfg_scale": [0.0, 0.0, 0.0]}
    path = tmp_path / "bad_strategy.yaml"
    path.write_text(yaml.safe_dump({**base, **vectors}))
    return path


def _damage(ckpt: Path, how: str, tmp_path: Path) -> list[str]:
    """Make checkpoint ``ckpt`` bad in one way; returns extra ``sample`` arguments."""
    if how == "missing":
        return ["--checkpoint", str(tmp_path / "nowhere")]
    if how == "truncated weights":
        w = ckpt / "model.safetensors"
        w.write_bytes(w.read_bytes()[:200])
    elif how == "corrupt config":
        (ckpt / "config.json").write_text('{"format": "autonat-gen')
    elif how == "deeper architecture":  # the config asks for more blocks than the weights hold
        info = json.loads((ckpt / "config.json").read_text())
        info["model"]["depth"] = 4
        (ckpt / "config.json").write_text(json.dumps(info))
    elif how == "shallower architecture":  # the weights hold more blocks than the config asks for
        from safetensors.torch import save_file

        deeper = UViT(UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=4, num_heads=2))
        save_file({k: v.contiguous() for k, v in deeper.state_dict().items()}, str(ckpt / "model.safetensors"))
    elif how == "other codebook":
        from autonat.tokenizers.taming import VQGAN, VQGANConfig
        from autonat.tokenizers.training import save_tokenizer

        save_tokenizer(VQGAN(VQGANConfig(n_embed=32, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                                         attn_resolutions=(), resolution=8, z_channels=8)), tmp_path / "tok32")
        return ["--checkpoint", str(ckpt), "--tokenizer", str(tmp_path / "tok32")]
    return ["--checkpoint", str(ckpt)]


@pytest.mark.parametrize("how, message", [
    ("missing", "not a generator checkpoint: config.json is missing"),
    ("truncated weights", "cannot read weights from"),
    ("corrupt config", "config.json is corrupt"),
    ("deeper architecture", "does not fit the architecture: missing"),
    ("shallower architecture", "does not fit the architecture: unexpected"),
    ("other codebook", "tokenizer has 32 codes but the generator was trained for 16"),
])
def test_bad_checkpoints_give_one_line_errors(sampling_setup, tmp_path, capsys, how, message):
    ckpt, _ = sampling_setup
    args = _damage(ckpt, how, tmp_path)
    assert main(["sample", *args, "--steps", "2", "--per-class", "1", "--out", str(tmp_path / "g.png")]) == 2
    _one_line_error(capsys, message)


@pytest.mark.parametrize("vectors, message", [
    ({"mask_ratio": [0.5]}, "mask_ratio has 1 values; 3 steps need 2"),
    ({"cfg_scale": [0.0, 0.0]}, "cfg_scale has 2 values; 3 steps need 3"),
    ({"mask_ratio": [1.5, 0.2]}, "mask_ratio values must lie in [0, 1)"),
    ({"mask_ratio": [0.2, 0.5]}, "mask_ratio must be non-increasing"),
    ({"remask_temp": [-1.0, 0.5]}, "remask_temp must be >= 0"),
    ({"sample_temp": [1.0, float("nan"), 1.0]}, "sample_temp holds NaN or infinite values"),
    ({"cfg_scale": [0.0, float("inf"), 1.0]}, "cfg_scale holds NaN or infinite values"),
    ({"sample_temp": ["warm", 1.0, 1.0]}, "sample_temp must be a list of numbers, found 'warm'"),
])
def test_bad_strategies_give_one_line_errors(sampling_setup, tmp_path, capsys, vectors, message):
    ckpt, _ = sampling_setup
    strategy = _strategy_file(tmp_path, **vectors)
    assert main(["sample", "--checkpoint", str(ckpt), "--strategy", str(strategy),
                 "--out", str(tmp_path / "g.png")]) == 2
    _one_line_error(capsys, message, str(strategy))


@pytest.mark.parametrize("classes", [["7"], ["-1"], ["0", "4"]])
def test_class_id_out_of_range_is_a_one_line_error(sampling_setup, tmp_path, capsys, classes):
    ckpt, _ = sampling_setup
    assert main(["sample", "--checkpoint", str(ckpt), "--steps", "2", "--classes", *classes,
                 "--out", str(tmp_path / "g.png")]) == 2
    _one_line_error(capsys, "out of range", "0..2")


def test_a_good_setup_samples_and_debug_shows_the_traceback(sampling_setup, tmp_path, capsys):
    ckpt, _ = sampling_setup
    assert main(["sample", "--checkpoint", str(ckpt), "--steps", "2", "--per-class", "1",
                 "--out", str(tmp_path / "g.png")]) == 0
    with pytest.raises(AutonatError, match="not a generator checkpoint"):
        main(["--debug", "sample", "--checkpoint", str(tmp_path / "nowhere")])


def _save_images(folder: Path, arrays: dict[str, np.ndarray | Image.Image]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in arrays.items():
        (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(folder / name)


def _corrupt_images(folder: Path) -> list[str]:
    """A truncated PNG, a JPEG of garbage and an empty file."""
    folder.mkdir(parents=True, exist_ok=True)
    good = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(good, format="png")
    (folder / "truncated.png").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (folder / "garbage.jpg").write_bytes(b"definitely not a jpeg" * 10)
    (folder / "empty.png").write_bytes(b"")
    return ["empty.png", "garbage.jpg", "truncated.png"]


def test_grayscale_palette_rgba_and_deep_images_load_as_rgb(tmp_path):
    from autonat.data.images import ImageFolderDataset

    grey = np.full((6, 6), 128, np.uint8)
    _save_images(tmp_path / "a", {
        "l.png": grey, "p.png": Image.fromarray(np.stack([grey] * 3, -1)).convert("P"),
        "rgba.png": np.full((6, 6, 4), 128, np.uint8), "la.png": Image.fromarray(grey).convert("LA"),
        "i16.png": np.full((6, 6), 32896, np.uint16), "f.tif": np.full((6, 6), 128 / 255, np.float32),
        "cmyk.tif": Image.fromarray(np.stack([grey] * 3, -1)).convert("CMYK"),
    })
    ds = ImageFolderDataset(tmp_path, 8)
    assert len(ds) == 7 and not ds.skipped
    for i in range(len(ds)):
        x, label = ds[i]
        assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and label == 0
        assert x.mean().item() == pytest.approx(128 / 255, abs=0.01), ds.items[i][0].name


def test_small_images_are_upscaled_and_counted(tmp_path):
    from autonat.data.images import ImageFolderDataset

    _save_images(tmp_path / "a", {"tiny.png": np.full((3, 5, 3), 200, np.uint8),
                                  "big.png": np.full((12, 12, 3), 200, np.uint8)})
    ds = ImageFolderDataset(tmp_path, 8)
    assert ds.upscaled == 1 and all(ds[i][0].shape == (3, 8, 8) for i in range(2))


def test_corrupt_images_are_skipped_and_counted_or_refused_when_strict(tmp_path):
    from autonat.data.images import open_dataset

    _save_images(tmp_path / "a", {"ok.png": np.zeros((8, 8, 3), np.uint8)})
    bad = _corrupt_images(tmp_path / "a")
    ds = open_dataset(str(tmp_path), 8)
    assert len(ds) == 1 and sorted(p.name for p in ds.skipped) == bad
    with pytest.raises(AutonatError, match="unreadable image .*empty.png.*--strict-images"):
        open_dataset(str(tmp_path), 8, strict=True)


@pytest.mark.parametrize("layout, message", [
    ("no folder", "image folder not found"),
    ("empty", "has no class subfolders"),
    ("empty classes", "no readable images under"),
    ("only corrupt", "(3 unreadable files skipped)"),
])
def test_empty_or_unusable_dataset_folders(tmp_path, layout, message):
    from autonat.data.images import ImageFolderDataset

    root = tmp_path / "data"
    if layout != "no folder":
        root.mkdir()
    if layout == "empty classes":
        (root / "a").mkdir()
        (root / "a" / "notes.txt").write_text("not an image")
    if layout == "only corrupt":
        _corrupt_images(root / "a")
    with pytest.raises(AutonatError, match=re.escape(message)):
        ImageFolderDataset(root, 8)


def test_tokenize_skips_corrupt_images_by_default_and_fails_with_strict_images(
        tmp_path, tiny_image_folder, sampling_setup, capsys):
    _, tok = sampling_setup
    _corrupt_images(tiny_image_folder / "class1")
    _save_images(tiny_image_folder / "class2", {"small.png": np.full((4, 4, 3), 50, np.uint8)})
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": str(tiny_image_folder), "image_size": 8}}))
    args = ["tokenize", "--config", str(cfg), "--tokenizer", str(tok), "--out", str(tmp_path / "cache")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "token cache with 19 items" in out and "skipped 3 unreadable image(s)" in out
    assert "upscaled 1 image(s)" in out
    assert read_token_cache(tmp_path / "cache").meta["skipped_images"] == 3
    assert main(args + ["--strict-images"]) == 2
    _one_line_error(capsys, "unreadable image", "class1")
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg.write_text(yaml.safe_dump({"data": {"source": str(empty), "image_size": 8}}))
    assert main(args) == 2
    _one_line_error(capsys, "has no class subfolders")


def test_corrupt_token_cache_is_a_clear_error(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    tokens = cache / "tokens.npy"
    tokens.write_bytes(tokens.read_bytes()[:100])
    with pytest.raises(AutonatError, match="token cache .* is corrupt"):
        read_token_cache(cache)
    with pytest.raises(AutonatError, match="token cache .* is corrupt"):
        recipe_from_dict(tiny_recipe(cache, tmp_path / "run"))


# --------------------------------------------------------------------------- 5. untrusted files
FORBIDDEN = [
    (r"\byaml\s*\.\s*(load|unsafe_load|full_load)\s*\(", "yaml.load( (use yaml.safe_load)"),
    (r"weights_only\s*=\s*False", "weights_only=False"),
    (r"importlib\s*\.\s*import_module", "importlib.import_module"),
    (r"\bimport_module\s*\(", "import_module("),
    (r"instantiate_from_config|get_obj_from_str", "instantiate_from_config"),
    (r"\bpickle\s*\.\s*loads?\s*\(", "pickle.load("),
    (r"allow_pickle\s*=\s*True", "allow_pickle=True"),
]


BUILTINS_THAT_RUN_CODE = {"eval", "exec", "compile", "__import__"}


def _code_tokens(path: Path) -> list[str]:
    """The tokens of ``path`` with string literals and comments blanked (docstrings may name the patterns)."""
    blank = {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", -1)}
    with open(path, "rb") as f:
        return ['""' if tok.type in blank else tok.string for tok in tokenize.tokenize(f.readline)
                if tok.type not in (tokenize.ENCODING, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                                    tokenize.DEDENT)]


def _forbidden_in(path: Path) -> list[str]:
    tokens = _code_tokens(path)
    code = " ".join(tokens)
    found = [name for pattern, name in FORBIDDEN if re.search(pattern, code)]
    for i, tok in enumerate(tokens[:-1]):  # eval( / exec( as builtins, not model.eval()
        if tok in BUILTINS_THAT_RUN_CODE and tokens[i + 1] == "(" and (i == 0 or tokens[i - 1] != "."):
            found.append(f"{tok}(")
    return found


def test_the_package_never_evaluates_or_unpickles_untrusted_text():
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / "autonat").rglob("*.py"))
             for name in _forbidden_in(path)]
    assert not found, found


def test_the_source_scan_finds_what_it_looks_for(tmp_path):
    """The scan above is only worth something if it catches the patterns (and ignores docstrings, model.eval())."""
    bad = tmp_path / "bad.py"
    bad.write_text('"""yaml.load( eval( weights_only=False in a docstring is fine."""\n'
                   "model.eval()\nx = eval('1')\ncfg = yaml.load(text)\nt = torch.load(p, weights_only=False)\n"
                   "m = importlib.import_module(name)\n")
    assert sorted(_forbidden_in(bad)) == sorted(["eval(", "yaml.load( (use yaml.safe_load)", "weights_only=False",
                                                 "importlib.import_module", "import_module("])


class _Touch:
    """A pickle payload: unpickling it would create ``marker`` (standing in for any code)."""

    def __init__(self, marker: Path, via_system: bool) -> None:
        self.marker, self.via_system = marker, via_system

    def __reduce__(self):
        if self.via_system:
            return os.system, (f"touch {self.marker}",)
        return Path.touch, (self.marker,)


def _loaders():
    from autonat.evaluation.digit_classifier import load_digit_classifier
    from autonat.io.weights import read_state_dict
    from autonat.tokenizers.loader import load_tokenizer

    return {"weights.read_state_dict": read_state_dict, "tokenizer.load_tokenizer": load_tokenizer,
            "digit_classifier.load_digit_classifier": load_digit_classifier}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("loader", sorted(_loaders()))
@pytest.mark.parametrize("via_system", [True, False])
@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_malicious_pickles_are_refused_without_running(tmp_path, loader, via_system, container):
    import pickle

    marker = tmp_path / "pwned"
    payload = {"state_dict": {"w": torch.zeros(2)}, "x": _Touch(marker, via_system)}
    path = tmp_path / "evil.ckpt"
    if container == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    assert not marker.exists()
    with pytest.raises(AutonatError, match=r"refusing to read|cannot read weights|not a torch weights file"):
        _loaders()[loader](path)
    assert not marker.exists(), "unpickling ran code from the file"


def test_pickled_objects_in_a_token_cache_are_refused(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    marker = tmp_path / "pwned"
    np.save(cache / "labels.npy", np.array([_Touch(marker, False)] * 96, dtype=object), allow_pickle=True)
    with pytest.raises(AutonatError, match="is corrupt.*pickle"):
        read_token_cache(cache)
    assert not marker.exists()


@pytest.mark.parametrize("reader", ["recipe", "strategy"])
def test_yaml_tags_that_build_objects_are_refused(tmp_path, reader):
    from autonat.io.config import load_yaml
    from autonat.strategy.files import load_strategy

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f'cache: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(AutonatError, match="is not valid YAML"):
        (load_yaml if reader == "recipe" else load_strategy)(path)
    assert not marker.exists()
