"""Data-side friction: tokenizer checkpoints and resume, a real held-out split, class names,
one image-discovery rule, large images, and the image-size message."""
from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
import yaml
from helpers import tiny_recipe, write_tiny_tokenizer
from PIL import Image
from safetensors.torch import load_file

import autonat.data.images as images_module
from autonat.cli.main import main
from autonat.cli.sample import class_ids
from autonat.data.demo import DemoDigits
from autonat.data.images import ImageFolderDataset, list_images, open_splits
from autonat.data.token_cache import read_token_cache, write_token_cache
from autonat.data.tokenization import tokenize_dataset
from autonat.errors import AutonatError
from autonat.evaluation.images import FolderImages, folder_images
from autonat.generator.checkpoint import load_generator
from autonat.sampling.outputs import png_name
from autonat.tokenizers.taming import VQGAN
from autonat.tokenizers.training import STATE_INFO, TokenizerTrainConfig, state_dir, train_tokenizer
from autonat.training.loop import train_from_recipe


def _save(folder, names, size=(8, 8), value=100):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        arr = np.full((size[1], size[0], 3), (value + 7 * i) % 256, np.uint8)
        Image.fromarray(arr).save(folder / name)


def _one_line(exc_info, *fragments):
    text = str(exc_info.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


# --------------------------------------------------------------------------- 1. tokenizer checkpoints + resume
class _Images(torch.utils.data.Dataset):
    def __init__(self, n=16, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, 8, 8, generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


def _config(tiny_vqgan_config, **kw):
    return TokenizerTrainConfig(**{"vqgan": tiny_vqgan_config, "steps": 8, "batch_size": 4, "lr": 2e-3,
                                   "restart_every": 2, "checkpoint_every": 3, **kw})


def _interrupt_at_step(monkeypatch, step, how):
    """Make the ``step``-th training step (1-based) end with a SIGINT, or crash during it."""
    original, calls = VQGAN.features, {"n": 0}

    def features(self, x):
        calls["n"] += 1  # call 1 initialises the codebook; call k + 1 is step k
        if calls["n"] == step + 1:
            if how == "crash":
                raise RuntimeError("simulated crash")
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, x)

    monkeypatch.setattr(VQGAN, "features", features)


@pytest.mark.parametrize("how, stop_step, saved_step", [("signal", 5, 5), ("crash", 8, 6)])
def test_interrupted_tokenizer_training_resumes_to_the_same_weights(
        tmp_path, tiny_vqgan_config, monkeypatch, capsys, how, stop_step, saved_step):
    data, config = _Images(), _config(tiny_vqgan_config, log_every=2)
    train_tokenizer(config, data, tmp_path / "straight")
    out = tmp_path / "tok"
    _interrupt_at_step(monkeypatch, stop_step, how)
    expected = SystemExit if how == "signal" else RuntimeError
    with pytest.raises(expected) as stopped:
        train_tokenizer(config, data, out)
    if how == "signal":
        assert stopped.value.code == 128 + signal.SIGINT
        assert f"stopped by SIGINT at step {saved_step}: state saved in {state_dir(out)}" in capsys.readouterr().out
    assert json.loads((state_dir(out) / STATE_INFO).read_text())["step"] == saved_step
    assert not out.exists() and state_dir(out).parent == out.parent  # the state lives beside the output
    monkeypatch.undo()
    train_tokenizer(config, data, out)
    assert f"resumed from {state_dir(out)} at step {saved_step}" in capsys.readouterr().out
    straight, resumed = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    logs = [json.loads((folder / "tokenizer.json").read_text())["log"] for folder in (tmp_path / "straight", out)]
    assert logs[0] == logs[1] and [row["step"] for row in logs[0]] == [2, 4, 6, 8]  # rows before the stop kept
    assert not state_dir(out).exists()  # removed once the tokenizer is written


def test_resume_refuses_another_config_or_other_images_but_not_another_checkpoint_interval(
        tmp_path, tiny_vqgan_config, monkeypatch):
    data, out = _Images(), tmp_path / "tok"
    _interrupt_at_step(monkeypatch, 4, "signal")
    with pytest.raises(SystemExit):
        train_tokenizer(_config(tiny_vqgan_config), data, out)
    monkeypatch.undo()
    with pytest.raises(AutonatError) as refused:
        train_tokenizer(_config(tiny_vqgan_config, steps=9), data, out)
    _one_line(refused, str(state_dir(out)), "tokenizer.steps: 8 saved, 9 now", "delete")
    with pytest.raises(AutonatError) as refused:
        train_tokenizer(_config(tiny_vqgan_config), _Images(seed=1), out)
    _one_line(refused, "images.sha256")
    train_tokenizer(_config(tiny_vqgan_config, checkpoint_every=100), data, out)
    assert (out / "model.safetensors").is_file() and not state_dir(out).exists()


def test_checkpoint_every_is_validated(tiny_vqgan_config):
    with pytest.raises(ValueError, match="checkpoint_every: must be >= 1"):
        _config(tiny_vqgan_config, checkpoint_every=0)


# --------------------------------------------------------------------------- 2. held-out split
def _classes_folder(root):
    _save(root / "circle", [f"{i}.png" for i in range(40)])
    _save(root / "square", ["a.png", "b.png", "c.png"])
    _save(root / "triangle", ["only.png"])
    (root / "zeta").mkdir()  # empty: keeps its id
    return root


def test_folder_held_out_split_is_fixed_stratified_and_disjoint(tmp_path):
    root = _classes_folder(tmp_path / "data")
    train, heldout = open_splits(str(root), 8)
    held = [(f.name, y) for f, y in heldout.items]
    assert [y for _, y in held].count(0) == 2 and [y for _, y in held].count(1) == 1  # 5% of 40; at least 1 of 3
    assert all(y != 2 for _, y in held)  # a class of 1 image keeps it for training
    assert len(train) + len(heldout) == 44 and not set(train.items) & set(heldout.items)
    assert [(f.name, y) for f, y in open_splits(str(root), 8)[1].items] == held  # the same split every time
    assert [(f.name, y) for f, y in ImageFolderDataset(root, 8, split="heldout").items] == held
    assert len(ImageFolderDataset(root, 8)) == 44  # tokenize encodes every image


def test_demo_keeps_its_own_held_out_split(monkeypatch):
    monkeypatch.setattr(images_module, "DemoDigits", lambda split: split)  # its fixed rule: data/demo.py
    assert open_splits("demo") == ("train", "heldout")


def test_train_tokenizer_reports_on_held_out_folder_images(tmp_path, capsys):
    root = _classes_folder(tmp_path / "data")
    recipe = {"data": {"source": str(root), "image_size": 8},
              "tokenizer": {"out_dir": str(tmp_path / "tok"), "steps": 2, "batch_size": 4, "restart_every": 10,
                            "vqgan": {"n_embed": 16, "embed_dim": 8, "ch": 32, "ch_mult": [1, 2],
                                      "num_res_blocks": 1, "attn_resolutions": [], "resolution": 8,
                                      "z_channels": 8}}}
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump(recipe))
    assert main(["train-tokenizer", "--config", str(cfg)]) == 0
    assert "held-out report on 3 images never trained on: psnr=" in capsys.readouterr().out
    report = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())["report"]
    assert report["num_images"] == 3


