"""Released weights: official key layouts, strict loading, equal outputs, end-to-end sampling, clear errors.

The released files cannot be downloaded here, so every test builds a state
dict with exactly the official key names and shapes (random values). The
official computations are written out below as plain functions of those
state dicts, from the formulas of LeapLabTHU/ImprovedNAT (``libs/nat_model.py``,
``libs/nat_misc.py``, ``taming/modules/diffusionmodules/model.py``,
``taming/modules/vqvae/quantize.py``), so no comparison goes through our modules.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import OFFICIAL_T8

from autonat.cli.main import main
from autonat.errors import AutonatError
from autonat.generator.official import (
    load_official_uvit,
    official_to_ours,
    ours_to_official,
    uvit_from_official,
)
from autonat.generator.uvit import UViT, named_config
from autonat.io.weights import read_state_dict
from autonat.sampling.options import OFFICIAL_TEMPERATURE_FLOOR
from autonat.sampling.pipeline import Pipeline
from autonat.sampling.sampler import SamplerOptions, TokenSpace, make_generators, sample_tokens
from autonat.strategy.core import Strategy
from autonat.strategy.files import load_strategy
from autonat.tokenizers.foreign import load_foreign_tokenizer
from autonat.tokenizers.loader import load_tokenizer
from autonat.tokenizers.maskgit import MaskGITVQGAN
from autonat.tokenizers.taming import VQGAN


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values with sensible scales: fan-in weights, unit-ish norms, small biases."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        x = torch.randn(shape, generator=g)
        if len(shape) >= 2 and "embeddings" not in key and "embedding" not in key:
            x = x / math.sqrt(math.prod(shape[1:]))
        elif len(shape) == 1 or key.endswith("mlm_layer.bias"):
            x = 0.1 * x + (1.0 if ("norm" in key or "LayerNorm" in key or ".ln." in key) and key.endswith("weight")
                           else 0.0)
        state[key] = x
    return state


# =========================================================================== AutoNAT U-ViT, official layout
def official_uvit_shapes(width: int, depth: int, codebook: int, length: int, classes_with_null: int,
                         mlp_ratio: int = 4) -> dict[str, tuple]:
    """Key names and shapes of ``libs/nat_model.UViT`` (qkv_bias=False, skip=True)."""
    d, hidden, vocab = width, width * mlp_ratio, codebook + 1
    shapes = {
        "token_emb.word_embeddings.weight": (vocab, d), "token_emb.position_embeddings.weight": (length, d),
        "token_emb.LayerNorm.weight": (d,), "token_emb.LayerNorm.bias": (d,),
        "context_embed.word_embeddings.weight": (classes_with_null, d),
        "context_embed.position_embeddings.weight": (1, d),
        "context_embed.LayerNorm.weight": (d,), "context_embed.LayerNorm.bias": (d,),
        "norm.weight": (d,), "norm.bias": (d,),
        "mlm_layer.fc.weight": (d, d), "mlm_layer.fc.bias": (d,), "mlm_layer.ln.weight": (d,),
        "mlm_layer.ln.bias": (d,), "mlm_layer.bias": (1, 1, vocab),
    }
    blocks = [f"in_blocks.{i}" for i in range(depth // 2)] + ["mid_block"] + \
             [f"out_blocks.{i}" for i in range(depth // 2)]
    for b in blocks:
        shapes.update({f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,), f"{b}.attn.qkv.weight": (3 * d, d),
                       f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,), f"{b}.norm2.weight": (d,),
                       f"{b}.norm2.bias": (d,), f"{b}.mlp.fc1.weight": (hidden, d), f"{b}.mlp.fc1.bias": (hidden,),
                       f"{b}.mlp.fc2.weight": (d, hidden), f"{b}.mlp.fc2.bias": (d,)})
        if b.startswith("out_blocks"):
            shapes.update({f"{b}.skip_linear.weight": (d, 2 * d), f"{b}.skip_linear.bias": (d,)})
    return shapes


def official_uvit_forward(sd: dict, ids: torch.Tensor, context: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``libs/nat_model.UViT.forward(masked_ids, context=[B, 1])`` written out (eval mode, no xformers)."""
    def ln(x, p, eps=1e-5):
        return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"], eps)

    def linear(x, p):
        return F.linear(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"))

    def bert(i, p):  # BertEmbeddings: word + position, LayerNorm(eps=1e-6)
        pos = sd[f"{p}.position_embeddings.weight"][torch.arange(i.shape[1])][None]
        return ln(sd[f"{p}.word_embeddings.weight"][i] + pos, f"{p}.LayerNorm", eps=1e-6)

    def attention(x, p):
        b, n, c = x.shape
        q, k, v = linear(x, f"{p}.qkv").reshape(b, n, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (c // num_heads) ** -0.5).softmax(dim=-1)
        return linear((attn @ v).transpose(1, 2).reshape(b, n, c), f"{p}.proj")

    def block(x, p, skip=None):
        if skip is not None:
            x = linear(torch.cat([x, skip], dim=-1), f"{p}.skip_linear")
        x = x + attention(ln(x, f"{p}.norm1"), f"{p}.attn")
        return x + linear(F.gelu(linear(ln(x, f"{p}.norm2"), f"{p}.mlp.fc1")), f"{p}.mlp.fc2")

    half = len({k.split(".")[1] for k in sd if k.startswith("in_blocks.")})
    x = torch.cat([bert(context, "context_embed"), bert(ids, "token_emb")], dim=1)
    skips = []
    for i in range(half):
        x = block(x, f"in_blocks.{i}")
        skips.append(x)
    x = block(x, "mid_block")
    for i in range(half):
        x = block(x, f"out_blocks.{i}", skips.pop())
    x = ln(x, "norm")
    h = ln(F.gelu(linear(x, "mlm_layer.fc")), "mlm_layer.ln")
    logits = h @ sd["token_emb.word_embeddings.weight"].t() + sd["mlm_layer.bias"]
    codebook = sd["token_emb.word_embeddings.weight"].shape[0] - 1
    return logits[:, 1:, :codebook]


def official_generate(forward, labels, strategy: dict, codebook: int, seq_len: int, null_class: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """``libs/nat_misc.NATSchedule.generate`` with cfg_nnet of train.py and re-masking temperature 0.

    ``forward(ids, context)`` gives the network's logits. Each token is drawn
    from ``softmax(logits / max(samp_temp, 1e-4))`` (``Categorical.sample``
    is ``torch.multinomial`` of those probabilities), so a step at
    temperature 0 still samples. Also returns the smallest lead of the best
    logit over the next at a decoded position (where a floored draw may
    leave the argmax).
    """
    assert not any(strategy.get("manual_temp", [])), "transcribed without the re-masking Gumbel noise"
    ids = torch.full((len(labels), seq_len), codebook)
    steps, smallest_gap = len(strategy["manual_samp_temp"]), math.inf
    for step in range(steps):
        ratio = strategy["manual_ratios"][step] if step < steps - 1 else 0
        scale = strategy["manual_cfg"][step]
        is_mask = ids == codebook
        cond = forward(ids, labels[:, None])
        uncond = forward(ids, torch.full_like(labels[:, None], null_class))
        logits = cond + scale * (cond - uncond)
        top2 = logits.topk(2, dim=-1).values
        smallest_gap = min(smallest_gap, (top2[..., 0] - top2[..., 1])[is_mask].min().item())
        probs = torch.softmax(logits / max(strategy["manual_samp_temp"][step], 1e-4), dim=-1)
        sampled = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(is_mask.shape)
        logp = torch.log_softmax(logits, -1).gather(-1, sampled[..., None])[..., 0]
        sampled = torch.where(is_mask, sampled, ids)
        confidence = torch.where(is_mask, logp, torch.full_like(logp, math.inf))
        mask_len = max(1, min(int(is_mask.sum(-1)[0]) - 1, math.floor(seq_len * ratio)))
        cut = confidence.sort(dim=-1).values[:, mask_len - 1:mask_len]
        ids = torch.where(confidence <= cut, codebook, sampled)
    return sampled, smallest_gap


def official_greedy_generate(sd, labels, strategy: dict, num_heads: int, null_class: int,
                             seed: int = 0) -> tuple[torch.Tensor, float]:
    """:func:`official_generate` of an official state dict at sampling and re-masking temperature 0."""
    greedy = {**strategy, "manual_samp_temp": [0.0] * len(strategy["manual_samp_temp"]),
              "manual_temp": [0.0] * len(strategy["manual_temp"])}
    codebook = sd["token_emb.word_embeddings.weight"].shape[0] - 1
    seq_len = sd["token_emb.position_embeddings.weight"].shape[0]
    return official_generate(lambda ids, context: official_uvit_forward(sd, ids, context, num_heads), labels,
                             greedy, codebook, seq_len, null_class, torch.Generator().manual_seed(seed))


TINY = dict(width=64, depth=4, codebook=32, length=16, classes_with_null=6)


@pytest.fixture
def official_uvit():
    return random_state(official_uvit_shapes(**TINY), seed=1)


def test_autonat_l_layout_is_the_official_one():
    """AutoNAT-L (configs/AutoNAT_L.yaml: 768 wide, depth 24, 1001 classes, 16x16, 1024 codes): all 314 keys."""
    with torch.device("meta"):
        ours = UViT(named_config("autonat-l", codebook_size=1024, grid=(16, 16), num_classes=1000))
    mapped = {ours_to_official(k): tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mapped == official_uvit_shapes(768, 24, 1024, 256, 1001)
    assert len(mapped) == 314
    assert all(official_to_ours(ours_to_official(k)) == k for k in ours.state_dict())


def test_converted_uvit_equals_the_official_math(official_uvit):
    model = uvit_from_official(official_uvit, num_heads=4)
    assert model.config.num_classes == 5 and model.config.null_class == 5 and model.config.grid == (4, 4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 33, (4, 16), generator=g)  # codes and [MASK] = 32
    labels = torch.tensor([0, 2, 4, 5])  # 5 = null class
    with torch.no_grad():
        ref = official_uvit_forward(official_uvit, ids, labels[:, None], num_heads=4)
        got = model(ids, labels)
    diff = (ref - got).abs().max().item()
    print(f"\nmax |logit difference| official math vs converted U-ViT: {diff:.3g} (logit scale {ref.abs().max():.3g})")
    assert got.shape == ref.shape == (4, 16, 32)
    assert diff < 1e-4


@pytest.mark.parametrize("sample_temp", [0.0, 1e-9])
@pytest.mark.parametrize("floor", [0.0, OFFICIAL_TEMPERATURE_FLOOR])
def test_greedy_decoding_gives_identical_tokens_where_the_top_logits_are_apart(official_uvit, sample_temp, floor):
    """The official floored draw (temperature max(0, 1e-4)) is the argmax where every decoded position's best
    logit leads the next by more than ~0.0104: the head's LayerNorm gain is doubled so that random weights give
    such gaps (a much larger gain saturates the winners' log-probabilities at 0, and each loop's re-masking then
    breaks those ties in its own order)."""
    official = yaml.safe_load(OFFICIAL_T8.read_text())
    strategy = load_strategy(OFFICIAL_T8)
    assert strategy.steps == 8 and strategy.cfg_scale[0] == 1e-4
    greedy = Strategy.create(strategy.mask_ratio, [0.0] * 7, [sample_temp] * 8, strategy.cfg_scale)
    labels = torch.tensor([0, 3, 4, 1])
    sharp = {**official_uvit, "mlm_layer.ln.weight": 2 * official_uvit["mlm_layer.ln.weight"]}
    model = uvit_from_official(sharp, num_heads=4)
    with torch.no_grad():
        ref, smallest_gap = official_greedy_generate(sharp, labels, official, num_heads=4, null_class=5)
    assert smallest_gap > 0.0104  # every other token's float32 probability is 0 at temperature 1e-4
    space = TokenSpace(mask_id=32, null_class=5, grid=(4, 4))
    got = sample_tokens(model, greedy, labels, make_generators(range(4)), space,  # official runs both passes at 1e-4
                        SamplerOptions(cfg_zero_threshold=0.0, temperature_floor=floor))
    assert torch.equal(got, ref)


class NearTie(torch.nn.Module):
    """Logits where codes 0 and 1 lead every other code by 1 and each other by ``gap`` (code 0 first)."""

    def __init__(self, gap: float, codebook: int = 8) -> None:
        super().__init__()
        self.logits = torch.zeros(codebook)
        self.logits[:2] = torch.tensor([1.0 + gap, 1.0])

    def forward(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(*ids.shape, -1).clone()


def test_greedy_decoding_differs_from_the_official_floored_draw_at_near_ties():
    """At a top-2 gap of 5e-5 the argmax always takes code 0; the official sampler (and ours with the floor)
    draws code 1 1 / (1 + e^0.5) = 38% of the time, fewer of which survive the re-masking (it keeps the more
    probable code first); never a code 1 away."""
    official = {**yaml.safe_load(OFFICIAL_T8.read_text()), "manual_temp": [0.0] * 7, "manual_samp_temp": [0.0] * 8}
    strategy = load_strategy(OFFICIAL_T8)
    greedy = Strategy.create(strategy.mask_ratio, [0.0] * 7, [0.0] * 8, strategy.cfg_scale)
    labels, net = torch.zeros(16, dtype=torch.long), NearTie(5e-5)
    space = TokenSpace(mask_id=8, null_class=5, grid=(4, 4))
    with torch.no_grad():
        ref, smallest_gap = official_generate(net, labels, official, codebook=8, seq_len=16, null_class=5,
                                              generator=torch.Generator().manual_seed(0))
    argmax = sample_tokens(net, greedy, labels, make_generators(range(16)), space)
    floored = sample_tokens(net, greedy, labels, make_generators(range(16)), space,
                            SamplerOptions(temperature_floor=OFFICIAL_TEMPERATURE_FLOOR))
    assert smallest_gap == pytest.approx(5e-5, rel=1e-2)
    assert (argmax == 0).all()  # the exact argmax
    for tokens in (ref, floored):
        share = (tokens == 1).float().mean().item()
        assert ((tokens == 0) | (tokens == 1)).all() and 0.05 < share < 0.25, share


def test_temperature_floor_flag_and_option():
    """``--temperature-floor`` alone is the official 1e-4, a value sets it, absent it is off; negative is refused."""
    from autonat.cli.args import sampler_options
    from autonat.cli.main import build_parser

    def floor(*flags: str) -> float:
        args = build_parser().parse_args(["sample", "--checkpoint", "c", "--out", "o.png", *flags])
        return sampler_options(args).temperature_floor

    assert (floor(), floor("--temperature-floor"), floor("--temperature-floor", "0.01")) == (0.0, 1e-4, 0.01)
    with pytest.raises(AutonatError, match="temperature_floor must be >= 0"):
        SamplerOptions(temperature_floor=-1.0)


def test_official_file_loads_and_wrong_files_are_named(tmp_path, official_uvit):
    torch.save(official_uvit, tmp_path / "nnet_ema.pth")
    model = load_official_uvit(tmp_path / "nnet_ema.pth", num_heads=4)
    assert model.config.width == 64 and model.config.depth == 4
    wrapped = {f"module.{k}": v for k, v in official_uvit.items()}  # saved from a DDP wrapper
    torch.save(wrapped, tmp_path / "ddp.pth")
    assert torch.equal(load_official_uvit(tmp_path / "ddp.pth", 4).head.bias, official_uvit["mlm_layer.bias"])

    broken = dict(official_uvit)
    del broken["in_blocks.0.attn.proj.bias"]
    broken["in_blocks.0.attn.qkv.bias"] = torch.zeros(192)  # a qkv_bias=True network
    with pytest.raises(AutonatError, match=r"missing 1: in_blocks\.0\.attn\.proj\.bias.*unexpected 1: "
                                           r"in_blocks\.0\.attn\.qkv\.bias"):
        uvit_from_official(broken, num_heads=4)
    with pytest.raises(AutonatError, match="not divisible"):
        uvit_from_official(official_uvit, num_heads=5)

    torch.save({"state_dict": official_maskgit_state(SMALL_VQ)}, tmp_path / "vqgan.ckpt")
    with pytest.raises(AutonatError, match="not AutoNAT generator weights.*MaskGIT VQGAN"):
        load_official_uvit(tmp_path / "vqgan.ckpt", num_heads=4)
    with pytest.raises(AutonatError, match="not a tokenizer.*AutoNAT generator weights"):
        load_tokenizer(tmp_path / "nnet_ema.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(AutonatError, match="cannot read"):
        read_state_dict(tmp_path / "junk.pth")


def _official_config(path: Path, width: int = 64, depth: int = 4, heads: int = 4) -> Path:
    """An official-style configs/*.yaml (its nnet section, as configs/AutoNAT_L.yaml names it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"train": {"n_steps": 10}, "nnet": {
        "img_size": 4, "codebook_size": 32, "embed_dim": width, "depth": depth, "num_heads": heads}}))
    return path


def test_head_count_comes_from_the_official_config_or_is_asked_for(tmp_path, official_uvit, capsys):
    """The weights do not store their heads: no default, the official config's or --num-heads."""
    weights = tmp_path / "assets" / "nnet_ema.pth"
    weights.parent.mkdir()
    torch.save(official_uvit, weights)
    out = tmp_path / "ckpt"
    assert main(["convert", "--weights", str(weights), "--out", str(out)]) == 2  # nothing says: refused
    err = capsys.readouterr().err
    assert "attention heads" in err and "--num-heads" in err and err.count("\n") == 1 and not out.exists()

    given = _official_config(tmp_path / "elsewhere" / "AutoNAT_T.yaml", heads=2)
    assert load_official_uvit(weights, config=given).config.num_heads == 2  # --config
    _official_config(tmp_path / "configs" / "AutoNAT_L.yaml", width=768, depth=24, heads=8)  # another size
    _official_config(tmp_path / "configs" / "AutoNAT_T.yaml", heads=4)  # configs/ one level up, like the repo
    assert load_official_uvit(weights).config.num_heads == 4
    assert load_official_uvit(weights, num_heads=2).config.num_heads == 2  # --num-heads wins over one found
    assert main(["convert", "--weights", str(weights), "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["model"]["num_heads"] == 4

    _official_config(tmp_path / "assets" / "other.yaml", heads=2)  # two configs of this size disagree
    with pytest.raises(AutonatError, match=r"disagree \(\[2, 4\] heads\).*--num-heads"):
        load_official_uvit(weights)
    with pytest.raises(AutonatError, match="768 wide and 24 deep.*64 wide and 4 deep"):
        load_official_uvit(weights, config=tmp_path / "configs" / "AutoNAT_L.yaml")
    with pytest.raises(AutonatError, match="--num-heads 4 but --config .* says num_heads 2"):
        load_official_uvit(weights, num_heads=4, config=given)
    (tmp_path / "recipe.yaml").write_text("model: {width: 64}\n")
    with pytest.raises(AutonatError, match="not an official AutoNAT config"):
        load_official_uvit(weights, config=tmp_path / "recipe.yaml")


# =========================================================================== MaskGIT VQGAN, official layout
SMALL_VQ = dict(ch=32, mult=(1, 2, 2), blocks=2, z=16, n_embed=24)
FULL_VQ = dict(ch=128, mult=(1, 1, 2, 2, 4), blocks=2, z=256, n_embed=1024)  # configs/vq-f16-jax.yaml


def official_maskgit_shapes(ch, mult, blocks, z, n_embed, in_ch=3) -> dict[str, tuple]:
    """Keys of ImprovedNAT's ``taming/models/vqgan.VQModel`` on its modified Encoder/Decoder."""
    shapes = {}

    def res(p, cin, cout):
        shapes.update({f"{p}.norm1.weight": (cin,), f"{p}.norm1.bias": (cin,), f"{p}.conv1.weight": (cout, cin, 3, 3),
                       f"{p}.norm2.weight": (cout,), f"{p}.norm2.bias": (cout,),
                       f"{p}.conv2.weight": (cout, cout, 3, 3)})
        if cin != cout:
            shapes[f"{p}.nin_shortcut.weight"] = (cout, cout, 1, 1)

    top = ch * mult[-1]
    shapes["encoder.conv_in.weight"] = (ch, in_ch, 3, 3)
    block_in = ch
    for i, m in enumerate(mult):
        for j in range(blocks):
            res(f"encoder.down.{i}.block.{j}", block_in, ch * m)
            block_in = ch * m
    for part in ("encoder", "decoder"):
        res(f"{part}.mid.block_1", top, top)
        res(f"{part}.mid.block_2", top, top)
    shapes.update({"encoder.norm_out.weight": (top,), "encoder.norm_out.bias": (top,),
                   "encoder.conv_out.weight": (z, top, 1, 1), "encoder.conv_out.bias": (z,),
                   "decoder.conv_in.weight": (top, z, 3, 3), "decoder.conv_in.bias": (top,)})
    block_in = top
    for i in reversed(range(len(mult))):
        for j in range(blocks):
            res(f"decoder.up.{i}.block.{j}", block_in, ch * mult[i])
            block_in = ch * mult[i]
        if i != 0:
            shapes.update({f"decoder.up.{i}.upsample.conv.weight": (block_in, block_in, 3, 3),
                           f"decoder.up.{i}.upsample.conv.bias": (block_in,)})
    shapes.update({"decoder.norm_out.weight": (ch * mult[0],), "decoder.norm_out.bias": (ch * mult[0],),
                   "decoder.conv_out.weight": (in_ch, ch * mult[0], 3, 3), "decoder.conv_out.bias": (in_ch,),
                   "quantize.embedding.weight": (n_embed, z)})
    return shapes


def official_maskgit_state(spec, seed=2):
    return random_state(official_maskgit_shapes(**spec), seed)


@pytest.fixture(scope="module")
def full_maskgit(tmp_path_factory):
    """A ``vqgan_jax_strongaug.ckpt`` at the released size (54M random parameters), written once."""
    sd = official_maskgit_state(FULL_VQ)
    path = tmp_path_factory.mktemp("released") / "vqgan_jax_strongaug.ckpt"
    torch.save({"state_dict": sd}, path)
    return sd, path


def _gn(sd, x, p):
    return F.group_norm(x, 32, sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-6)


def _res(sd, x, p):
    """The modified taming ResnetBlock: the shortcut is applied to the block's output h."""
    h = F.conv2d(F.silu(_gn(sd, x, f"{p}.norm1")), sd[f"{p}.conv1.weight"], padding=1)
    h = F.conv2d(F.silu(_gn(sd, h, f"{p}.norm2")), sd[f"{p}.conv2.weight"], padding=1)
    if f"{p}.nin_shortcut.weight" in sd:
        x = F.conv2d(h, sd[f"{p}.nin_shortcut.weight"])
    return x + h


def official_maskgit_encode(sd, x, levels, blocks):
    """Encoder (avg-pool downsampling) + VectorQuantizer2 nearest code, images in [0, 1] as AutoNAT feeds them."""
    h = F.conv2d(x, sd["encoder.conv_in.weight"], padding=1)
    for i in range(levels):
        for j in range(blocks):
            h = _res(sd, h, f"encoder.down.{i}.block.{j}")
        if i != levels - 1:
            h = F.avg_pool2d(h, kernel_size=2, stride=2)
    h = _res(sd, _res(sd, h, "encoder.mid.block_1"), "encoder.mid.block_2")
    h = F.conv2d(F.silu(_gn(sd, h, "encoder.norm_out")), sd["encoder.conv_out.weight"], sd["encoder.conv_out.bias"])
    b, c, hh, ww = h.shape
    z = h.permute(0, 2, 3, 1).reshape(-1, c)
    e = sd["quantize.embedding.weight"]
    d = z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()
    return d.argmin(1).view(b, hh, ww)


def official_maskgit_decode(sd, idx, levels, blocks):
    """``decode_code``: codebook lookup, Decoder (nearest x2 + conv upsampling); then train.py's clamp to [0, 1]."""
    h = sd["quantize.embedding.weight"][idx].permute(0, 3, 1, 2)
    h = F.conv2d(h, sd["decoder.conv_in.weight"], sd["decoder.conv_in.bias"], padding=1)
    h = _res(sd, _res(sd, h, "decoder.mid.block_1"), "decoder.mid.block_2")
    for i in reversed(range(levels)):
        for j in range(blocks):
            h = _res(sd, h, f"decoder.up.{i}.block.{j}")
        if i != 0:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = F.conv2d(h, sd[f"decoder.up.{i}.upsample.conv.weight"], sd[f"decoder.up.{i}.upsample.conv.bias"],
                         padding=1)
    h = F.conv2d(F.silu(_gn(sd, h, "decoder.norm_out")), sd["decoder.conv_out.weight"], sd["decoder.conv_out.bias"],
                 padding=1)
    return h.clamp(0, 1)


def test_full_maskgit_layout_is_vq_f16_jax():
    with torch.device("meta"):
        ours = MaskGITVQGAN()
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == official_maskgit_shapes(**FULL_VQ)
    assert (ours.codebook_size, ours.image_size, ours.grid, ours.kind) == (1024, 256, (16, 16), "maskgit-vqgan")


@pytest.mark.parametrize("spec,side", [(SMALL_VQ, 16), (FULL_VQ, 32)])
def test_maskgit_checkpoint_loads_strictly_and_matches_the_official_math(tmp_path, full_maskgit, spec, side):
    if spec is FULL_VQ:
        sd, path = full_maskgit
    else:
        sd, path = official_maskgit_state(spec), tmp_path / "vqgan_jax_strongaug.ckpt"
        torch.save({"state_dict": sd}, path)
    model = load_tokenizer(path)  # detected by its keys, no config
    assert isinstance(model, MaskGITVQGAN) and model.config.channel_mult == spec["mult"]
    levels = len(spec["mult"])
    images = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ids = model.encode(images)
        ref_ids = official_maskgit_encode(sd, images, levels, spec["blocks"])
        out, ref_out = model.decode(ref_ids), official_maskgit_decode(sd, ref_ids, levels, spec["blocks"])
    assert torch.equal(ids, ref_ids) and len(ids.unique()) > 1
    assert out.shape == images.shape and (out - ref_out).abs().max() < 1e-4


def test_maskgit_open_muse_layout_and_missing_keys(tmp_path):
    sd = official_maskgit_state(SMALL_VQ)
    muse = {k.replace("mid.block_1.", "mid.0.").replace("mid.block_2.", "mid.1.")
             .replace("upsample.conv.", "upsample_conv."): v for k, v in sd.items()}
    torch.save(muse, tmp_path / "pytorch_model.bin")
    model = load_tokenizer(tmp_path / "pytorch_model.bin")
    assert torch.equal(model.state_dict()["decoder.up.1.upsample.conv.weight"], sd["decoder.up.1.upsample.conv.weight"])
    del sd["decoder.up.2.block.1.conv2.weight"]
    torch.save({"state_dict": sd}, tmp_path / "broken.ckpt")
    with pytest.raises(AutonatError, match=r"missing 1: decoder\.up\.2\.block\.1\.conv2\.weight"):
        load_tokenizer(tmp_path / "broken.ckpt")


def test_convert_maskgit_to_a_tokenizer_directory(tmp_path, full_maskgit, capsys):
    sd, path = full_maskgit
    assert main(["convert", "--kind", "maskgit-vqgan", "--weights", str(path), "--out", str(tmp_path / "maskgit")]) == 0
    meta = json.loads((tmp_path / "maskgit" / "tokenizer.json").read_text())
    assert meta["kind"] == "maskgit-vqgan" and meta["converted_from"]["file"] == "vqgan_jax_strongaug.ckpt"
    model = load_tokenizer(tmp_path / "maskgit")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    ids = torch.randint(0, 1024, (1, 2, 2))
    with torch.no_grad():
        assert (model.decode(ids) - official_maskgit_decode(sd, ids, 5, 2)).abs().max() < 1e-4


# =========================================================================== taming VQGAN (Lightning last.ckpt)
TAMING_DD = dict(double_z=False, z_channels=8, resolution=8, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2],
                 num_res_blocks=1, attn_resolutions=[4], dropout=0.0)


def taming_model_yaml(n_embed=16, embed_dim=8) -> dict:
    """The shape of taming's published ``configs/model.yaml`` (vqgan_imagenet_f16_*), tiny sizes."""
    return {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.vqgan.VQModel",
                      "params": {"embed_dim": embed_dim, "n_embed": n_embed, "ddconfig": dict(TAMING_DD),
                                 "lossconfig": {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                                                "params": {"disc_conditional": False, "disc_in_channels": 3,
                                                           "disc_start": 0, "disc_weight": 0.75,
                                                           "codebook_weight": 1.0}}}}}


def taming_state(seed=4) -> dict[str, torch.Tensor]:
    """taming VQModel's state_dict built from taming's own Encoder/Decoder modules, plus loss weights."""
    from taming.modules.diffusionmodules.model import Decoder, Encoder

    torch.manual_seed(seed)
    sd = {f"encoder.{k}": v for k, v in Encoder(**TAMING_DD).state_dict().items()}
    sd.update({f"decoder.{k}": v for k, v in Decoder(**TAMING_DD).state_dict().items()})
    sd.update({"quantize.embedding.weight": torch.randn(16, 8), "quant_conv.weight": torch.randn(8, 8, 1, 1),
               "quant_conv.bias": torch.randn(8), "post_quant_conv.weight": torch.randn(8, 8, 1, 1),
               "post_quant_conv.bias": torch.randn(8)})
    sd.update({"loss.logvar": torch.zeros(()), "loss.perceptual_loss.net.slice1.0.weight": torch.randn(64, 3, 3, 3),
               "loss.perceptual_loss.lin0.model.1.weight": torch.randn(1, 64, 1, 1),
               "loss.discriminator.main.0.weight": torch.randn(64, 3, 4, 4),
               "loss.discriminator.main.0.bias": torch.randn(64)})
    return sd


class _Evil:
    """Would run a shell command if unpickled with plain pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def save_lightning_checkpoint(path, state, monkeypatch, legacy=False, **extra):
    """A PL-1.0-style last.ckpt: trainer objects pickled by class, which weights_only refuses by default."""
    fake = types.ModuleType("fake_lightning_callbacks")

    class ModelCheckpoint:
        pass

    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = fake.__name__, "ModelCheckpoint"
    fake.ModelCheckpoint = ModelCheckpoint
    with monkeypatch.context() as m:
        m.setitem(sys.modules, fake.__name__, fake)
        torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.0.8",
                    "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5), "monitor": "val/rec_loss"}},
                    "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]}],
                    "lr_schedulers": [], "hparams": argparse.Namespace(base_lr=4.5e-6), "state_dict": state, **extra},
                   path, _use_new_zipfile_serialization=not legacy)


def taming_reference(sd, images, ids):
    """taming VQModel: encoder on [-1, 1] input, quant_conv, nearest code; decode: post_quant_conv, decoder."""
    from taming.modules.diffusionmodules.model import Decoder, Encoder

    enc, dec = Encoder(**TAMING_DD).eval(), Decoder(**TAMING_DD).eval()
    enc.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("encoder.")})
    dec.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("decoder.")})
    h = F.conv2d(enc(2 * images - 1), sd["quant_conv.weight"], sd["quant_conv.bias"])
    z, e = h.permute(0, 2, 3, 1).reshape(-1, 8), sd["quantize.embedding.weight"]
    codes = (z.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * z @ e.t()).argmin(1).view(len(images), 4, 4)
    x = dec(F.conv2d(e[ids].permute(0, 3, 1, 2), sd["post_quant_conv.weight"], sd["post_quant_conv.bias"]))
    return codes, ((x + 1) / 2).clamp(0, 1)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
def test_taming_lightning_checkpoint_loads_safely_with_its_yaml(tmp_path, monkeypatch, legacy):
    sd = taming_state()
    save_lightning_checkpoint(tmp_path / "last.ckpt", sd, monkeypatch, legacy=legacy)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(taming_model_yaml()))
    model = load_tokenizer(tmp_path / "last.ckpt", tmp_path / "model.yaml")
    assert isinstance(model, VQGAN) and model.codebook_size == 16 and model.grid == (4, 4)
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ids = model.encode(images)
        ref_ids, ref_images = taming_reference(sd, images, ids)
        assert torch.equal(ids, ref_ids) and (model.decode(ids) - ref_images).abs().max() < 1e-5
    (tmp_path / "model.json").write_text(json.dumps(taming_model_yaml()["model"]))  # JSON works too
    assert isinstance(load_foreign_tokenizer(tmp_path / "last.ckpt", tmp_path / "model.json"), VQGAN)


def test_a_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    save_lightning_checkpoint(tmp_path / "evil.ckpt", taming_state(), monkeypatch, payload=_Evil(marker))
    with pytest.raises(AutonatError, match=r"refusing to read .*evil\.ckpt: .*posix\.system"):
        read_state_dict(tmp_path / "evil.ckpt")
    assert not marker.exists()


def test_taming_errors_name_the_problem(tmp_path, monkeypatch):
    save_lightning_checkpoint(tmp_path / "last.ckpt", taming_state(), monkeypatch)
    with pytest.raises(AutonatError, match="model.yaml"):
        load_tokenizer(tmp_path / "last.ckpt")
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump(taming_model_yaml(n_embed=32)))
    with pytest.raises(AutonatError, match=r"wrong shape 1: quantize\.embedding\.weight: file \(16, 8\) vs model "
                                           r"\(32, 8\)"):
        load_tokenizer(tmp_path / "last.ckpt", tmp_path / "wrong.yaml")
    gumbel = taming_model_yaml()
    gumbel["model"]["target"] = "taming.models.vqgan.GumbelVQ"
    (tmp_path / "gumbel.yaml").write_text(yaml.safe_dump(gumbel))
    with pytest.raises(AutonatError, match="GumbelVQ is not supported"):
        load_tokenizer(tmp_path / "last.ckpt", tmp_path / "gumbel.yaml")
    (tmp_path / "other.yaml").write_text("data: {batch_size: 8}\n")
    with pytest.raises(AutonatError, match="not a taming VQGAN config"):
        load_tokenizer(tmp_path / "last.ckpt", tmp_path / "other.yaml")


# =========================================================================== end to end
def test_convert_both_and_sample_end_to_end(tmp_path, monkeypatch, official_uvit, capsys):
    """taming last.ckpt + model.yaml -> tokenizer dir; nnet_ema.pth -> checkpoint; `autonat sample` runs on them."""
    save_lightning_checkpoint(tmp_path / "last.ckpt", taming_state(), monkeypatch)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(taming_model_yaml()))
    assert main(["convert", "--weights", str(tmp_path / "last.ckpt"), "--config", str(tmp_path / "model.yaml"),
                 "--out", str(tmp_path / "tok")]) == 0  # kind detected from the keys
    shapes = official_uvit_shapes(width=32, depth=2, codebook=16, length=16, classes_with_null=4)
    torch.save(random_state(shapes, seed=6), tmp_path / "nnet_ema.pth")
    assert main(["convert", "--weights", str(tmp_path / "nnet_ema.pth"), "--out", str(tmp_path / "ckpt"),
                 "--tokenizer", str(tmp_path / "tok"), "--num-heads", "2"]) == 0
    info = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert info["model"]["num_classes"] == 3 and info["tokenizer"]["kind"] == "taming-vqgan"
    assert main(["sample", "--checkpoint", str(tmp_path / "ckpt"), "--strategy", str(OFFICIAL_T8),
                 "--classes", "0", "2", "--per-class", "2", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    pipe = Pipeline.load(tmp_path / "ckpt")
    images = pipe.images(load_strategy(OFFICIAL_T8), [0, 1, 3], seeds=[1, 2, 3])  # 3 = unconditional
    assert images.shape == (3, 3, 8, 8) and 0 <= images.min() and images.max() <= 1


def test_maskgit_generator_pipeline_at_full_tokenizer_size(tmp_path, full_maskgit):
    """A converted generator on the 16x16 grid with the full MaskGIT tokenizer: images are 256x256."""
    shapes = official_uvit_shapes(width=32, depth=2, codebook=1024, length=256, classes_with_null=3)
    torch.save(random_state(shapes, seed=7), tmp_path / "nnet_ema.pth")
    assert main(["convert", "--weights", str(tmp_path / "nnet_ema.pth"), "--out", str(tmp_path / "ckpt"),
                 "--tokenizer", str(full_maskgit[1]), "--num-heads", "2"]) == 0
    pipe = Pipeline.load(tmp_path / "ckpt")
    assert isinstance(pipe.tokenizer, MaskGITVQGAN)
    images = pipe.images(Strategy.create([0.5], [1.0], [1.0, 1.0], [0.0, 2.0]), [1], seeds=[0])
    assert images.shape == (1, 3, 256, 256)


def test_convert_refuses_the_wrong_kind(tmp_path, official_uvit, capsys):
    torch.save(official_uvit, tmp_path / "nnet_ema.pth")
    assert main(["convert", "--kind", "maskgit-vqgan", "--weights", str(tmp_path / "nnet_ema.pth"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not --kind maskgit-vqgan" in err and "AutoNAT generator" in err
    assert not (tmp_path / "out").exists()
