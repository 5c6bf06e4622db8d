"""Identity checks: tokenizer fingerprints, a run's cache, a search's inputs, the output lock, portable paths."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_recipe, write_tiny_cache, write_tiny_generator

from autonat.cli.main import main
from autonat.errors import AutonatError
from autonat.io.identity import portable_path, resolve_recorded
from autonat.io.lock import LOCK_FILE, run_lock
from autonat.search.generation import SearchConfig, StrategySearch, check_search_inputs, search_inputs
from autonat.search.objective import objective_inputs
from autonat.search.training import LineSearchConfig, TrainingStrategySearch
from autonat.strategy.core import autonat_init
from autonat.tokenizers.base import fingerprint
from autonat.training.loop import train
from autonat.training.recipe import recipe_from_dict

SAMPLE = ["--per-class", "1", "--steps", "2", "--device", "cpu"]


def _retrain_in_place(path: Path, seed: int = 1) -> None:
    """Replace the tiny tokenizer at ``path`` by one with other weights (same architecture)."""
    from autonat.tokenizers.taming import VQGAN, VQGANConfig
    from autonat.tokenizers.training import save_tokenizer

    torch.manual_seed(seed)
    vq = VQGANConfig(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                     resolution=8, z_channels=8)
    save_tokenizer(VQGAN(vq), path)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("autonat: error: ") and len(err.splitlines()) == 1, err
    return err


# --------------------------------------------------------------------------- tokenizer fingerprints
def test_a_retrained_tokenizer_is_refused_for_sampling_and_force_proceeds(tmp_path, capsys):
    ckpt = write_tiny_generator(tmp_path)
    before = fingerprint(tmp_path / "tokenizer")
    _retrain_in_place(tmp_path / "tokenizer")
    after = fingerprint(tmp_path / "tokenizer")
    assert before != after

    assert main(["sample", "--checkpoint", str(ckpt), "--out", str(tmp_path / "a.png"), *SAMPLE]) == 2
    err = _error_line(capsys)
    assert before in err and after in err and "--force" in err
    assert not (tmp_path / "a.png").exists()

    assert main(["sample", "--checkpoint", str(ckpt), "--out", str(tmp_path / "b.png"), *SAMPLE, "--force"]) == 0
    assert "warning" in capsys.readouterr().err
    assert (tmp_path / "b.png").exists()


def test_a_checkpoint_without_a_tokenizer_fingerprint_loads(tmp_path):
    from autonat.sampling.pipeline import Pipeline

    ckpt = write_tiny_generator(tmp_path)
    config = json.loads((ckpt / "config.json").read_text())
    del config["tokenizer"]["fingerprint"]  # as converted released weights record it
    (ckpt / "config.json").write_text(json.dumps(config))
    _retrain_in_place(tmp_path / "tokenizer")
    assert Pipeline.load(ckpt).tokenizer.codebook_size == 16


def _cache_of_tokenizer(path: Path, tokenizer: Path, n: int = 96) -> Path:
    """A tiny token cache recording ``tokenizer`` (its real fingerprint) as the one that made it."""
    write_tiny_cache(path, n=n)
    meta = json.loads((path / "meta.json").read_text())
    meta["tokenizer"] = {"path": os.path.relpath(tokenizer, path), "fingerprint": fingerprint(tokenizer)}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def test_training_on_a_cache_whose_tokenizer_was_retrained_is_refused(tmp_path, capsys):
    write_tiny_generator(tmp_path)
    cache = _cache_of_tokenizer(tmp_path / "cache", tmp_path / "tokenizer")
    _retrain_in_place(tmp_path / "tokenizer")
    recipe = tiny_recipe(cache, tmp_path / "run", steps=2, checkpoint_every=2)
    with pytest.raises(AutonatError, match="token cache .* fingerprint .*autonat tokenize.*--force"):
        train(recipe_from_dict(recipe))
    assert not (tmp_path / "run" / "checkpoints").exists()
    final = train(recipe_from_dict(recipe), force=True)
    assert "warning" in capsys.readouterr().err
    # the checkpoint records the tokenizer relative to itself
    recorded = json.loads((final / "config.json").read_text())["tokenizer"]["path"]
    assert not Path(recorded).is_absolute() and (final / recorded).resolve() == (tmp_path / "tokenizer").resolve()


# --------------------------------------------------------------------------- resume
def test_resume_with_another_cache_is_refused(tmp_path):
    first, other = write_tiny_cache(tmp_path / "cache_a"), write_tiny_cache(tmp_path / "cache_b", n=48)
    run = tmp_path / "run"
    train(recipe_from_dict(tiny_recipe(first, run, steps=4, checkpoint_every=2)))
    assert json.loads((run / "cache.json").read_text())["num_items"] == 96
    with pytest.raises(AutonatError, match=r"training run .* other inputs \(cache .*num_items 96 now 48.*"
                                           r"train\.resume=false"):
        train(recipe_from_dict(tiny_recipe(other, run, steps=8, checkpoint_every=2)))
    # the same cache resumes; starting over on the other cache is allowed and re-records it
    train(recipe_from_dict(tiny_recipe(first, run, steps=6, checkpoint_every=2)))
    train(recipe_from_dict(tiny_recipe(other, run, steps=2, checkpoint_every=2, resume=False)))
    assert json.loads((run / "cache.json").read_text())["num_items"] == 48


# --------------------------------------------------------------------------- search directories
def _quadratic(strategy, seed):
    return float(np.sum(np.asarray(strategy.sample_temp) - 1.0) ** 2)


def _search(out, n_eval, inputs=None):
    return StrategySearch(_quadratic, autonat_init(3), SearchConfig(steps=1, method="spsa"), out, n_eval, inputs)


def test_a_search_resumed_with_another_n_is_refused(tmp_path):
    out = tmp_path / "search"
    _search(out, 10, {"checkpoint": "a"}).run(progress=False)
    with pytest.raises(AutonatError, match=r"search in .* other inputs \(n_eval 10 now 20\); give another --out"):
        _search(out, 20, {"checkpoint": "a"}).run(progress=False)
    with pytest.raises(AutonatError, match="checkpoint 'a' now 'b'"):
        _search(out, 10, {"checkpoint": "b"}).run(progress=False)
    _search(out, 10, {"checkpoint": "a"}).run(progress=False)  # the same inputs resume


def test_a_search_directory_records_the_checkpoint_content(tmp_path):
    a = write_tiny_generator(tmp_path / "a")
    inputs = objective_inputs(a, "demo:heldout")
    assert inputs["checkpoint_fingerprint"] == fingerprint(a / "model.safetensors")
    config = SearchConfig(steps=1)
    check_search_inputs(tmp_path / "s", search_inputs(inputs, 12, autonat_init(3), config))
    torch.manual_seed(5)
    from autonat.generator.checkpoint import load_generator, save_generator

    gen = load_generator(a)
    torch.nn.init.normal_(next(gen.model.parameters()))
    save_generator(a, gen.model, gen.config, gen.tokenizer)  # retrained in place: same path, other weights
    changed = search_inputs(objective_inputs(a, "demo:heldout"), 12, autonat_init(3), config)
    with pytest.raises(AutonatError, match="checkpoint_fingerprint"):
        check_search_inputs(tmp_path / "s", changed)


def test_a_search_that_fails_on_a_missing_reference_records_nothing_and_the_fixed_command_runs(
        tmp_path, tiny_image_folder, capsys):
    gen = write_tiny_generator(tmp_path / "m")
    stats, out = tmp_path / "stats.npz", tmp_path / "s"
    search = ["search", "generation", "--checkpoint", str(gen), "--reference", str(stats), "--out", str(out),
              "--n-eval", "4", "--iterations", "1", "--steps", "2", "--method", "spsa", "--noise-seeds", "0"]
    assert main(search) == 2 and "no such image folder or .npz file" in capsys.readouterr().err
    assert not (out / "inputs.json").exists()  # only the compare ran: nothing recorded from the failed run
    assert main(["fid-stats", str(tiny_image_folder), "--out", str(stats), "--feature-extractor", "digits",
                 "--no-progress"]) == 0
    assert main(search) == 0
    assert json.loads((out / "inputs.json").read_text())["reference"] == str(stats.resolve())


def test_a_training_search_resumed_with_other_train_steps_is_refused(tmp_path):
    def trial(alpha, beta):
        return (alpha - 4) ** 2 + beta

    cfg = LineSearchConfig(alpha=4.0, beta=1.0, max_moves=1)
    TrainingStrategySearch(trial, cfg, tmp_path, {"train_steps": 4, "n_eval": 10}).run()
    with pytest.raises(AutonatError, match="train_steps 4 now 8"):
        TrainingStrategySearch(trial, cfg, tmp_path, {"train_steps": 8, "n_eval": 10}).run()


# --------------------------------------------------------------------------- the output lock
HOLDER = """
import sys, time
from autonat.io.lock import run_lock
with run_lock(sys.argv[1], beside=sys.argv[2] == "beside"):
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold_lock(folder: Path, where: str = "inside") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), where], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_run_into_a_locked_folder_is_refused_until_the_first_is_killed(tmp_path):
    run = tmp_path / "run"
    holder = _hold_lock(run)
    try:
        with pytest.raises(AutonatError, match=rf"another autonat run is using .*run \(pid {holder.pid}\)"):
            with run_lock(run):
                pass
        recipe = tiny_recipe(write_tiny_cache(tmp_path / "cache"), run, steps=2, checkpoint_every=2)
        with pytest.raises(AutonatError, match="another autonat run"):
            train(recipe_from_dict(recipe))
        assert not (run / "checkpoints").exists()
        with pytest.raises(AutonatError, match="another autonat run"):
            _search(run, 10).run(progress=False)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (run / LOCK_FILE).exists()  # left behind by the killed run, and no obstacle:
    assert train(recipe_from_dict(recipe)) is not None


