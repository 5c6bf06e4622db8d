"""The whole command line over a table of a new user's mistakes: one line, exit 2, never a traceback.

Every row runs ``autonat.cli.main.main(argv)`` in-process from a fresh working
folder and asserts what a person sees: exit status 2, exactly one line on
stderr (``autonat: error: ...``, or argparse's one-line ``autonat <command>:
error: ...``), no traceback anywhere, and a fragment of the message naming the
key, path or fix. Besides that line, stderr may hold only ``autonat: warning:``
lines (digit features on a model that is not the demo's are named before any
work); a progress bar there means work was done before the mistake was found.
Rows that point an output at the user's own folder also check that its files
are untouched afterwards.

Placeholders in a row's arguments (``{gen}``, ``{cfg}``, ...) name the tiny
artefacts built once for the module by :func:`world`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import write_tiny_cache, write_tiny_generator, write_tiny_text_generator, write_tiny_tokenizer

#: (id, argv with placeholders, fragment (placeholders too) the one error line must contain). After every row the
#: user's folder, the image folder, ``notes.txt`` and the statistics file are checked to be untouched.
ROWS = [
    # ------------------------------------------------------------------ the command itself
    ("unknown-subcommand", "trian --config {cfg}", "invalid choice: 'trian'"),
    ("no-subcommand", "", "required: command"),
    # ------------------------------------------------------------------ train-tokenizer
    ("tt-steps-zero", "train-tokenizer --config {cfg} tokenizer.steps=0", "tokenizer.steps"),
    ("tt-batch-zero", "train-tokenizer --config {cfg} tokenizer.batch_size=0", "tokenizer.batch_size"),
    ("tt-lr-abc", "train-tokenizer --config {cfg} tokenizer.lr=abc", "tokenizer.lr"),
    ("tt-misspelt-data-key", "train-tokenizer --config {cfg} data.sorce={images}", "sorce"),
    ("tt-missing-folder", "train-tokenizer --config {cfg} data.source=no_such_folder", "no_such_folder"),
    ("tt-image-size-mismatch", "train-tokenizer --config {cfg} data.image_size=16", "image_size"),
    ("tt-missing-config", "train-tokenizer --config missing.yaml", "missing.yaml"),
    ("tt-config-is-folder", "train-tokenizer --config {userdir}", "userdata"),
    ("tt-broken-yaml", "train-tokenizer --config {broken_yaml}", "broken.yaml"),
    ("tt-out-user-folder", "train-tokenizer --config {cfg} --out {userdir}", "not an autonat"),
    ("tt-out-dataset", "train-tokenizer --config {cfg} --out {images}", "not an autonat"),
    ("tt-out-file", "train-tokenizer --config {cfg} --out {file}", "is a file"),
    ("tt-out-under-file", "train-tokenizer --config {cfg} --out {under_file}", "notes.txt"),
    ("tt-out-read-only", "train-tokenizer --config {cfg} --out /proc/autonat-tok", "/proc"),
    ("tt-device-cuda", "train-tokenizer --config {cfg} --device cuda", "cuda"),
    ("tt-device-misspelt", "train-tokenizer --config {cfg} --device cpux", "cpux"),
    ("tt-flag-typo", "train-tokenizer --config {cfg} --ouy x",
     "--ouy; did you mean --ouy -> --out? (see `autonat train-tokenizer --help`)"),
    # ------------------------------------------------------------------ tokenize
    ("tok-out-user-folder", "tokenize --config {cfg} --out {userdir}", "not an autonat"),
    ("tok-out-dataset", "tokenize --config {cfg} --out {images}", "not an autonat"),
    ("tok-out-file", "tokenize --config {cfg} --out {file}", "is a file"),
    ("tok-out-read-only", "tokenize --config {cfg} --out /proc/autonat-cache", "/proc"),
    ("tok-batch-zero", "tokenize --config {cfg} --batch-size 0", "at least 1"),
    ("tok-missing-tokenizer", "tokenize --config {cfg} --tokenizer no_such_tok", "no_such_tok"),
    ("tok-device-misspelt", "tokenize --config {cfg} --device gpu", "gpu"),
    ("tok-unknown-section", "tokenize --config {cfg} tokeniser.steps=3", "tokeniser"),
    ("tok-captions-no-encoder", "tokenize --config {cfg} data.captions={captions}", "text.encoder"),
    ("tok-missing-caption-file", "tokenize --config {cfg} data.captions=no_such.jsonl text.encoder=minilm",
     "no_such.jsonl"),
    ("tok-captions-on-demo", "tokenize --config {cfg} data.source=demo data.captions={captions}", "data.captions"),
    # ------------------------------------------------------------------ train
    ("train-lr-abc", "train --config {cfg} optim.lr=abc", "optim.lr"),
    ("train-steps-ten", "train --config {cfg} train.steps=ten", "train.steps"),
    ("train-size-number", "train --config {cfg} model.size=5", "model.size"),
    ("train-size-unknown", "train --config {cfg} model.size=huge", "huge"),
    ("train-checkpoint-every-zero", "train --config {cfg} train.checkpoint_every=0", "checkpoint_every"),
    ("train-log-every-zero", "train --config {cfg} train.log_every=0", "log_every"),
    ("train-batch-zero", "train --config {cfg} train.batch_size=0", "batch_size"),
    ("train-steps-zero", "train --config {cfg} train.steps=0", "train.steps"),
    ("train-steps-negative", "train --config {cfg} train.steps=-3", "train.steps"),
    ("train-lr-negative", "train --config {cfg} optim.lr=-1", "optim.lr"),
    ("train-unknown-section", "train --config {cfg} trian.steps=2", "trian"),
    ("train-unknown-key", "train --config {cfg} train.stpes=2", "stpes"),
    ("train-override-no-equals", "train --config {cfg} train.steps", "train.steps"),
    ("train-config-binary", "train --config {stats}", "not a text file"),
    ("train-missing-cache", "train --config {cfg} cache=no_such_cache", "no_such_cache"),
    ("train-out-user-folder", "train --config {cfg} train.out_dir={userdir}", "userdata"),
    ("train-out-file", "train --config {cfg} train.out_dir={file}", "notes.txt"),
    ("train-out-read-only", "train --config {cfg} train.out_dir=/proc/autonat-run", "/proc"),
    ("train-flag-typo", "train --confg {cfg}", "--config"),
    ("train-text-encoder-class-cache", "train --config {cfg} text.encoder=minilm", "has no captions"),
    ("train-steps-as-a-flag", "train --config {cfg} --steps 10", "`autonat train --help`"),
    # ------------------------------------------------------------------ sample
    ("sample-missing-checkpoint", "sample --checkpoint no_such_ckpt", "no_such_ckpt"),
    ("sample-run-folder", "sample --checkpoint {run}", "the latest is"),
    ("sample-corrupt-config", "sample --checkpoint {corrupt_gen}", "config.json"),
    ("sample-out-folder", "sample --checkpoint {gen} --out {userdir}", "userdata"),
    ("sample-out-extension", "sample --checkpoint {gen} --out grid.gif", ".gif"),
    ("sample-out-under-file", "sample --checkpoint {gen} --out {under_file}.png", "notes.txt"),
    ("sample-out-read-only", "sample --checkpoint {gen} --out /proc/autonat-grid.png", "/proc"),
    ("sample-npz-folder", "sample --checkpoint {gen} --npz {userdir}", "userdata"),
    ("sample-png-dir-file", "sample --checkpoint {gen} --png-dir {file}", "notes.txt"),
    ("sample-per-class-zero", "sample --checkpoint {gen} --per-class 0", "at least 1"),
    ("sample-n-zero", "sample --checkpoint {gen} --batch-size 0", "at least 1"),
    ("sample-class-name", "sample --checkpoint {gen} --classes zebra", "zebra"),
    ("sample-class-id", "sample --checkpoint {gen} --classes 7", "7"),
    ("sample-strategy-steps-disagree", "sample --checkpoint {gen} --strategy {strategy2} --steps 8", "steps"),
    ("sample-strategy-steps-eight", "sample --checkpoint {gen} --strategy {strategy_eight}", "eight"),
    ("sample-strategy-binary", "sample --checkpoint {gen} --strategy {gen}/model.safetensors", "not a text file"),
    ("sample-missing-strategy", "sample --checkpoint {gen} --strategy no_such.yaml", "no_such.yaml"),
    ("sample-strategy-extension-typo", "sample --checkpoint {gen} --strategy {root}/two_steps.yml",
     "two_steps.yml (did you mean {strategy2}?)"),
    ("sample-checkpoint-name-typo", "sample --checkpoint {gen}x", "(did you mean {gen}?)"),
    ("sample-unknown-schedule", "sample --checkpoint {gen} --schedule cosin", "cosin"),
    ("sample-text-no-prompt", "sample --checkpoint {textgen}", "text-conditional: give it prompts"),
    ("sample-text-given-classes", "sample --checkpoint {textgen} --classes 1", "text-conditional"),
    ("sample-class-model-prompt", "sample --checkpoint {gen} --prompt three", "class-conditional: give it classes"),
    ("sample-prompt-and-classes", "sample --checkpoint {gen} --prompt three --classes 1", "not both"),
    ("sample-empty-prompts-file", "sample --checkpoint {textgen} --prompts {empty_prompts}", "holds no prompt"),
    ("sample-missing-prompts-file", "sample --checkpoint {textgen} --prompts no_such.txt", "no_such.txt"),
    ("sample-text-encoder-moved", "sample --checkpoint {textgen} --prompt x", "pass --text-encoder SPEC"),
    ("sample-per-prompt-zero", "sample --checkpoint {textgen} --prompt x --per-prompt 0", "at least 1"),
    ("eval-text-no-captions", "eval --checkpoint {textgen} {ref} -n 4", "pass --captions FILE"),
    ("eval-missing-caption-file", "eval --checkpoint {textgen} {ref} -n 4 --captions no_such.jsonl", "no_such.jsonl"),
    ("eval-empty-caption-file", "eval --checkpoint {textgen} {ref} -n 4 --captions {empty_prompts}",
     "holds no caption"),
    ("eval-text-encoder-moved", "eval --checkpoint {textgen} {ref} -n 4 --captions {captions}",
     "pass --text-encoder SPEC"),
    ("eval-class-model-captions", "eval --checkpoint {gen} {ref} -n 4 --captions {captions}", "drop --captions"),
    ("search-text-no-captions", "search generation --checkpoint {textgen} --out s {ref} --n-eval 4 --noise-seeds 0",
     "pass --captions FILE"),
    ("sample-corrupt-tokenizer", "sample --checkpoint {gen} --tokenizer {corrupt_tok} --force", "tokenizer.json"),
    ("sample-missing-tokenizer", "sample --checkpoint {gen} --tokenizer no_such_tok", "no_such_tok"),
    ("sample-device-cuda", "sample --checkpoint {gen} --device cuda", "cuda"),
    ("sample-device-misspelt", "sample --checkpoint {gen} --device cpu0", "cpu0"),
    ("sample-seed-negative", "sample --checkpoint {gen} --seed -1", "at least 0"),
    ("sample-flag-typo", "sample --checkpoint {gen} --stepz 8",
     "--stepz 8; did you mean --stepz -> --steps? (see `autonat sample --help`)"),
    # ------------------------------------------------------------------ demo
    ("demo-out-folder", "demo --out {userdir}", "userdata"),
    ("demo-out-extension", "demo --out grid.bmp", ".bmp"),
    ("demo-out-read-only", "demo --out /proc/autonat-demo.png --eval-samples 0", "/proc"),
    ("demo-eval-samples-one", "demo --eval-samples 1", "at least 2"),
    ("demo-eval-samples-negative", "demo --eval-samples -1", "-1"),
    # ------------------------------------------------------------------ eval
    ("eval-n-zero", "eval --checkpoint {gen} {ref} -n 0", "at least 1"),
    ("eval-missing-checkpoint", "eval --checkpoint no_such_ckpt {ref}", "no_such_ckpt"),
    ("eval-missing-reference", "eval --checkpoint {gen} --reference no_such.npz", "no_such.npz"),
    ("eval-reference-folder-typo", "eval --checkpoint {gen} --reference {root}/imagse -n 4",
     "(did you mean {images}?)"),
    ("eval-demo-split-typo", "eval --checkpoint {gen} --reference demo:heldot -n 4", "(did you mean demo:heldout?)"),
    ("eval-metric-typo", "eval --checkpoint {gen} {ref} -n 4 --metrics fdi", "(did you mean fdi -> fid?)"),
    ("eval-results-folder", "eval --checkpoint {gen} {ref} -n 2 --results {userdir}", "userdata"),
    ("eval-results-read-only", "eval --checkpoint {gen} {ref} -n 2 --results /proc/e.jsonl",
     "/proc"),
    ("eval-results-a-binary-file", "eval --images {images} {ref} -n 2 --results {stats}", "not a text file"),
    ("eval-more-than-there-are", "eval --images {images} {ref} -n 1000", "1000"),
    ("eval-unknown-metric", "eval --checkpoint {gen} {ref} --metrics fidd", "fidd"),
    ("eval-no-metric", "eval --images {images} {ref} --metrics ,", "names no metric"),
    ("eval-unknown-extractor", "eval --checkpoint {gen} {ref} --feature-extractor vgg", "vgg"),
    ("eval-device-cuda", "eval --checkpoint {gen} {ref} --device cuda", "cuda"),
    ("eval-images-a-jpeg", "eval --images {grid} {ref}", "not an .npz file"),
    ("eval-reference-a-text-file", "eval --images {images} --reference {file}", "not an .npz file"),
    ("eval-both-sources", "eval --checkpoint {gen} --images {images} {ref}", "--images"),
    # ------------------------------------------------------------------ fid-stats
    ("fid-stats-out-folder", "fid-stats {images} --out {userdir} --feature-extractor digits", "userdata"),
    ("fid-stats-out-read-only", "fid-stats {images} --out /proc/s.npz --feature-extractor digits", "/proc"),
    ("fid-stats-missing-source", "fid-stats no_such_images --out s.npz --feature-extractor digits",
     "no_such_images"),
    ("fid-stats-mixed-sizes", "fid-stats {mixed} --out s.npz --feature-extractor digits --no-progress",
     "10x12"),
    ("fid-stats-batch-zero", "fid-stats {images} --out s.npz --batch-size 0", "at least 1"),
    ("fid-stats-no-out", "fid-stats {images}", "--out"),
    # ------------------------------------------------------------------ search generation
    ("search-gen-iterations-zero", "search generation --checkpoint {gen} {ref} --out s "
     "--iterations 0", "at least 1"),
    ("search-gen-n-eval-zero", "search generation --checkpoint {gen} {ref} --out s --n-eval 0",
     "at least 1"),
    ("search-gen-n-eval-one", "search generation --checkpoint {gen} {ref} --out s --n-eval 1",
     "n-eval"),
    ("search-gen-missing-reference", "search generation --checkpoint {gen} --reference no_such.npz --out s",
     "no_such.npz"),
    ("search-gen-no-reference", "search generation --checkpoint {gen} --out s", "--reference"),
    ("search-gen-out-file", "search generation --checkpoint {gen} {ref} --out {file}",
     "notes.txt"),
    ("search-gen-out-user-folder", "search generation --checkpoint {gen} {ref} --out {userdir}",
     "userdata"),
    ("search-gen-missing-checkpoint", "search generation --checkpoint no_such_ckpt {ref} --out s",
     "no_such_ckpt"),
    ("search-gen-resumed-with-a-typo", "search generation --checkpoint {gen}x {ref} --out {search}", "{gen}x"),
    ("search-gen-strategy-eight", "search generation --checkpoint {gen} {ref} --out s "
     "--strategy {strategy_eight}", "eight"),
    # ------------------------------------------------------------------ search training / alternate
    ("search-train-missing-strategy", "search training --strategy no_such.yaml --config {cfg} --out s "
     "{ref}", "no_such.yaml"),
    ("search-train-steps-zero", "search training --strategy {strategy2} --config {cfg} --out s "
     "{ref} --train-steps 0", "at least 1"),
    ("search-train-unknown-section", "search training --strategy {strategy2} --config {cfg} --out s "
     "{ref} trian.steps=2", "trian"),
    ("search-train-out-user-folder", "search training --strategy {strategy2} --config {cfg} --out {userdir} "
     "{ref}", "userdata"),
    ("search-train-factor-zero", "search training --strategy {strategy2} --config {cfg} --out s {ref} "
     "--factor 0", "--factor 1.5"),
    ("search-train-factor-one", "search training --strategy {strategy2} --config {cfg} --out s {ref} "
     "--factor 1", "above 1"),
    ("search-gen-price-negative", "search generation --checkpoint {gen} {ref} --out s --price -1", ">= 0"),
    ("search-alt-rounds-zero", "search alternate --config {cfg} --out s {ref} --rounds 0",
     "at least 1"),
    ("search-alt-out-file", "search alternate --config {cfg} --out {file} {ref}", "notes.txt"),
    # ------------------------------------------------------------------ strategy
    ("strategy-show-missing", "strategy show no_such.yaml", "no_such.yaml"),
    ("strategy-show-unknown-name", "strategy show cosin", "cosin"),
    ("strategy-show-steps-eight", "strategy show {strategy_eight}", "eight"),
    ("strategy-show-binary-file", "strategy show {stats}", "not a text file"),
    ("strategy-show-steps-zero", "strategy show cosine --steps 0", "at least 1"),
    ("strategy-show-plot-folder", "strategy show cosine --plot {userdir}", "userdata"),
    ("strategy-show-grid-zero", "strategy show cosine --grid 0 4", "grid"),
    ("strategy-show-checkpoint-missing", "strategy show cosine --checkpoint no_such_dir",
     "no_such_dir is not a generator checkpoint"),
    ("strategy-show-checkpoint-and-grid", "strategy show cosine --checkpoint {gen} --grid 4 4",
     "not allowed with"),
    ("strategy-list-flag-typo", "strategy list --all", "--all (see `autonat strategy list --help`)"),
    # ------------------------------------------------------------------ convert
    ("convert-missing-weights", "convert --weights no_such.pth --out conv", "no_such.pth"),
    ("convert-not-weights", "convert --weights {file} --out conv", "notes.txt"),
    ("convert-unknown-kind", "convert --weights {file} --out conv --kind jax", "jax"),
    ("convert-own-checkpoint", "convert --weights {gen}/model.safetensors --kind autonat --out conv",
     "load the checkpoint directory"),
    # ------------------------------------------------------------------ train-digit-classifier
    ("digits-epochs-zero", "train-digit-classifier --out dc --epochs 0", "at least 1"),
    ("digits-seed-negative", "train-digit-classifier --out dc --seed -3", "at least 0"),
    ("digits-out-file", "train-digit-classifier --out {file} --epochs 1", "notes.txt"),
    ("digits-out-user-folder", "train-digit-classifier --out {userdir} --epochs 1", "userdata"),
]


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The tiny artefacts every row may name: a recipe, an image folder, a tokenizer, a cache, a generator."""
    from PIL import Image

    from autonat.cli.main import main

    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    images = root / "images"
    for c, name in enumerate(("circle", "square", "triangle")):
        (images / name).mkdir(parents=True)
        for i in range(4):
            arr = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
            arr[..., c] += 150
            Image.fromarray(arr).save(images / name / f"{i}.png")
    mixed = root / "mixed"  # one image of another size
    shutil.copytree(images, mixed)
    Image.new("RGB", (10, 12)).save(mixed / "square" / "odd.png")
    userdir = root / "userdata"
    (userdir / "sub").mkdir(parents=True)
    (userdir / "thesis.txt").write_text("three years of work")
    (userdir / "sub" / "data.csv").write_text("a,b\n1,2\n")
    grid = root / "grid.jpg"  # one image where a folder or an .npz is wanted
    Image.new("RGB", (8, 8)).save(grid)
    notes = root / "notes.txt"
    notes.write_text("precious")
    tok = write_tiny_tokenizer(root / "tok")
    cache = write_tiny_cache(root / "cache")
    gen = write_tiny_generator(root / "model")
    textgen = write_tiny_text_generator(root / "text")
    empty_prompts = root / "empty.txt"
    empty_prompts.write_text("\n  \n")
    captions = root / "captions.jsonl"
    captions.write_text(json.dumps({"image": "circle/0.png", "caption": "a circle"}) + "\n")
    run = root / "oldrun"  # a training run's folder, given where a checkpoint is wanted
    shutil.copytree(gen, run / "checkpoints" / "step_2")
    corrupt = root / "corrupt" / "generator"
    shutil.copytree(gen, corrupt)
    (corrupt / "config.json").write_text("{not json")
    corrupt_tok = shutil.copytree(tok, root / "corrupt" / "tokenizer")
    (corrupt_tok / "tokenizer.json").write_text("{")
    recipe = {
        "data": {"source": str(images), "image_size": 8},
        "tokenizer": {"out_dir": str(tok), "steps": 2, "batch_size": 4, "restart_every": 10,
                      "vqgan": {"n_embed": 16, "embed_dim": 8, "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                                "attn_resolutions": [], "resolution": 8, "z_channels": 8}},
        "cache": str(cache),
        "model": {"width": 32, "depth": 2, "num_heads": 2},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "train": {"out_dir": str(root / "run"), "steps": 2, "batch_size": 8, "checkpoint_every": 1,
                  "log_every": 1},
    }
    cfg = root / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    broken = root / "broken.yaml"
    broken.write_text("data:\n  source: [unclosed\n")
    strategy2 = root / "two_steps.yaml"
    strategy2.write_text("steps: 2\nmask_ratio: [0.7]\nremask_temp: [2.25]\nsample_temp: [1.0, 1.0]\n"
                         "cfg_scale: [0.0, 0.0]\n")
    strategy_eight = root / "eight.yaml"
    strategy_eight.write_text(strategy2.read_text().replace("steps: 2", "steps: eight"))
    search = root / "search"  # an earlier search, resumed with a mistyped checkpoint
    search.mkdir()
    (search / "inputs.json").write_text(json.dumps({"checkpoint": str(gen.resolve())}))
    stats = root / "stats.npz"
    assert main(["fid-stats", str(images), "--out", str(stats), "--feature-extractor", "digits", "--no-progress"]) == 0
    return {"root": root, "cfg": cfg, "images": images, "userdir": userdir, "file": notes,
            "under_file": notes / "sub" / "out", "tok": tok, "cache": cache, "gen": gen, "corrupt_gen": corrupt,
            "corrupt_tok": corrupt_tok, "run": run, "search": search, "mixed": mixed, "grid": grid,
            "broken_yaml": broken, "strategy2": strategy2, "strategy_eight": strategy_eight, "stats": stats,
            "ref": f"--reference {stats} --feature-extractor digits", "textgen": textgen,
            "empty_prompts": empty_prompts, "captions": captions}


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_a_bad_input_is_one_line_and_exit_2(row, world, tmp_path, monkeypatch, capsys):
    from autonat.cli.main import main

    _, argv, fragment = row
    fragment = fragment.format(**world)
    monkeypatch.chdir(tmp_path)
    watched = {k: _snapshot(world[k]) for k in ("userdir", "images")}
    stats = world["stats"].read_bytes()
    args = argv.format(**world).split()
    try:
        status = main(args)
    except SystemExit as exc:  # argparse's errors
        status = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    assert status == 2, (status, err)
    lines = [line for line in err.strip().splitlines() if not line.startswith("autonat: warning: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("autonat") and ": error: " in lines[0], lines[0]
    assert fragment in lines[0], lines[0]
    assert world["file"].read_text() == "precious" and world["stats"].read_bytes() == stats
    for k, before in watched.items():
        assert _snapshot(world[k]) == before, f"{k} changed"


def test_a_missing_path_is_matched_only_to_a_close_name_beside_it(tmp_path):
    from autonat.errors import path_hint

    (tmp_path / "strategy.yaml").write_text("steps: 2\n")
    (tmp_path / "step_40").mkdir()
    assert path_hint(tmp_path / "strategy.yml") == f" (did you mean {tmp_path / 'strategy.yaml'}?)"
    assert path_hint(tmp_path / "step_4") == f" (did you mean {tmp_path / 'step_40'}?)"
    assert path_hint(tmp_path / "zebra.txt") == ""  # nothing close
    assert path_hint(tmp_path / "no_folder" / "strategy.yml") == ""  # no folder to look in
