"""Honest evaluation defaults and strict strategy files.

No demo reference for a model of other images, the feature extractor a
statistics file records, a warning when digit-classifier features meet images
that are not the demo's digits, no silent lowering of ``-n``, and strategy
files whose every key and value is checked.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import write_tiny_generator

from autonat.errors import AutonatError
from autonat.strategy.files import check_steps, load_strategy, save_strategy

WARNING = "autonat: warning: digit-classifier features"


# --------------------------------------------------------------------------- shared pieces
def grey_digits_like(n: int, seed: int = 0) -> np.ndarray:
    """``n`` synthetic 32x32 grey images ``[n, 32, 32, 3]`` (a bright blob on black, like a digit)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 32, 32), np.float64)
    yy, xx = np.mgrid[:32, :32]
    for i in range(n):
        cy, cx = rng.uniform(10, 22, 2)
        x[i] = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / rng.uniform(10, 40))
    grey = np.clip(np.round(x + rng.normal(0, 8, x.shape)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def digits():
    from autonat.evaluation.features import DIGITS, load_feature_extractor

    return load_feature_extractor(DIGITS)


@pytest.fixture(scope="module")
def stats_and_images(tmp_path_factory, digits):
    """Digit-classifier statistics of 24 synthetic grey images (saved as `autonat fid-stats` does), and 12 more."""
    from autonat.evaluation.embed import embed
    from autonat.evaluation.images import ArrayImages
    from autonat.evaluation.reference import reference_from_features, save_statistics

    root = tmp_path_factory.mktemp("stats")
    reference = reference_from_features(embed(ArrayImages(grey_digits_like(24)), digits, progress=False), digits,
                                        "synthetic")
    save_statistics(root / "stats.npz", reference, digits)
    np.savez(root / "images.npz", arr_0=grey_digits_like(12, seed=1))
    return root / "stats.npz", root / "images.npz"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("autonat: error: ") and "\n" not in err, err
    return err


# --------------------------------------------------------------------------- 1. the demo reference
def test_demo_model_rule(tmp_path):
    from autonat import ASSETS
    from autonat.evaluation.domain import is_demo_model, recipe_is_demo

    assert is_demo_model(ASSETS / "demo" / "generator")  # its cache is elsewhere: the demo tokenizer decides
    ckpt = write_tiny_generator(tmp_path)
    assert not is_demo_model(ckpt)

    def cache(name: str, source: str) -> str:
        (tmp_path / name).mkdir()
        (tmp_path / name / "meta.json").write_text(json.dumps({"source": source}))
        return str(tmp_path / name)

    demo_cache, folder_cache = cache("demo_cache", "demo"), cache("folder_cache", str(tmp_path / "photos"))
    config = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**config, "training": {"cache": demo_cache}}))
    assert is_demo_model(ckpt)
    shipped = json.loads((ASSETS / "demo" / "generator" / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**shipped, "training": {"cache": folder_cache}}))
    assert not is_demo_model(ckpt)  # the demo tokenizer, but trained on other images
    assert recipe_is_demo({"cache": demo_cache}) and not recipe_is_demo({"cache": folder_cache})
    assert recipe_is_demo({"cache": str(tmp_path / "not_yet"), "data": {"source": "demo"}})


def test_search_without_reference_refuses_a_non_demo_model(tmp_path, capsys):
    from autonat.cli.main import main

    ckpt = write_tiny_generator(tmp_path)
    out = tmp_path / "search"
    code = main(["search", "generation", "--checkpoint", str(ckpt), "--steps", "3", "--iterations", "1",
                 "--n-eval", "6", "--out", str(out)])
    err = one_line_error(capsys)
    assert code == 2 and "--reference" in err and str(ckpt) in err
    assert not out.exists()


def test_search_training_without_reference_refuses_a_recipe_of_other_images(tmp_path, capsys):
    from helpers import tiny_recipe, write_tiny_cache

    from autonat.cli.main import main
    from autonat.strategy.core import maskgit_cosine

    cache = write_tiny_cache(tmp_path / "cache")  # records no demo source
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tiny_recipe(cache, tmp_path / "unused", steps=2)))
    save_strategy(maskgit_cosine(3), tmp_path / "s.yaml")
    code = main(["search", "training", "--config", str(tmp_path / "r.yaml"), "--strategy", str(tmp_path / "s.yaml"),
                 "--out", str(tmp_path / "search")])
    assert code == 2 and "--reference" in one_line_error(capsys)
    assert not (tmp_path / "search").exists()


