"""The baseline the benchmarks compare against, written in the style of the reference code.

It mirrors how the official AutoNAT code (LeapLabTHU/ImprovedNAT: ``libs/nat_model.py``,
``libs/nat_misc.py``, ``train.py``, ``utils.py``) spends time, on the very
same network and weights as :class:`autonat.generator.uvit.UViT`:

* attention by hand: ``softmax(q @ k^T * scale) @ v`` (its non-xformers path);
* classifier-free guidance as two separate forward passes at *every* step,
  conditional then unconditional, never batched, whatever the scale;
* sampling under ``torch.no_grad``, NumPy Gumbel noise copied to the device,
  ``torch.distributions.Categorical`` draws, a full sort for the cut-off and
  tensor-valued mask lengths read back on the host;
* a training step with the cross-entropy over every position
  (``ignore_index`` for the visible ones), host reads of the loss and masked
  ratio for the log, a per-parameter EMA loop and a stacked gradient norm.

The code is ours; only the arithmetic follows the reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autonat.generator.uvit import UViT
from autonat.sampling.sampler import TokenSpace
from autonat.strategy.core import Strategy


class ManualAttention(nn.Module):
    """Multi-head attention computed by hand, on the ``qkv``/``proj`` layers it is given."""

    def __init__(self, qkv: nn.Linear, proj: nn.Linear, num_heads: int) -> None:
        super().__init__()
        self.qkv, self.proj, self.num_heads = qkv, proj, num_heads
        self.scale = (qkv.in_features // num_heads) ** -0.5

    def forward(self, x: torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """``keys``: the network's attention key mask ``[B, 1, 1, N]`` (True: attended to), or None."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        if keys is not None:
            scores = scores.masked_fill(~keys, float("-inf"))
        attn = scores.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class ReferenceMlp(nn.Module):
    """timm's ``Mlp`` as the reference uses it: Linear, GELU (a new tensor), Linear."""

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = fc1, nn.GELU(), fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def reference_style(model: UViT) -> UViT:
    """Give ``model`` the reference's attention and MLP in place; weights and state-dict keys stay the same."""
    for block in [*model.in_blocks, model.mid_block, *model.out_blocks]:
        block.attn = ManualAttention(block.attn.qkv, block.attn.proj, block.attn.num_heads)
        block.mlp = ReferenceMlp(block.mlp.fc1, block.mlp.fc2)
    return model


# --------------------------------------------------------------------------- sampling
def _cfg_logits(model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, scale: float,
                null_class: int) -> torch.Tensor:
    cond = model(ids, labels)
    uncond = model(ids, torch.full_like(labels, null_class))
    return cond + scale * (cond - uncond)


@torch.no_grad()
def baseline_sample(model: nn.Module, strategy: Strategy, labels: torch.Tensor, space: TokenSpace) -> torch.Tensor:
    """Reference-style decoding of ``labels`` [B] with a strategy; returns ``[B, seq_len]`` ids.

    Randomness comes from the global NumPy and torch generators, as in the reference.
    """
    device = labels.device
    steps = strategy.steps
    mask_id, null_class, seq_len = space.mask_id, space.null_class, space.seq_len
    ids = torch.full((labels.shape[0], seq_len), mask_id, dtype=torch.long, device=device)
    sampled = ids
    for step in range(steps):
        last = step == steps - 1
        ratio = 0.0 if last else strategy.mask_ratio[step]
        remask_temp = 0.0 if last else strategy.remask_temp[step]
        is_mask = ids == mask_id
        logits = _cfg_logits(model, ids, labels, strategy.cfg_scale[step], null_class)
        sampled = torch.distributions.Categorical(logits=logits / max(strategy.sample_temp[step], 1e-4)).sample()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, sampled[..., None])[..., 0]
        sampled = torch.where(is_mask, sampled, ids)
        logp = torch.where(is_mask, logp, torch.full_like(logp, math.inf))
        mask_len = torch.tensor([math.floor(seq_len * ratio)], dtype=torch.float, device=device)
        mask_len = torch.maximum(torch.ones(1, device=device),
                                 torch.minimum(is_mask.sum(-1, keepdim=True) - 1, mask_len))[0].squeeze()
        noise = torch.tensor(remask_temp * np.random.gumbel(size=tuple(logp.shape)), dtype=torch.float)
        confidence = logp + noise.to(device)
        cut = int(mask_len.long())  # a host read every step, as the reference's slice does
        cutoff = torch.sort(confidence, dim=-1).values[:, cut - 1: cut]
        ids = torch.where(confidence <= cutoff, mask_id, sampled)
    return sampled


# --------------------------------------------------------------------------- training
@dataclass
class BaselineTrainer:
    """Network, EMA copy, AdamW and a warm-up schedule, as the reference's ``TrainState``."""

    model: UViT
    ema: UViT
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    mask_id: int
    null_class: int
    beta: tuple[float, float] = (12.0, 3.0)
    smoothing: float = 0.1
    p_uncond: float = 0.15
    ema_rate: float = 0.9999


def baseline_trainer(model: UViT, ema: UViT, lr: float = 4e-4, warmup_steps: int = 5000) -> BaselineTrainer:
    """AdamW (betas 0.99/0.99, weight decay 0.03) with the reference's linear warm-up."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.99, 0.99), weight_decay=0.03)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / warmup_steps, 1) if warmup_steps else 1)
    c = model.config
    return BaselineTrainer(model, ema, opt, sched, c.mask_id, c.null_class)


def baseline_train_step(tr: BaselineTrainer, tokens: torch.Tensor, labels: torch.Tensor,
                        autocast_dtype: torch.dtype | None = None) -> dict:
    """One reference-style step on ``tokens`` [B, L] and ``labels`` [B]; returns the logged values."""
    tr.optimizer.zero_grad()
    n, length = tokens.shape
    ratios = torch.distributions.Beta(*tr.beta).sample((n,)).to(tokens.device).float()
    counts = (length * ratios).round().clamp(min=1)
    mask = torch.rand(n, length, device=tokens.device).argsort(dim=-1) < counts[:, None]
    inputs = torch.where(mask, tr.mask_id, tokens)
    targets = torch.where(mask, tokens, -1)
    drop = torch.rand(n, device=tokens.device) < tr.p_uncond
    labels = torch.where(drop, tr.null_class, labels)
    with torch.autocast(tokens.device.type, dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        logits = tr.model(inputs, labels)
    loss = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=-1, label_smoothing=tr.smoothing)
    logged = {"loss": loss.detach().item(), "masked": inputs.eq(tr.mask_id).sum().item() / n / length}
    loss.backward()
    tr.optimizer.step()
    tr.scheduler.step()
    _ema_loop(tr.ema, tr.model, tr.ema_rate)
    logged["grad_norm"] = torch.norm(torch.stack([p.grad.detach().norm(2) for p in tr.model.parameters()
                                                  if p.grad is not None]), 2).item()
    return logged


@torch.no_grad()
def _ema_loop(ema: nn.Module, model: nn.Module, rate: float) -> None:
    """``ema = rate * ema + (1 - rate) * model``, one parameter at a time."""
    source = dict(model.named_parameters())
    for name, p in ema.named_parameters():
        p.data.mul_(rate).add_((1 - rate) * source[name].data)
