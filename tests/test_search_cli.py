"""The search commands end to end on a tiny model with tiny N."""
import json

import pytest
import yaml
from helpers import (
    tiny_recipe,
    write_tiny_cache,
    write_tiny_generator,
    write_tiny_tokenizer,
)

from autonat.cli.main import main
from autonat.strategy.files import load_strategy
from autonat.tokenizers.base import fingerprint

COMMON = ["--reference", "demo:heldout", "--n-eval", "12", "--batch-size", "12"]


@pytest.mark.slow
def test_search_generation_end_to_end_and_resume(tmp_path):
    ckpt = write_tiny_generator(tmp_path)
    out = tmp_path / "search"
    argv = ["search", "generation", "--checkpoint", str(ckpt), "--steps", "3", "--iterations", "2",
            "--method", "spsa", "--out", str(out), *COMMON]
    assert main(argv) == 0
    assert load_strategy(out / "strategy.yaml").steps == 3
    assert (out / "search.png").exists() and (out / "best_strategy.yaml").exists()
    rows = (out / "history.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 steps
    state = json.loads((out / "state.json").read_text())
    assert state["images"] == 2 * 2 * 12  # SPSA: two FIDs per step
    # asking for more iterations continues from the saved state
    assert main([*argv[:7], "3", *argv[8:]]) == 0
    assert len((out / "history.csv").read_text().strip().splitlines()) == 4


@pytest.mark.slow
def test_search_training_and_alternate_end_to_end(tmp_path):
    tok = write_tiny_tokenizer(tmp_path / "tok")
    cache = write_tiny_cache(tmp_path / "cache")
    meta = json.loads((cache / "meta.json").read_text())
    meta["tokenizer"] = {"path": str(tok), "fingerprint": fingerprint(tok)}
    (cache / "meta.json").write_text(json.dumps(meta))
    recipe = tiny_recipe(cache, tmp_path / "unused", steps=4)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    strategy = tmp_path / "s.yaml"
    from autonat.strategy.core import maskgit_cosine
    from autonat.strategy.files import save_strategy

    save_strategy(maskgit_cosine(3), strategy)
    out = tmp_path / "train_search"
    assert main(["search", "training", "--config", str(tmp_path / "r.yaml"), "--strategy", str(strategy),
                 "--train-steps", "4", "--max-moves", "1", "--factor", "2", "--out", str(out), *COMMON]) == 0
    trials = json.loads((out / "trials.json").read_text())
    assert len(trials) >= 3 and {"alpha", "beta", "fid"} <= set(trials[0])

    alt = tmp_path / "alternate"
    assert main(["search", "alternate", "--config", str(tmp_path / "r.yaml"), "--rounds", "1", "--steps", "3",
                 "--iterations", "1", "--train-steps", "4", "--max-moves", "1", "--out", str(alt), *COMMON]) == 0
    summary = json.loads((alt / "summary.json").read_text())
    assert len(summary) == 1 and load_strategy(alt / "strategy.yaml").steps == 3
