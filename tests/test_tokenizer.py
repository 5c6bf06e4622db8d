import torch

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