# --------------------------------------------------------------------------- 3. class names
def test_tokenize_records_class_names_and_keeps_the_id_of_an_empty_class(tmp_path, capsys):
    root = tmp_path / "data"
    _save(root / "circle", ["0.png", "1.png"])
    (root / "empty").mkdir()
    _save(root / "square", ["0.png"])
    (root / ".thumbnails").mkdir()  # hidden: not a class
    tok = write_tiny_tokenizer(tmp_path / "tok")
    tokenize_dataset(str(root), tok, tmp_path / "cache", image_size=8)
    cache = read_token_cache(tmp_path / "cache")
    assert cache.meta["class_names"] == ["circle", "empty", "square"] and cache.num_classes == 3
    assert cache.meta["empty_classes"] == ["empty"] and cache.labels.tolist() == [0, 0, 2]
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": str(root), "image_size": 8}}))
    assert main(["tokenize", "--config", str(cfg), "--tokenizer", str(tok), "--out", str(tmp_path / "c2")]) == 0
    assert "autonat: warning: class folder(s) empty hold no images; their class ids are kept" in capsys.readouterr().err


def test_demo_class_names_are_the_digits():
    assert DemoDigits.classes == [str(d) for d in range(10)]


def test_class_ids_accept_names_and_ids():
    names = ["circle", "square", "triangle"]
    assert class_ids(["circle", "2"], names) == [0, 2]
    assert class_ids(["1"], None) == [1]
    with pytest.raises(AutonatError) as bad:
        class_ids(["hexagon"], names)
    _one_line(bad, "--classes hexagon", "circle, square, triangle")
    with pytest.raises(AutonatError) as bad:
        class_ids(["circle"], None)
    _one_line(bad, "records no class names")