# --------------------------------------------------------------------------- 2. the recorded extractor
def test_auto_takes_the_extractor_a_statistics_file_records(stats_and_images):
    from autonat.evaluation.features import DIGITS
    from autonat.evaluation.reference import choose_extractor, recorded_extractor

    stats, images = stats_and_images
    assert recorded_extractor(stats) == DIGITS and recorded_extractor(images) is None
    assert choose_extractor("auto", stats) == DIGITS
    assert choose_extractor("digits", stats) == DIGITS
    with pytest.raises(AutonatError, match="cannot be compared"):
        choose_extractor("inception", stats)


def test_eval_uses_the_recorded_extractor_and_refuses_another(tmp_path, stats_and_images, capsys):
    from autonat.cli.main import main

    stats, images = stats_and_images
    results = tmp_path / "r.jsonl"
    base = ["eval", "--images", str(images), "--reference", str(stats), "--results", str(results), "--no-progress"]
    assert main(base) == 0  # auto: no Inception weights asked for
    record = json.loads(results.read_text())
    assert record["feature_extractor"]["name"] == "autonat-digits" and record["n"] == 12
    assert WARNING not in capsys.readouterr().err  # 32x32 grey images: no warning
    assert main([*base, "--feature-extractor", "inception"]) == 2
    assert "cannot be compared" in one_line_error(capsys)


# --------------------------------------------------------------------------- 3. the digit-features warning
def test_digit_features_warn_once_on_images_unlike_the_digits(digits, capsys):
    import torch

    from autonat.evaluation.features import DIGITS, load_feature_extractor

    fresh = load_feature_extractor(DIGITS)
    fresh.embed(torch.from_numpy(grey_digits_like(4)).permute(0, 3, 1, 2).contiguous())
    assert capsys.readouterr().err == ""
    colour = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    fresh.embed(colour)
    fresh.embed(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))
    err = capsys.readouterr().err.strip()
    assert err.count(WARNING) == 1 and "\n" not in err and "colour images" in err
    assert "--feature-extractor inception --inception-weights PATH" in err