def test_a_second_tokenizer_training_into_one_folder_is_refused(tmp_path, tiny_vqgan_config):
    from autonat.tokenizers.training import TokenizerTrainConfig, train_tokenizer

    data = torch.utils.data.TensorDataset(torch.rand(16, 3, 8, 8), torch.zeros(16, dtype=torch.long))
    config = TokenizerTrainConfig(vqgan=tiny_vqgan_config, steps=2, batch_size=8)
    holder = _hold_lock(tmp_path / "tok", "beside")  # the tokenizer folder is replaced whole: the lock sits beside it
    try:
        with pytest.raises(AutonatError, match=rf"another autonat run is using .*tok \(pid {holder.pid}\)"):
            train_tokenizer(config, data, tmp_path / "tok")
        assert not (tmp_path / "tok").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    train_tokenizer(config, data, tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir() if p.name.endswith("lock")) == []


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with run_lock(tmp_path / "out"):
        with run_lock(tmp_path / "out"):  # a library call inside a command that holds the folder
            pass
    holder = _hold_lock(tmp_path / "out")  # released: another process takes it at once
    holder.kill()
    holder.wait(timeout=30)


def test_a_file_where_the_output_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(AutonatError, match="is a file"):
        with run_lock(tmp_path / "notes.txt"):
            pass
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- portable paths
def test_sampling_works_from_another_working_directory(tmp_path, monkeypatch, capsys):
    ckpt = write_tiny_generator(tmp_path / "models")
    assert json.loads((ckpt / "config.json").read_text())["tokenizer"]["path"] == "../tokenizer"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["sample", "--checkpoint", str(ckpt), "--out", "grid.png", *SAMPLE]) == 0, capsys.readouterr().err
    assert (elsewhere / "grid.png").exists()