def test_png_names_use_the_class_name_when_known():
    assert png_name(3, 0, ["circle"]) == "000003_circle.png"
    assert png_name(3, 1, ["circle"]) == "000003_class1.png"  # the unconditional id has no name
    assert png_name(3, 0) == "000003_class0.png"


@pytest.mark.slow
def test_class_names_reach_the_checkpoint_and_sample(tmp_path, capsys):
    rng = np.random.default_rng(0)
    labels = np.arange(24) % 3
    meta = {"tokenizer": {"path": "none", "fingerprint": "test"}, "grid": [4, 4], "codebook_size": 16,
            "num_classes": 3, "augmentation": "none", "class_names": ["circle", "square", "triangle"]}
    write_token_cache(tmp_path / "cache", rng.integers(0, 16, (24, 16)), labels, meta)
    ckpt = train_from_recipe(tiny_recipe(tmp_path / "cache", tmp_path / "run", steps=2, checkpoint_every=2))
    assert load_generator(ckpt).meta["class_names"] == ["circle", "square", "triangle"]
    config = json.loads((ckpt / "config.json").read_text())
    config["tokenizer"] = {"path": str(write_tiny_tokenizer(tmp_path / "tok"))}
    (ckpt / "config.json").write_text(json.dumps(config))
    pngs = tmp_path / "pngs"
    assert main(["sample", "--checkpoint", str(ckpt), "--steps", "2", "--per-class", "1", "--classes", "triangle",
                 "0", "--out", str(tmp_path / "g.png"), "--png-dir", str(pngs)]) == 0
    assert sorted(p.name for p in pngs.iterdir()) == ["000000_triangle.png", "000001_circle.png"]
    assert main(["sample", "--checkpoint", str(ckpt), "--classes", "hexagon", "--out", str(tmp_path / "h.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # progress bars, then the error alone on its line
    assert err[-1].startswith("autonat: error: --classes hexagon: unknown class; the classes are circle, square")
    assert "Traceback" not in "\n".join(err)
    assert main(["sample", "--checkpoint", str(ckpt), "--classes", "squares", "--out", str(tmp_path / "h.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("autonat: error: --classes squares: unknown class (did you mean 'square'?); the "
                              "classes are circle, square")


# --------------------------------------------------------------------------- 4. one discovery rule
def test_tokenize_and_fid_stats_discover_images_by_the_same_rule(tmp_path):
    root = tmp_path / "data"
    _save(root / "a", ["1.png"])
    _save(root / "a" / "nested" / "deeper", ["2.png"])
    _save(root / "a" / ".hidden", ["3.png"])
    _save(root / "b", ["4.jpg", ".5.png"])
    (root / "b" / "notes.txt").write_text("not an image")
    _save(root, ["loose.png"])  # in no class folder
    dataset_files = [f.relative_to(root).as_posix() for f, _ in ImageFolderDataset(root, 8).items]
    assert dataset_files == ["a/1.png", "a/nested/deeper/2.png", "b/4.jpg"]
    fid_files = [f.relative_to(root).as_posix() for f in folder_images(root).files]
    assert fid_files == [f.relative_to(root).as_posix() for f in list_images(root)]
    assert fid_files == ["a/1.png", "a/nested/deeper/2.png", "b/4.jpg", "loose.png"]


def test_tokenize_says_when_images_sit_outside_the_class_folders(tmp_path, capsys):
    root = tmp_path / "data"
    _save(root / "a", ["1.png"])
    _save(root, ["loose.png", "loose2.png"])
    assert [f.name for f in ImageFolderDataset(root, 8).loose] == ["loose.png", "loose2.png"]
    tok = write_tiny_tokenizer(tmp_path / "tok")
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": str(root), "image_size": 8}}))
    assert main(["tokenize", "--config", str(cfg), "--tokenizer", str(tok), "--out", str(tmp_path / "c")]) == 0
    assert f"autonat: warning: 2 image(s) directly in {root} are in no class folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- 5. large images
def test_images_over_the_pixel_limit_are_too_large_not_unreadable(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _save(root / "a", ["small.png"], size=(8, 8))
    _save(root / "a", ["big.png"], size=(16, 12))
    monkeypatch.setattr(images_module, "MAX_PIXELS", 100)
    ds = ImageFolderDataset(root, 8)
    assert len(ds) == 1 and not ds.skipped and ds.too_large == [f"{root / 'a' / 'big.png'} (16 x 12)"]
    with pytest.raises(AutonatError) as refused:
        ImageFolderDataset(root, 8, strict=True)
    _one_line(refused, "big.png is too large (16 x 12 > 100 pixels, the limit)")
    with pytest.raises(AutonatError) as refused:
        FolderImages([root / "a" / "big.png"]).batch([0])
    _one_line(refused, "too large (16 x 12 > 100 pixels")


def test_images_over_pils_own_limit_load_and_pils_limit_is_left_alone(tmp_path, monkeypatch):
    _save(tmp_path / "data" / "a", ["big.png"], size=(16, 12))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # PIL alone would call this a decompression bomb
    ds = ImageFolderDataset(tmp_path / "data", 8)
    assert len(ds) == 1 and ds[0][0].shape == (3, 8, 8)
    assert Image.MAX_IMAGE_PIXELS == 40
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "data" / "a" / "big.png")


def test_tokenize_reports_too_large_images(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    _save(root / "a", ["small.png"])
    _save(root / "a", ["big.png"], size=(16, 16))
    monkeypatch.setattr(images_module, "MAX_PIXELS", 100)
    tok = write_tiny_tokenizer(tmp_path / "tok")
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": str(root), "image_size": 8}}))
    assert main(["tokenize", "--config", str(cfg), "--tokenizer", str(tok), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 image(s) too large (over 100 pixels), e.g." in out and "big.png (16 x 16)" in out
    assert read_token_cache(tmp_path / "c").meta["too_large_images"] == 1


# --------------------------------------------------------------------------- 6. image size vs tokenizer
def test_image_size_mismatch_names_both_sizes_in_one_line(tmp_path):
    root = tmp_path / "data"
    _save(root / "a", ["1.png"])
    tok = write_tiny_tokenizer(tmp_path / "tok")
    with pytest.raises(AutonatError) as bad:
        tokenize_dataset(str(root), tok, tmp_path / "cache", image_size=16)
    _one_line(bad, "data.image_size is 16px", "takes 8px images", "data.image_size: 8")
    with pytest.raises(AutonatError) as bad:
        tokenize_dataset("demo", tok, tmp_path / "cache")
    _one_line(bad, "the demo digits are 32px", "takes 8px images")
    assert not (tmp_path / "cache").exists()