def test_eval_of_a_non_demo_checkpoint_with_digit_features_warns(tmp_path, stats_and_images, capsys):
    from autonat.cli.main import main

    ckpt = write_tiny_generator(tmp_path)
    stats, _ = stats_and_images
    assert main(["eval", "--checkpoint", str(ckpt), "--reference", str(stats), "-n", "6", "--steps", "2",
                 "--results", str(tmp_path / "r.jsonl"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count(WARNING) == 1 and str(ckpt) in err
    record = json.loads((tmp_path / "r.jsonl").read_text())
    assert record["feature_extractor"]["off_domain"] is True  # the results file says so too


@pytest.mark.slow
def test_the_demo_prints_no_warning(tmp_path, capsys):
    from autonat.demo import run_demo

    run_demo(argparse.Namespace(out=str(tmp_path / "demo.png"), eval_samples=20, seed=0))
    out = capsys.readouterr()
    assert "FID" in out.out and "warning" not in out.err


# --------------------------------------------------------------------------- 4. -n and KID subsets
def test_eval_images_n_larger_than_the_set_is_an_error_and_smaller_takes_the_first(tmp_path, stats_and_images,
                                                                                    capsys):
    from autonat.cli.main import main

    stats, images = stats_and_images
    results = tmp_path / "r.jsonl"
    base = ["eval", "--images", str(images), "--reference", str(stats), "--results", str(results), "--no-progress"]
    assert main([*base, "-n", "20"]) == 2
    err = one_line_error(capsys)
    assert "-n 20" in err and "(12)" in err and not results.exists()
    assert main([*base, "-n", "5"]) == 0
    assert json.loads(results.read_text())["n"] == 5


def test_kid_on_fewer_images_than_its_subset_says_so(digits, capsys):
    from autonat.evaluation.embed import embed
    from autonat.evaluation.images import ArrayImages
    from autonat.evaluation.metrics import compute_metrics
    from autonat.evaluation.reference import reference_from_features

    reference = reference_from_features(embed(ArrayImages(grey_digits_like(30)), digits, progress=False), digits, "r")
    feats = embed(ArrayImages(grey_digits_like(20, seed=3)), digits, progress=False)
    scores = compute_metrics(feats, reference, digits.layers, ("kid",))
    err = capsys.readouterr().err.strip()
    assert scores["kid_subset_size"] == 20
    assert err.startswith("autonat: note: KID uses subsets of 20 images") and "\n" not in err


def test_search_n_eval_below_two_is_an_error(tmp_path):
    from autonat.search.objective import FIDObjective

    with pytest.raises(AutonatError, match="--n-eval must be at least 2"):
        FIDObjective(write_tiny_generator(tmp_path), "demo:heldout", 1)


# --------------------------------------------------------------------------- 5. strategy files
def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


GOOD = {"mask_ratio": [0.5], "remask_temp": [1.0], "sample_temp": [1.0, 1.0], "cfg_scale": [0.0, 2.0]}


@pytest.mark.parametrize("data, words", [
    ({**GOOD, "cfg_sclae": [0.0, 2.0]},
     ["unknown key(s) cfg_sclae (did you mean cfg_scale?)", "mask_ratio, remask_temp", "manual_ratios"]),
    ({"manual_ratios": [0.5], "manual_temp": [1.0], "manual_samp_temp": [1, 1], "manual_cfg": [0, 2],
      "manual_extra": 1}, ["unknown key(s) manual_extra"]),
    ({**GOOD, "steps": "eight"}, ["steps must be a whole number", "'eight'"]),
    ({**GOOD, "steps": 2.0}, ["steps must be a whole number"]),
    ({**GOOD, "sample_temp": [1.0, "hot"]}, ["sample_temp must be a list of numbers", "'hot'"]),
    ({**GOOD, "cfg_scale": None}, ["cfg_scale must be a list of numbers"]),
    ({**{k: v for k, v in GOOD.items() if k != "mask_ratio"}, "manual_ratios": "x"},
     ["manual_ratios must be a list of numbers"]),
    ({**GOOD, "manual_cfg": [0.0, 1.0]}, ["manual_cfg and cfg_scale"]),
])
def test_strategy_file_mistakes_are_one_line_errors_naming_the_key(tmp_path, data, words):
    with pytest.raises(AutonatError) as info:
        load_strategy(write(tmp_path, data))
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "s.yaml"))
    for word in words:
        assert word in message, message


def test_strategy_files_we_write_still_load(tmp_path):
    from autonat.strategy.core import autonat_init

    for official in (False, True):
        save_strategy(autonat_init(5), tmp_path / "s.yaml", official=official)
        assert load_strategy(tmp_path / "s.yaml") == autonat_init(5)


def test_steps_that_disagree_with_a_strategy_file_are_refused(tmp_path, capsys):
    from autonat.cli.main import main

    path = write(tmp_path, GOOD)
    strategy = load_strategy(path)
    assert check_steps(strategy, None, str(path)) is strategy and check_steps(strategy, 2, str(path)) is strategy
    with pytest.raises(AutonatError, match="has 2 steps but --steps is 8"):
        check_steps(strategy, 8, str(path))
    ckpt, grid = write_tiny_generator(tmp_path / "model"), tmp_path / "grid.png"
    sample = ["sample", "--checkpoint", str(ckpt), "--per-class", "1", "--out", str(grid)]
    assert main([*sample, "--strategy", str(path), "--steps", "8"]) == 2
    assert "has 2 steps but --steps is 8" in one_line_error(capsys) and not grid.exists()
    assert main([*sample, "--strategy", str(path)]) == 0 and grid.exists()
    capsys.readouterr()
    assert main(["strategy", "show", str(path), "--steps", "8"]) == 2
    assert "--steps is 8" in one_line_error(capsys)
    assert main(["strategy", "show", str(path)]) == 0
