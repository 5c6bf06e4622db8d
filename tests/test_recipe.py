"""The typed recipe: every section checked once, before any work, each mistake one line naming the key."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from helpers import tiny_recipe, write_tiny_cache

from autonat.cli.main import main
from autonat.data.token_cache import read_token_cache
from autonat.errors import AutonatError
from autonat.io.config import apply_overrides, build
from autonat.training.recipe import (
    ModelSection,
    RecipeFile,
    is_run_dir,
    load_recipe,
    parse_recipe,
    recipe_from_dict,
)

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, folder: Path) -> dict:
    """Every section, as tests/test_cli.py writes it: 8 px images, a 2x-downsampling tokenizer, a tiny model."""
    return {
        "data": {"source": str(folder), "image_size": 8},
        "tokenizer": {"out_dir": str(tmp_path / "tok"), "steps": 2, "batch_size": 4, "restart_every": 10,
                      "vqgan": {"n_embed": 16, "embed_dim": 8, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                                "attn_resolutions": [], "resolution": 8, "z_channels": 8}},
        "cache": str(write_tiny_cache(tmp_path / "cache")),
        "model": {"width": 32, "depth": 2, "num_heads": 2},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"out_dir": str(tmp_path / "run"), "steps": 2, "batch_size": 6, "checkpoint_every": 2,
                  "log_every": 1},
    }


def _without(section: str, key: str | None = None):
    """A recipe edit removing ``section`` (or its ``key``)."""
    def edit(d: dict, tmp: Path) -> None:
        if key is None:
            del d[section]
        else:
            del d[section][key]
    return edit


def _user_folder(name: str):
    """A recipe edit pointing an output at a folder holding a user's file (made under the test's tmp dir)."""
    def edit(d: dict, tmp: Path) -> None:
        folder = tmp / name
        folder.mkdir()
        (folder / "thesis.txt").write_text("keep me")
        section, key = {"user_run": ("train", "out_dir"), "user_tok": ("tokenizer", "out_dir")}[name]
        d[section][key] = str(folder)
    return edit


# (command, overrides, recipe edit, the words the one-line error must hold)
BAD = [
    ("train", ["trian.steps=2"], None, "unknown section 'trian' in the recipe (did you mean 'train'?)"),
    ("train", ["data.sorce=x"], None, "unknown key 'sorce' in data (did you mean 'source'?); known: captions, "
                                      "crop, hflip, image_size, resize, source"),
    ("train", ["tokenizer.vqgan.n_embd=16"], None, "unknown key 'n_embd' in tokenizer.vqgan (did you mean 'n_embed'?)"),
    ("train", ["model.codebook_size=16"], None, "unknown key 'codebook_size' in model"),
    ("train", ["optim.lr=abc"], None, "optim.lr: expected a number, got 'abc'"),
    ("train", ["train.steps=ten"], None, "train.steps: expected an integer, got 'ten'"),
    ("train", ["model.size=5"], None, "model.size: expected text, got 5"),
    ("train", ["model.size=huge"], None, "model.size: unknown size 'huge'; choose one of autonat-l, autonat-s, tiny"),
    ("train", ["data.hflip=maybe"], None, "data.hflip: expected true or false, got 'maybe'"),
    ("train", ["optim.betas=[0.9]"], None, "optim.betas: expected a list of 2 numbers"),
    ("train", ["optim=3"], None, "optim: expected a section of key: value lines, got 3"),
    ("train", ["train.mixed_precision=no"], None, "train.mixed_precision: expected text, got False"),
    ("train", ["train.mixed_precision=fp8"], None, "train.mixed_precision: unknown value 'fp8'"),
    ("train", ["train.steps=0"], None, "train.steps: must be >= 1, got 0"),
    ("train", ["train.steps=-5"], None, "train.steps: must be >= 1, got -5"),
    ("train", ["train.checkpoint_every=0"], None, "train.checkpoint_every: must be >= 1, got 0"),
    ("train", ["train.log_every=0"], None, "train.log_every: must be >= 1, got 0"),
    ("train", ["train.batch_size=0"], None, "train.batch_size: must be >= 1, got 0"),
    ("train", ["train.ema_decay=1.5"], None, "train.ema_decay: must be in [0, 1), got 1.5"),
    ("train", ["optim.lr=-1"], None, "optim.lr: must be positive, got -1.0"),
    ("train", ["optim.betas=[0.9, 1.0]"], None, "optim.betas: must be in [0, 1), got (0.9, 1.0)"),
    ("train", ["masking.alpha=0"], None, "masking.alpha: must be positive, got 0.0"),
    ("train", ["masking.label_smoothing=1"], None, "masking.label_smoothing: must be in [0, 1), got 1.0"),
    ("train", ["masking.p_uncond=2"], None, "masking.p_uncond: must be in [0, 1], got 2.0"),
    ("train", ["model.depth=3"], None, "model.depth: must be even"),
    ("train", ["model.num_heads=3"], None, "model.width: 32 is not divisible by num_heads 3"),
    ("train", ["model.dropout=1"], None, "model.dropout: must be in [0, 1), got 1.0"),
    ("train", ["cache.x=1"], None, "override 'cache.x=1': cache is not a section"),
    ("train", ["train.steps"], None, "override 'train.steps' must look like key.sub=value"),
    ("train", [], _without("cache"), "`autonat train` needs cache in the recipe"),
    ("train", [], _user_folder("user_run"), "is not an autonat training run"),
    ("train-tokenizer", ["tokenizer.steps=0"], None, "tokenizer.steps: must be >= 1, got 0"),
    ("train-tokenizer", ["tokenizer.batch_size=0"], None, "tokenizer.batch_size: must be >= 1, got 0"),
    ("train-tokenizer", ["tokenizer.vqgan.resolution=9"], None,
     "tokenizer.vqgan.resolution: 9 is not divisible by the downsampling 2"),
    ("train-tokenizer", ["tokenizer.vqgan.ch_mult=[]"], None, "tokenizer.vqgan.ch_mult: is empty"),
    ("train-tokenizer", ["tokenizer.vqgan.ch=16"], None,
     "tokenizer.vqgan.ch: 16 is not a multiple of 32 (taming's GroupNorm has 32 groups); use 32"),
    ("train-tokenizer", ["data.image_size=16"], None, "data.image_size is 16 px but tokenizer.vqgan.resolution is 8"),
    ("train-tokenizer", ["data.source=demo", "data.image_size=null"], None,
     "the demo digits are 32 px but tokenizer.vqgan.resolution is 8"),
    ("train-tokenizer", ["data.source=demo"], None, "data.image_size: the demo digits are 32 px, got 8"),
    ("train-tokenizer", [], _without("data", "source"), "data.source is missing; write `source: demo`"),
    ("train-tokenizer", [], _without("data"), "`autonat train-tokenizer` needs data in the recipe"),
    ("train-tokenizer", [], _user_folder("user_tok"), "is not an autonat tokenizer"),
    ("tokenize", [], _without("data"), "`autonat tokenize` needs data in the recipe"),
    ("tokenize", ["data.image_size=0"], None, "data.image_size: must be >= 1, got 0"),
]


@pytest.mark.parametrize("command, overrides, edit, words", BAD, ids=[" ".join(r[1]) or r[3][:30] for r in BAD])
def test_a_bad_recipe_is_one_line_naming_the_key_before_any_work(
        tmp_path, tiny_image_folder, capsys, command, overrides, edit, words):
    recipe = _recipe(tmp_path, tiny_image_folder)
    if edit is not None:
        edit(recipe, tmp_path)
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    assert main([command, "--config", str(cfg), *overrides]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("autonat: error: ") and len(err.splitlines()) == 1, err
    assert words in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "tok").exists()  # nothing was started
    for folder in tmp_path.glob("user_*"):
        assert [p.name for p in folder.iterdir()] == ["thesis.txt"]


def test_the_demo_recipe_parses_with_every_section():
    recipe = load_recipe(ROOT / "configs" / "demo_mnist.yaml")
    assert recipe.data.source == "demo" and recipe.data.is_demo and recipe.tokenizer_image_size() == 32
    assert recipe.tokenizer.vqgan.ch_mult == (1, 2, 2) and recipe.tokenizer.out_dir == "runs/demo/tokenizer"
    assert recipe.tokenizer.train_config().steps == 600 and not hasattr(recipe.tokenizer.train_config(), "out_dir")
    assert recipe.model.architecture() == {"width": 128, "depth": 4, "num_heads": 4, "mlp_ratio": 4.0,
                                           "dropout": 0.1}
    assert recipe.optim.betas == (0.99, 0.99) and recipe.train.mixed_precision == "no"
    assert recipe.cache == "runs/demo/tokens"


def test_overrides_are_typed_and_sections_frozen():
    recipe = load_recipe(ROOT / "configs" / "demo_mnist.yaml", ["optim.lr=3e-4", "train.steps=7", "model.width=64"])
    assert recipe.optim.lr == 3e-4 and isinstance(recipe.optim.lr, float)  # YAML 1.1 reads 3e-4 as text
    assert recipe.train.steps == 7 and recipe.model.architecture()["width"] == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.train.steps = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.optim = None


def test_earlier_recipes_without_data_still_train(tmp_path):
    """tests/helpers.py tiny_recipe has no data or tokenizer section: `train` needs only cache and the rest."""
    cache = write_tiny_cache(tmp_path / "cache", codebook=16, grid=(4, 4), classes=3)
    recipe = recipe_from_dict(tiny_recipe(cache, tmp_path / "run"))
    assert recipe.model.codebook_size == 16 and recipe.model.grid == (4, 4) and recipe.model.num_classes == 3
    assert recipe.model.width == 32 and recipe.train.steps == 20
    assert parse_recipe(tiny_recipe(cache, tmp_path / "run")).data is None
    with pytest.raises(AutonatError, match="unknown section 'trian'"):  # the training search's path
        recipe_from_dict(apply_overrides(tiny_recipe(cache, tmp_path / "run"), ["trian.steps=2"]))


def test_model_section_named_size_then_fields_then_cache(tmp_path):
    cache = read_token_cache(write_tiny_cache(tmp_path / "cache"))
    config = build(ModelSection, {"size": "TINY", "depth": 2}, "model").config(cache)
    assert (config.width, config.depth, config.num_heads, config.mlp_ratio) == (128, 2, 4, 4.0)
    assert (config.codebook_size, config.grid, config.num_classes) == (16, (4, 4), 3)


def test_builder_types_lists_optional_and_nested():
    recipe = build(RecipeFile, {"tokenizer": {"vqgan": {"ch_mult": [1, 2], "resolution": 8, "attn_resolutions": []}},
                                "optim": {"lr": 1, "betas": [0, 0.5]}, "data": None})
    assert recipe.tokenizer.vqgan.ch_mult == (1, 2) and recipe.tokenizer.vqgan.attn_resolutions == ()
    assert recipe.optim.lr == 1.0 and isinstance(recipe.optim.lr, float) and recipe.optim.betas == (0.0, 0.5)
    assert recipe.data is None and recipe.cache is None
    with pytest.raises(AutonatError, match=r"^train.resume: expected true or false, got 1$"):
        build(RecipeFile, {"train": {"resume": 1}})
    with pytest.raises(AutonatError, match=r"^train.seed: expected an integer, got True$"):
        build(RecipeFile, {"train": {"seed": True}})


def test_a_run_folder_of_ours_is_accepted_and_a_users_folder_refused(tmp_path):
    cache = write_tiny_cache(tmp_path / "cache")
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("step,loss\n")
    assert is_run_dir(run) and recipe_from_dict(tiny_recipe(cache, run)).train.out_dir == str(run)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "photo.png").write_bytes(b"x")
    with pytest.raises(AutonatError, match="already exists and is not an autonat training run"):
        recipe_from_dict(tiny_recipe(cache, mine))
    assert (mine / "photo.png").read_bytes() == b"x"


def test_start_of_run_summaries(tmp_path, tiny_image_folder, capsys):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(_recipe(tmp_path, tiny_image_folder)))
    assert main(["train-tokenizer", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("train-tokenizer:"))
    assert f"data {tiny_image_folder} (" in line and " images, 8 px)" in line
    assert "codebook 16 codes of 8 dims, 4x4 tokens per image; 2 steps of batch 4" in line
    assert f"output {tmp_path / 'tok'}" in line
    assert main(["train", "--config", str(cfg)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("train: ")]
    assert len(lines) == 1
    assert f"data {tmp_path / 'cache'} (96 items, 4x4 tokens, codebook 16)" in lines[0]
    assert "M parameters (width 32, 2+1 blocks); 1 process(es) on cpu; 2 steps of global batch 6" in lines[0]
    assert lines[0].endswith(f"output {tmp_path / 'run'}")
