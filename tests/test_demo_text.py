"""The captioned demo: captions and held-out splits, the dataset on disk, the two-digit metric, warm starts."""
import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from autonat.data import demo_text as D
from autonat.errors import AutonatError
from autonat.evaluation.two_digits import halves, pair_fid, prompt_accuracy, read_pairs
from autonat.generator.warm_start import tile_positions, warm_start


# --------------------------------------------------------------------------- captions and splits
def _mentions(text: str, digit: int) -> list[int]:
    """Word positions naming ``digit`` (numeral or word)."""
    words = [w.strip(",:") for w in text.split()]
    return [i for i, w in enumerate(words) if w in (str(digit), D.DIGIT_WORDS[digit])]


@given(st.integers(0, 9), st.integers(0, 9), st.sampled_from(D.PHRASINGS + D.HELDOUT_PHRASINGS))
def test_every_caption_names_both_digits_left_first(a, b, template):
    text = D.caption(template, a, b)
    named = sorted(_mentions(text, a) + _mentions(text, b)) if a != b else _mentions(text, a)
    assert len(named) == 2, text
    assert _mentions(text, a)[0] == named[0] and _mentions(text, b)[-1] == named[1], text
    assert "{" not in text and "a 8" not in text and "a eight" not in text  # filled in, "an 8"


def test_held_out_splits():
    assert len(D.HELDOUT_PAIRS) == 10 and len(D.SEEN_PAIRS) == 90
    assert not set(D.HELDOUT_PAIRS) & set(D.SEEN_PAIRS)
    assert sorted(a for a, _ in D.HELDOUT_PAIRS) == sorted(b for _, b in D.HELDOUT_PAIRS) == list(range(10))
    assert all((b, a) in D.SEEN_PAIRS for a, b in D.HELDOUT_PAIRS)  # the reverse order is seen
    assert not set(D.PHRASINGS) & set(D.HELDOUT_PHRASINGS)
    sizes = {name: len(D.prompts(name)) for name in D.PROMPT_SETS}
    assert sizes == {"seen": 900, "heldout_phrasings": 270, "heldout_pairs": 100}
    seen = {D.caption(t, a, b) for a, b in D.SEEN_PAIRS for t in D.PHRASINGS}
    assert not seen & {c for c, _ in D.prompts("heldout_phrasings")}
    assert D.prompts("seen", seed=3) == D.prompts("seen", seed=3) != D.prompts("seen", seed=4)
    with pytest.raises(AutonatError, match="unknown prompt set"):
        D.prompts("all")


@pytest.mark.slow
def test_written_dataset(tmp_path):
    from PIL import Image

    out = tmp_path / "demo_text"
    counts = D.write_demo_text(out, per_pair=1, seed=0, reference_per_pair=1)
    assert counts == {"train_images": 90, "train_captions": 270, "reference_images": 100}
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    by_image = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r)
    assert len(by_image) == 90 and all(len(set(x["caption"] for x in rs)) == 3 for rs in by_image.values())
    phrased = {D.caption(t, a, b): (a, b) for a, b in D.SEEN_PAIRS for t in D.PHRASINGS}
    assert all(phrased[r["caption"]] == tuple(r["digits"]) for r in rows)  # seen phrasings and pairs only
    held, held_labels = D.demo_digits("heldout")
    padded = np.pad(held, ((0, 0), (2, 2), (2, 2)))
    ref = [json.loads(line) for line in (out / "reference.jsonl").read_text().splitlines()]
    for r in ref[::9]:  # every reference half is a held-out digit of the named class
        pixels = np.asarray(Image.open(out / r["image"]))
        assert pixels.shape == (32, 64)
        for half, digit in zip((pixels[:, :32], pixels[:, 32:]), r["digits"]):
            assert any(np.array_equal(half, padded[i]) for i in np.flatnonzero(held_labels == digit))
    assert len(D.read_prompt_set(out / "prompts_heldout_pairs.jsonl")) == 100
    with pytest.raises(AutonatError, match="already exists"):
        D.write_demo_text(tmp_path, per_pair=1, reference_per_pair=1)


# --------------------------------------------------------------------------- the metric
def _pair_images(pairs, split="heldout"):
    digits, labels = D.demo_digits(split)
    return D.pair_images(digits, labels, pairs, np.random.default_rng(0))


def test_read_pairs_and_prompt_accuracy():
    pairs = [(a, (a * 7 + 1) % 10) for a in range(10)] * 2
    images = _pair_images(pairs)
    assert images.shape == (20, 3, 32, 64)
    h = halves(images)
    assert torch.allclose(h[:, 0, 0], images[:, 0, :, :32]) and torch.allclose(h[:, 1, 0], images[:, 0, :, 32:])
    read, feats = read_pairs((images * 255).round().to(torch.uint8))
    asked = torch.tensor(pairs)
    assert feats.shape == (20, 256)
    assert prompt_accuracy(read, asked) >= 0.9
    swapped = read_pairs(images.roll(32, dims=-1))[0]  # halves swapped: read in the other order
    assert prompt_accuracy(swapped, asked) < 0.1 and prompt_accuracy(swapped, asked.flip(1)) >= 0.9
    assert prompt_accuracy(torch.tensor([[1, 2], [3, 4], [5, 6]]), torch.tensor([[1, 2], [3, 5], [5, 6]])) == 2 / 3
    with pytest.raises(AutonatError, match=r"\[B, C, 32, 64\]"):
        halves(images[..., :32])


