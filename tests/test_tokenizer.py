import json
import math

import pytest
import torch
from safetensors.torch import load_file

from autonat.tokenizers.base import Tokenizer, fingerprint
from autonat.tokenizers.loader import load_tokenizer
from autonat.tokenizers.taming import VQGAN
from autonat.tokenizers.training import (
    TokenizerTrainConfig,
    evaluate_tokenizer,
    train_tokenizer,
)


def test_round_trip_shapes(tiny_vqgan_config):
    model = VQGAN(tiny_vqgan_config).eval()
    assert isinstance(model, Tokenizer)
    images = torch.rand(3, 3, 8, 8)
    ids = model.encode(images)
    assert ids.shape == (3, *model.grid) == (3, 4, 4)
    assert ids.dtype == torch.long and ids.max() < model.codebook_size
    out = model.decode(ids)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1


def test_taming_key_layout(tiny_vqgan_config):
    keys = VQGAN(tiny_vqgan_config).state_dict().keys()
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {"encoder", "decoder", "quantize", "quant_conv", "post_quant_conv"}
    assert "quantize.embedding.weight" in keys


class _Images(torch.utils.data.Dataset):
    def __init__(self, n=64):
        g = torch.Generator().manual_seed(0)
        base = torch.rand(4, 3, 8, 8, generator=g)
        self.images = base[torch.arange(n) % 4] * 0.8 + 0.1 * torch.rand(n, 3, 8, 8, generator=g)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


def test_short_training_lowers_reconstruction_error_and_saves(tmp_path, tiny_vqgan_config):
    data = _Images()
    torch.manual_seed(0)
    before = evaluate_tokenizer(VQGAN(tiny_vqgan_config), data.images)
    cfg = TokenizerTrainConfig(vqgan=tiny_vqgan_config, steps=60, batch_size=16, lr=2e-3, restart_every=20)
    report = train_tokenizer(cfg, data, tmp_path / "tok", heldout=data)
    assert report.psnr > before.psnr + 3
    assert 0 < report.codes_used <= 1 and report.perplexity >= 1
    loaded = load_tokenizer(tmp_path / "tok")
    assert loaded.codebook_size == 16 and not any(p.requires_grad for p in loaded.parameters())
    assert len(fingerprint(tmp_path / "tok")) == 16


def test_the_training_log_has_a_row_every_log_every_steps(tmp_path, tiny_vqgan_config):
    """Rows at every ``log_every``-th step and the last; the logged rate is the cosine schedule's
    ``lr * (1 + cos(pi * s / steps)) / 2`` at step index ``s = step - 1``; logging leaves the weights alone."""
    data, steps, lr = _Images(16), 7, 2e-3
    logs, weights = {}, {}
    for every in (3, 100):
        cfg = TokenizerTrainConfig(vqgan=tiny_vqgan_config, steps=steps, batch_size=4, lr=lr, restart_every=2,
                                   log_every=every)
        out = tmp_path / f"every{every}"
        train_tokenizer(cfg, data, out, heldout=data)
        logs[every] = json.loads((out / "tokenizer.json").read_text())["log"]
        weights[every] = load_file(out / "model.safetensors")
    assert [row["step"] for row in logs[3]] == [3, 6, 7] and [row["step"] for row in logs[100]] == [7]
    for row in logs[3]:
        assert row["lr"] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * (row["step"] - 1) / steps)))
        assert row["rec_loss"] > 0 and row["vq_loss"] >= 0
    assert logs[3][-1] == logs[100][-1]
    assert all(torch.equal(weights[3][k], weights[100][k]) for k in weights[3])