def test_the_shipped_demo_checkpoint_resolves_from_anywhere(tmp_path, monkeypatch):
    from autonat.generator.checkpoint import read_generator_config
    from autonat.sampling.pipeline import Pipeline

    demo = Path(__file__).resolve().parent.parent / "autonat" / "assets" / "demo" / "generator"
    assert read_generator_config(demo)["tokenizer"]["path"] == "../tokenizer"
    monkeypatch.chdir(tmp_path)
    assert Pipeline.load(demo).tokenizer.codebook_size == 64


def test_recorded_paths_are_relative_within_a_tree_absolute_across_trees(tmp_path, monkeypatch):
    assert portable_path(tmp_path / "tok", tmp_path / "runs" / "ckpt") == os.path.join("..", "..", "tok")
    assert portable_path("/opt/tokenizer", "/home/user/ckpt") == "/opt/tokenizer"
    # an old record, relative to the directory the command ran in, still resolves from there
    (tmp_path / "tok").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_recorded("tok", tmp_path / "runs" / "ckpt") == Path("tok")
    assert resolve_recorded("missing", tmp_path) is None


def test_a_token_cache_records_its_tokenizer_relative_to_itself(tmp_path, monkeypatch):
    from autonat.data.token_cache import read_token_cache, write_token_cache

    write_tiny_generator(tmp_path)
    monkeypatch.chdir(tmp_path)
    meta = {"tokenizer": {"path": "tokenizer", "fingerprint": fingerprint("tokenizer")}, "grid": [4, 4],
            "codebook_size": 16, "num_classes": 3}
    write_token_cache("data/cache", np.zeros((3, 16), int), np.arange(3), meta)
    assert json.loads(Path("data/cache/meta.json").read_text())["tokenizer"]["path"] == "../../tokenizer"
    monkeypatch.chdir(tmp_path / "data")
    found = read_token_cache(tmp_path / "data" / "cache").tokenizer_path()
    assert found is not None and found.resolve() == (tmp_path / "tokenizer").resolve()


def test_a_killed_holder_leaves_no_stale_lock_for_the_cli(tmp_path, capsys):
    """``autonat train`` into a folder held by a live process is one line; after SIGKILL it runs."""
    import yaml

    cache = write_tiny_cache(tmp_path / "cache")
    run = tmp_path / "run"
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tiny_recipe(cache, run, steps=2, checkpoint_every=2)))
    holder = _hold_lock(run)
    try:
        assert main(["train", "--config", str(tmp_path / "r.yaml")]) == 2
        assert f"(pid {holder.pid})" in _error_line(capsys)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    assert main(["train", "--config", str(tmp_path / "r.yaml")]) == 0
