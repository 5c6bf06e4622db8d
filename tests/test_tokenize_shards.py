"""Tokenisation at scale: shards written as they finish, a rerun resumes, several processes, the resize policy."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import write_tiny_tokenizer
from PIL import Image

import autonat.data.tokenization as tokenization
from autonat.data.images import resize_centre_crop
from autonat.data.shards import shard_file, work_folder
from autonat.data.token_cache import read_token_cache
from autonat.data.tokenization import tokenize_dataset
from autonat.errors import AutonatError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path):
    """Two classes of 5 and 4 non-square images (so the crop matters)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "images"
    for c, n in enumerate((5, 4)):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (12, 17, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    return root


@pytest.fixture
def tok(tmp_path):
    return write_tiny_tokenizer(tmp_path / "tok")


def _rows(cache):
    c = read_token_cache(cache)
    return np.asarray(c.tokens), np.asarray(c.labels)


def test_shards_give_the_cache_of_one_pass_and_are_removed(tmp_path, folder, tok):
    tokenize_dataset(str(folder), tok, tmp_path / "one", image_size=8, shard_size=100, batch_size=4)
    n = tokenize_dataset(str(folder), tok, tmp_path / "many", image_size=8, shard_size=2, batch_size=4)
    assert n == 9
    for a, b in zip(_rows(tmp_path / "one"), _rows(tmp_path / "many")):
        assert np.array_equal(a, b)
    assert not work_folder(tmp_path / "many").exists()
    meta = read_token_cache(tmp_path / "many").meta
    assert meta["preprocess"] == {"image_size": 8, "resize": "bilinear", "crop": "centre", "mirror": False}
    assert meta["value_ranges"]["labels"] == [0, 1] and meta["class_names"] == ["c0", "c1"]


def test_mirror_rows_are_the_tokens_of_the_mirror_images(tmp_path, folder, tok):
    from autonat.data.images import open_dataset
    from autonat.tokenizers.loader import load_tokenizer

    tokenize_dataset(str(folder), tok, tmp_path / "c", image_size=8, hflip=True, shard_size=3, batch_size=2,
                     resize="adm")
    tokens, labels = _rows(tmp_path / "c")
    data = open_dataset(str(folder), 8, resize="adm")
    images = torch.stack([data[i][0] for i in range(len(data))])
    with torch.inference_mode():
        tokenizer = load_tokenizer(tok)
        plain = tokenizer.encode(images).flatten(1).numpy()
        mirror = tokenizer.encode(images.flip(-1)).flatten(1).numpy()
    # shards of 3 images in batches of 2: [b, b mirrored] per batch
    order = [0, 1, 0, 1, 2, 2, 3, 4, 3, 4, 5, 5, 6, 7, 6, 7, 8, 8]
    flipped = [0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0, 1]
    expected = np.stack([(mirror if f else plain)[i] for i, f in zip(order, flipped)])
    assert np.array_equal(tokens, expected) and labels.tolist() == [data.items[i][1] for i in order]
    assert read_token_cache(tmp_path / "c").meta["preprocess"]["resize"] == "adm"


def test_a_killed_run_resumes_from_its_finished_shards(tmp_path, folder, tok, monkeypatch):
    tokenize_dataset(str(folder), tok, tmp_path / "straight", image_size=8, shard_size=2, batch_size=2)
    real_write, written = tokenization.write_shard, []

    def write_then_die(work, shard, arrays):
        if len(written) == 2:
            raise KeyboardInterrupt  # killed after two shards
        real_write(work, shard, arrays)
        written.append(shard)

    monkeypatch.setattr(tokenization, "write_shard", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        tokenize_dataset(str(folder), tok, tmp_path / "c", image_size=8, shard_size=2, batch_size=2)
    work = work_folder(tmp_path / "c")
    assert sorted(p.name for p in work.glob("shard_*.npz")) == ["shard_000000.npz", "shard_000001.npz"]
    assert not (tmp_path / "c").exists()
    monkeypatch.setattr(tokenization, "write_shard", real_write)
    encoded = []
    real_load = tokenization.load_tokenizer

    def counting_tokenizer(*args, **kw):
        t = real_load(*args, **kw)
        encode = t.encode
        t.encode = lambda x: encoded.append(len(x)) or encode(x)
        return t

    monkeypatch.setattr(tokenization, "load_tokenizer", counting_tokenizer)
    tokenize_dataset(str(folder), tok, tmp_path / "c", image_size=8, shard_size=2, batch_size=2)
    assert sum(encoded) == 9 - 4  # the two finished shards (4 images) were not encoded again
    for a, b in zip(_rows(tmp_path / "straight"), _rows(tmp_path / "c")):
        assert np.array_equal(a, b)


def test_shards_of_other_inputs_are_not_mixed(tmp_path, folder, tok, monkeypatch):
    monkeypatch.setattr(tokenization, "write_shard", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        tokenize_dataset(str(folder), tok, tmp_path / "c", image_size=8, shard_size=2)
    monkeypatch.undo()
    with pytest.raises(AutonatError, match=r"holds shards of another tokenization \(hflip, resize differ\); delete"):
        tokenize_dataset(str(folder), tok, tmp_path / "c", image_size=8, shard_size=2, hflip=True, resize="adm")


def test_decoding_workers_give_the_same_cache(tmp_path, folder, tok):
    (folder / "c1" / "broken.png").write_bytes(b"not an image")
    Image.fromarray(np.full((5, 6, 3), 90, np.uint8)).save(folder / "c0" / "small.png")
    tokenize_dataset(str(folder), tok, tmp_path / "w0", image_size=8, shard_size=4, workers=0)
    tokenize_dataset(str(folder), tok, tmp_path / "w2", image_size=8, shard_size=4, workers=2)
    for a, b in zip(_rows(tmp_path / "w0"), _rows(tmp_path / "w2")):
        assert np.array_equal(a, b)
    meta = read_token_cache(tmp_path / "w2").meta
    assert meta["skipped_images"] == 1 and meta["skipped_files"][0].endswith("broken.png")
    assert meta["upscaled_images"] == 1 and len(read_token_cache(tmp_path / "w2")) == 10
    assert not shard_file(work_folder(tmp_path / "w2"), 0).exists()


def test_adm_resize_is_box_halving_then_bicubic_then_the_centre():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (70, 150, 3), dtype=np.uint8))  # 150 x 70
    out = resize_centre_crop(img, 16, "adm")
    half = img.resize((75, 35), Image.BOX).resize((37, 17), Image.BOX)  # 70 and 35 are >= 2 x 16; 17 is not
    scaled = half.resize((35, 16), Image.BICUBIC)  # 37 * 16 / 17 = 34.8
    assert np.array_equal(np.asarray(out), np.asarray(scaled)[:, 9:25])  # (35 - 16) // 2 = 9
    assert out.size == (16, 16)
    with pytest.raises(AutonatError, match="unknown resize policy 'nearest'; choose one of bilinear, adm"):
        resize_centre_crop(img, 16, "nearest")


@pytest.mark.slow
def test_two_processes_share_the_shards_under_accelerate_launch(tmp_path, folder, tok):
    from test_training import _free_port

    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"source": str(folder), "image_size": 8}}))
    common = ["--config", str(cfg), "--tokenizer", str(tok), "--shard-size", "2", "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(ROOT / "tools" / "tokenize_images.py"), *common,
           "--out", str(tmp_path / "two")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("token cache with 9 items") == 1  # said once, by the main process
    assert "process 1 of 2" in result.stderr
    tokenize_dataset(str(folder), tok, tmp_path / "one", image_size=8, shard_size=2)
    for a, b in zip(_rows(tmp_path / "one"), _rows(tmp_path / "two")):
        assert np.array_equal(a, b)
