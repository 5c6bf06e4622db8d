import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_recipe, write_tiny_cache
from safetensors.torch import load_file

from autonat.data.token_cache import read_token_cache
from autonat.errors import AutonatError
from autonat.generator.checkpoint import load_generator
from autonat.training.loop import batch_indices, train
from autonat.training.recipe import recipe_from_dict

ROOT = Path(__file__).resolve().parents[1]


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_token_cache_round_trip(tmp_path):
    cache = read_token_cache(write_tiny_cache(tmp_path / "cache"))
    assert cache.tokens.dtype == np.uint16 and cache.tokens.shape == (96, 16)
    assert cache.grid == (4, 4) and cache.num_classes == 3 and len(cache) == 96


def test_batches_cover_each_epoch_once():
    seen = np.concatenate([batch_indices(s, 10, 30, seed=0) for s in range(3)])
    assert sorted(seen.tolist()) == list(range(30))


@pytest.mark.slow
def test_short_run_lowers_loss_and_writes_checkpoints(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    final = train(recipe_from_dict(tiny_recipe(cache, tmp_path / "run", steps=40)))
    losses = _losses(tmp_path / "run")
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3
    gen = load_generator(final)
    assert gen.config.codebook_size == 16 and gen.config.grid == (4, 4)
    assert (tmp_path / "run" / "curves.png").exists()
    with open(tmp_path / "run" / "log.csv") as f:
        assert {"acc1", "acc5", "masked_frac", "lr"} <= set(next(csv.DictReader(f)))


@pytest.mark.slow
def test_resume_gives_the_same_trajectory(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    straight = train(recipe_from_dict(tiny_recipe(cache, tmp_path / "a", steps=20)))
    train(recipe_from_dict(tiny_recipe(cache, tmp_path / "b", steps=10)))
    resumed = train(recipe_from_dict(tiny_recipe(cache, tmp_path / "b", steps=20)))
    assert _losses(tmp_path / "a") == pytest.approx(_losses(tmp_path / "b"), abs=1e-6)
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_recipe_errors_are_clear(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    bad = tiny_recipe(cache, tmp_path / "run")
    bad["optim"]["learning_rate"] = 1.0
    with pytest.raises(AutonatError, match="unknown key.*learning_rate"):
        recipe_from_dict(bad)
    with pytest.raises(AutonatError, match="not a token cache"):
        recipe_from_dict(tiny_recipe(tmp_path / "nowhere", tmp_path / "run"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_accelerate_launch(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    import yaml

    recipe = tiny_recipe(cache, tmp_path / "run", steps=6)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `--cpu` would start one process (accelerate runs several CPU processes only under MPI);
    # `--multi_gpu` starts two, and without CUDA they train on the CPU through gloo.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           str(ROOT / "tools" / "train.py"), "--config", str(tmp_path / "r.yaml")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    gen = load_generator(tmp_path / "run" / "checkpoints" / "step_6")
    assert gen.meta["training"]["num_processes"] == 2
    assert len(_losses(tmp_path / "run")) == 3
    assert all(torch.isfinite(p).all() for p in gen.model.parameters())


def test_mixed_precision_auto_is_full_precision_without_cuda_and_bad_names_refused(monkeypatch):
    from autonat.training.recipe import resolve_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_mixed_precision("auto") == "no"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_mixed_precision("auto") == "bf16"
    assert resolve_mixed_precision("fp16") == "fp16"
    with pytest.raises(AutonatError, match="mixed_precision"):
        resolve_mixed_precision("half")
