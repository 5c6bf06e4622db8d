"""FID / IS evaluation: metric sanity, reference files, the Inception path offline, 1 vs 2 processes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autonat.errors import AutonatError
from autonat.evaluation.embed import embed, shard
from autonat.evaluation.features import (
    DIGITS,
    INCEPTION,
    INCEPTION_FILE,
    INCEPTION_URL,
    load_feature_extractor,
)
from autonat.evaluation.images import ArrayImages, demo_images
from autonat.evaluation.metrics import compute_metrics
from autonat.evaluation.reference import load_reference, reference_from_features

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- shared pieces
@pytest.fixture(scope="module")
def digits():
    return load_feature_extractor(DIGITS)


@pytest.fixture(scope="module")
def heldout():
    return demo_images("heldout")


@pytest.fixture(scope="module")
def train():
    return demo_images("train")


@pytest.fixture(scope="module")
def heldout_reference(digits, heldout):
    return reference_from_features(embed(heldout, digits, progress=False), digits, "demo:heldout")


def _fid(extractor, images, reference) -> float:
    return compute_metrics(embed(images, extractor, progress=False), reference, extractor.layers, ("fid",))["fid"]


def _noisy(images: ArrayImages, sigma: float, seed: int = 0) -> ArrayImages:
    rng = np.random.default_rng(seed)
    x = images.array.astype(np.float64) + rng.normal(0.0, 255.0 * sigma, images.array.shape)
    return ArrayImages(np.clip(np.round(x), 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- metrics
def test_fid_of_a_set_against_itself_is_zero(digits, heldout, heldout_reference):
    assert abs(_fid(digits, heldout, heldout_reference)) < 1e-6


def test_fid_grows_with_noise(digits, heldout, train):
    reference = reference_from_features(embed(ArrayImages(train.array[:1000]), digits, progress=False),
                                        digits, "train[:1000]")
    fids = [_fid(digits, _noisy(ArrayImages(heldout.array[:300]), s), reference) for s in (0.05, 0.15, 0.4)]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids


@pytest.mark.slow
def test_metrics_equal_torch_fidelity_calculate_metrics(digits, heldout, train):
    """Our gathering of features feeds torch-fidelity's math exactly as its own entry point does."""
    import torch_fidelity
    from torch.utils.data import Dataset

    class Uint8(Dataset):
        def __init__(self, images: ArrayImages):
            self.images = images

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return self.images.batch([i])[0]

    gen, ref = _noisy(ArrayImages(heldout.array[:200]), 0.1), ArrayImages(train.array[:300])
    theirs = torch_fidelity.calculate_metrics(
        input1=Uint8(gen), input2=Uint8(ref), feature_extractor=DIGITS, fid=True, isc=True, kid=True, prc=True,
        kid_subset_size=200, cuda=False, save_cpu_ram=True, cache=False, verbose=False, batch_size=100)
    reference = reference_from_features(embed(ref, digits, progress=False), digits, "train[:300]")
    ours = compute_metrics(embed(gen, digits, progress=False), reference, digits.layers)
    assert ours["fid"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-6)
    assert ours["is_mean"] == pytest.approx(theirs["inception_score_mean"], rel=1e-6)
    assert ours["kid_mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5, abs=1e-9)
    assert ours["precision"] == pytest.approx(theirs["precision"])
    assert ours["recall"] == pytest.approx(theirs["recall"])


def test_shards_cover_every_sample_once_in_whole_batches():
    shares = [shard(23, 4, r, 3) for r in range(3)]
    flat = sorted(i for share in shares for batch in share for i in batch)
    assert flat == list(range(23))
    assert shares[1] == [[4, 5, 6, 7], [16, 17, 18, 19]]


# --------------------------------------------------------------------------- reference files
@pytest.mark.slow
def test_statistics_npz_equal_statistics_of_the_same_images(tmp_path, digits, heldout, heldout_reference):
    from autonat.cli.main import main

    stats = tmp_path / "heldout_stats.npz"
    assert main(["fid-stats", "demo:heldout", "--out", str(stats), "--no-progress"]) == 0
    loaded = load_reference(stats, digits)
    assert loaded.kind == "statistics" and loaded.num_images == len(heldout)
    np.testing.assert_array_equal(loaded.mu, heldout_reference.mu)
    np.testing.assert_array_equal(loaded.sigma, heldout_reference.sigma)
    batch = tmp_path / "heldout_images.npz"
    np.savez(batch, heldout.array, np.zeros(len(heldout)))
    from_images = load_reference(batch, digits, progress=False)
    np.testing.assert_array_equal(from_images.mu, heldout_reference.mu)
    noisy = _noisy(heldout, 0.2)
    assert _fid(digits, noisy, loaded) == _fid(digits, noisy, heldout_reference)


def test_folder_reference_equals_array_reference(tmp_path, digits, heldout):
    from PIL import Image

    small = ArrayImages(heldout.array[:40])
    for i, img in enumerate(small.array):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(img).save(tmp_path / f"c{i % 2}" / f"{i:03d}.png")
    from_folder = load_reference(tmp_path, digits, progress=False)
    files = sorted(tmp_path.rglob("*.png"))
    order = [int(f.stem) for f in files]
    from_array = reference_from_features(embed(ArrayImages(small.array[order]), digits, progress=False), digits, "a")
    np.testing.assert_allclose(from_folder.mu, from_array.mu, rtol=1e-12)


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


BAD_REFERENCES = {
    "only_mu": (dict(mu=np.zeros(128)), "no sigma"),
    "no_known_keys": (dict(foo=np.zeros(3)), "neither mu/sigma"),
    "mu_not_vector": (dict(mu=np.zeros((2, 128)), sigma=np.eye(128)), "mu must be a vector"),
    "sigma_wrong_shape": (dict(mu=np.zeros(128), sigma=np.eye(127)), "sigma must be D x D"),
    "other_dimension": (dict(mu=np.zeros(2048), sigma=np.eye(2048)), "2048-dimensional"),
    "other_extractor": (dict(mu=np.zeros(128), sigma=np.eye(128), feature_extractor=np.str_(INCEPTION)),
                        "holds inception-v3-compat statistics"),
    "nan": (dict(mu=np.full(128, np.nan), sigma=np.eye(128)), "NaN"),
    "float_images": (dict(arr_0=np.zeros((4, 8, 8, 3), np.float32)), "must be uint8"),
    "four_channels": (dict(arr_0=np.zeros((4, 8, 8, 4), np.uint8)), "N x H x W x 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_REFERENCES))
def test_bad_reference_file_gets_a_clear_error(tmp_path, digits, case):
    arrays, message = BAD_REFERENCES[case]
    path = _npz(tmp_path / f"{case}.npz", **arrays)
    with pytest.raises(AutonatError, match=message):
        load_reference(path, digits, progress=False)


def test_unreadable_reference_is_one_line_cli_error(tmp_path, capsys):
    from autonat.cli.main import main

    bad = tmp_path / "ref.npz"
    bad.write_bytes(b"not a zip file at all")
    code = main(["eval", "--images", "demo:heldout", "--reference", str(bad), "--feature-extractor", "digits",
                 "--results", str(tmp_path / "r.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("autonat: error: cannot read") and "\n" not in err
    assert not (tmp_path / "r.jsonl").exists()


# --------------------------------------------------------------------------- Inception, offline
@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""
    import torch_fidelity.feature_extractor_inceptionv3 as inception

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(inception, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.slow
def test_inception_runs_offline_on_local_random_weights(tmp_path, offline):
    from autonat.evaluation.features import random_inception_state_dict

    weights = tmp_path / INCEPTION_FILE
    torch.save(random_inception_state_dict(), weights)
    inception = load_feature_extractor("inception", weights)
    rng = np.random.default_rng(0)
    ref = ArrayImages(rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    gen = ArrayImages(rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    reference = reference_from_features(embed(ref, inception, 4, progress=False), inception, "random")
    scores = compute_metrics(embed(gen, inception, 4, progress=False), reference, inception.layers, ("fid", "isc"))
    assert reference.mu.shape == (2048,) and reference.sigma.shape == (2048, 2048)
    assert all(np.isfinite(v) for v in scores.values())


def test_missing_inception_weights_name_the_file_and_its_source(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    with pytest.raises(AutonatError) as err:
        load_feature_extractor("inception")
    assert INCEPTION_FILE in str(err.value) and INCEPTION_URL in str(err.value)
    with pytest.raises(AutonatError, match=INCEPTION_FILE):
        load_feature_extractor("inception", tmp_path / "nowhere.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(3)}, wrong)
    with pytest.raises(AutonatError, match="not an Inception-v3 state dict"):
        load_feature_extractor("inception", wrong)


# --------------------------------------------------------------------------- generator, 1 vs 2 processes
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A random-weight 3-class generator on a random 16-code tokenizer (8x8 images, 4x4 tokens)."""
    from autonat.generator.checkpoint import save_generator
    from autonat.generator.uvit import UViT, UViTConfig
    from autonat.tokenizers.base import fingerprint
    from autonat.tokenizers.taming import VQGAN, VQGANConfig
    from autonat.tokenizers.training import save_tokenizer

    root = tmp_path_factory.mktemp("tiny_generator")
    torch.manual_seed(0)
    vq = VQGANConfig(n_embed=16, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                     resolution=8, z_channels=8)
    save_tokenizer(VQGAN(vq), root / "tokenizer")
    config = UViTConfig(codebook_size=16, grid=(4, 4), num_classes=3, width=32, depth=2, num_heads=2, dropout=0.0)
    save_generator(root / "generator", UViT(config), config,
                   {"path": str(root / "tokenizer"), "fingerprint": fingerprint(root / "tokenizer")})
    return root / "generator"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_one_process_equals_two_processes(tmp_path, tiny_checkpoint):
    from autonat.cli.main import main

    args = ["--checkpoint", str(tiny_checkpoint), "--reference", "demo:heldout", "-n", "24", "--batch-size", "4",
            "--steps", "3", "--seed", "7", "--no-progress"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["eval", *args, "--results", str(one)]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()),
           str(ROOT / "tools" / "eval.py"), *args, "--results", str(two)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    a, b = (json.loads(p.read_text().strip()) for p in (one, two))
    assert a["num_processes"] == 1 and b["num_processes"] == 2 and a["n"] == b["n"] == 24
    assert a["seed"] == 7 and a["strategy"]["steps"] == 3 and a["strategy"]["order"] == "confidence"
    assert a["feature_extractor"]["name"] == DIGITS
    assert b["metrics"].keys() == a["metrics"].keys() >= {"fid", "is_mean", "kid_mean", "precision"}
    for key, value in a["metrics"].items():
        assert b["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_evaluate_demo_scores_a_pipeline(tiny_checkpoint):
    from autonat.evaluation.metrics import evaluate_demo
    from autonat.sampling.pipeline import Pipeline
    from autonat.strategy.core import maskgit_cosine

    scores = evaluate_demo(Pipeline.load(tiny_checkpoint), maskgit_cosine(3), n=20, seed=0, progress=False)
    assert set(scores) == {"fid", "is_mean", "is_std"} and scores["fid"] > 0 and scores["is_mean"] >= 1


# --------------------------------------------------------------------------- the shipped digit classifier
def test_shipped_digit_classifier_is_small_and_accurate_on_heldout_digits():
    from autonat.data.demo import DemoDigits
    from autonat.evaluation.digit_classifier import (
        ASSET_DIR,
        WEIGHTS_FILE,
        accuracy,
        digit_classifier_info,
        load_digit_classifier,
    )

    info = digit_classifier_info()
    assert info["train"]["split"] == "demo train" and info["report"]["heldout_accuracy"] >= 0.97
    assert (ASSET_DIR / WEIGHTS_FILE).stat().st_size < 1_000_000
    data = DemoDigits("heldout")
    acc = accuracy(load_digit_classifier(), data.images[:, :1], torch.as_tensor(data.labels))
    assert acc == pytest.approx(info["report"]["heldout_accuracy"])
