"""Training a small VQGAN tokenizer from scratch (``autonat train-tokenizer``).

Reconstruction (MSE + L1) plus codebook and commitment losses with a
straight-through quantiser. Two measures keep the codebook alive, without
which small codebooks collapse to a handful of codes: the codebook starts as
a random draw of encoder outputs, and codes unused for ``restart_every``
steps are restarted at random encoder outputs of the current batch.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from autonat.io.atomic import atomic_dir, check_output_dir
from autonat.io.weights import save_safetensors
from autonat.tokenizers.base import TOKENIZER_FILE, WEIGHTS_FILE
from autonat.tokenizers.taming import VQGAN, VQGANConfig


@dataclass
class TokenizerTrainConfig:
    """Recipe for training a tokenizer; ``vqgan`` holds the architecture."""

    vqgan: VQGANConfig = field(default_factory=lambda: VQGANConfig(
        n_embed=64, embed_dim=32, ch=32, ch_mult=(1, 2, 2), num_res_blocks=1,
        attn_resolutions=(), resolution=32, z_channels=32))
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    l1_weight: float = 0.5
    restart_every: int = 100
    log_every: int = 100
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "TokenizerTrainConfig":
        d = dict(d)
        vq = VQGANConfig.from_dict(d.pop("vqgan", {})) if "vqgan" in d else cls().vqgan
        return cls(vqgan=vq, **d)


@dataclass
class TokenizerReport:
    """Reconstruction quality and codebook health on a set of images."""

    psnr: float
    perplexity: float
    codes_used: float  # fraction of the codebook used at least once
    num_images: int


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


@torch.no_grad()
def evaluate_tokenizer(model, images: torch.Tensor, batch_size: int = 256) -> TokenizerReport:
    """PSNR of encode-decode reconstructions and codebook usage over ``images``."""
    model.eval()
    scores, counts = [], torch.zeros(model.codebook_size)
    for x in images.split(batch_size):
        ids = model.encode(x)
        scores.append(psnr(model.decode(ids), x))
        counts += torch.bincount(ids.flatten().cpu(), minlength=model.codebook_size).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return TokenizerReport(psnr=float(torch.cat(scores).mean()), perplexity=float(entropy.exp()),
                           codes_used=float((counts > 0).float().mean()), num_images=len(images))


def _stack(dataset: Dataset) -> torch.Tensor:
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor):
        return images
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def _restart_dead_codes(model: VQGAN, feats: torch.Tensor, usage: torch.Tensor) -> int:
    """Move codes with zero usage onto random encoder outputs; return how many moved."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    flat = feats.detach().permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    pick = torch.randint(0, len(flat), (len(dead),), device=flat.device)
    model.quantize.embedding.weight.data[dead] = flat[pick]
    return len(dead)


def train_tokenizer(config: TokenizerTrainConfig, train: Dataset, out_dir: str | Path,
                    heldout: Dataset | None = None, device: str = "cpu") -> TokenizerReport:
    """Train a VQGAN on ``train`` and save it to ``out_dir``; report on ``heldout``."""
    check_tokenizer_output(out_dir)
    torch.manual_seed(config.seed)
    images = _stack(train).to(device)
    model = VQGAN(config.vqgan).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps)))
    with torch.no_grad():  # codebook starts on encoder outputs
        _restart_dead_codes(model, model.features(images[: config.batch_size * 4]),
                            torch.zeros(config.vqgan.n_embed))
    usage = torch.zeros(config.vqgan.n_embed, device=device)
    gen = torch.Generator().manual_seed(config.seed)
    bar = tqdm(range(config.steps), desc="tokenizer", dynamic_ncols=True)
    t0 = time.time()
    for step in bar:
        model.train()
        x = images[torch.randint(0, len(images), (config.batch_size,), generator=gen)]
        feats = model.features(x)
        zq, vq_loss, idx = model.quantize(feats)
        recon = model.decode_codes(zq)
        target = 2 * x - 1
        rec_loss = F.mse_loss(recon, target) + config.l1_weight * F.l1_loss(recon, target)
        loss = rec_loss + vq_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        usage += torch.bincount(idx.flatten(), minlength=config.vqgan.n_embed)
        if (step + 1) % config.restart_every == 0 and step + 1 < config.steps * 0.9:
            _restart_dead_codes(model, feats, usage)
            usage.zero_()
        if step % 10 == 0:
            bar.set_postfix(rec=f"{rec_loss.item():.4f}", vq=f"{vq_loss.item():.4f}")
    report = evaluate_tokenizer(model, _stack(heldout).to(device) if heldout is not None else images[:1000])
    save_tokenizer(model, out_dir, extra={"train": _json_ready(asdict(config)), "report": asdict(report),
                                          "train_seconds": round(time.time() - t0, 1)})
    return report


KIND = "tokenizer"


def is_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path`` holds a tokenizer written by this toolkit (also one written before output markers)."""
    return (Path(path) / TOKENIZER_FILE).is_file() and (Path(path) / WEIGHTS_FILE).is_file()


def check_tokenizer_output(path: str | Path) -> Path:
    """Refuse, before any work, an ``--out`` where writing a tokenizer would lose a user's files."""
    return check_output_dir(path, KIND, is_tokenizer_dir)


def save_tokenizer(model: VQGAN, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write ``tokenizer.json`` and ``model.safetensors`` atomically into ``out_dir``."""
    meta = {"kind": model.kind, "config": _json_ready(model.config.to_dict()), **(extra or {})}
    with atomic_dir(out_dir, KIND, is_tokenizer_dir) as tmp:
        save_safetensors(model.state_dict(), tmp / WEIGHTS_FILE, atomic=False)
        (tmp / TOKENIZER_FILE).write_text(json.dumps(meta, indent=2))


def _json_ready(d):
    if isinstance(d, dict):
        return {k: _json_ready(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_json_ready(v) for v in d]
    return d