def test_pair_fid_is_the_frechet_distance():
    from scipy import linalg

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 6, generator=g), torch.randn(300, 6, generator=g) * 1.5 + 0.3
    mu1, mu2 = a.double().mean(0).numpy(), b.double().mean(0).numpy()
    s1, s2 = np.cov(a.double().numpy(), rowvar=False), np.cov(b.double().numpy(), rowvar=False)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert pair_fid(a, b) == pytest.approx(expected, rel=1e-4)
    assert pair_fid(b, b) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- warm starts
def test_tile_positions_maps_each_cell_to_its_old_cell():
    old = torch.arange(2 * 3 * 4, dtype=torch.float32).view(6, 4)
    new = tile_positions(old, (2, 3), (4, 6))
    for r in range(4):
        for c in range(6):
            assert torch.equal(new[r * 6 + c], old[(r % 2) * 3 + c % 3])
    with pytest.raises(AutonatError, match="cannot tile"):
        tile_positions(old, (2, 3), (4, 4))


def test_warm_start_from_a_class_checkpoint_into_a_text_model(tmp_path):
    from autonat.generator.checkpoint import save_generator
    from autonat.generator.uvit import UViT, UViTConfig

    small = dict(codebook_size=16, width=32, depth=2, num_heads=2, dropout=0.0)
    old_config = UViTConfig(grid=(2, 2), num_classes=3, **small)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        old = UViT(old_config)
    save_generator(tmp_path / "g", old, old_config, {"path": "none", "fingerprint": "test"})
    with torch.random.fork_rng():
        torch.manual_seed(1)
        new = UViT(UViTConfig(grid=(2, 4), num_classes=0, text_width=6, text_length=5, **small))
    fresh_text = new.text_embed.weight.clone()
    report = warm_start(new, tmp_path / "g")
    old_sd, new_sd = old.state_dict(), new.state_dict()
    assert report.copied and all(torch.equal(new_sd[k], old_sd[k]) for k in report.copied)
    assert report.tiled == ("token_embed.positions.weight",)
    pos = new_sd["token_embed.positions.weight"]
    assert torch.equal(pos[:2], pos[2:4]) and torch.equal(pos[:2], old_sd["token_embed.positions.weight"][:2])
    assert "text_embed.weight" in report.fresh and torch.equal(new.text_embed.weight, fresh_text)
    assert any(k.startswith("class_embed") for k in report.ignored)
    with pytest.raises(AutonatError, match="shares no weights"):
        warm_start(UViT(UViTConfig(grid=(2, 2), num_classes=3, codebook_size=8, width=16, depth=2, num_heads=2)),
                   tmp_path / "g")


@pytest.mark.slow
def test_shipped_text_demo_writes_a_grid_and_reads_it(tmp_path, capsys):
    pytest.importorskip("transformers")
    from autonat.data.demo_text import DEMO_TEXT_CHECKPOINT
    from autonat.demo import TEXT_PER_PROMPT, TEXT_PROMPTS, run_text_demo

    if not (DEMO_TEXT_CHECKPOINT / "config.json").exists():
        pytest.skip("the captioned demo model is not shipped in this checkout")
    out = run_text_demo(tmp_path / "grid.png", seed=0)
    from PIL import Image

    width, height = Image.open(out).size
    assert (width, height) == (2 + TEXT_PER_PROMPT * (64 + 2), 2 + len(TEXT_PROMPTS) * (32 + 2))
    printed = capsys.readouterr().out
    accuracy = float(printed.split("prompt accuracy (both digits read as named, digit classifier per half): ")[1])
    assert 0.0 <= accuracy <= 1.0 and str(out.resolve()) in printed


@pytest.mark.slow
def test_train_init_starts_from_the_checkpoint_and_resuming_wins(tmp_path, capsys):
    from helpers import tiny_recipe, write_tiny_cache, write_tiny_generator

    from autonat.training.loop import train
    from autonat.training.recipe import recipe_from_dict

    start = write_tiny_generator(tmp_path / "start")
    cache = write_tiny_cache(tmp_path / "cache", grid=(4, 4), codebook=16, classes=3)
    recipe = tiny_recipe(cache, tmp_path / "run", steps=2, checkpoint_every=2, init=str(start))
    recipe["model"]["dropout"] = 0.0
    train(recipe_from_dict(recipe))
    assert "tensors copied, 0 tiled, 0 new (none), 0 of the checkpoint unused" in capsys.readouterr().out
    recipe["train"]["steps"] = 4
    train(recipe_from_dict(recipe))
    assert "initialised from" not in capsys.readouterr().out  # a resumed run keeps its own weights
