"""Text-conditional generation: the U-ViT's text context, the captioned token cache, training on it."""
import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import (
    FakeTextEncoder,
    tiny_recipe,
    write_caption_dataset,
    write_tiny_text_generator,
    write_tiny_tokenizer,
)

from autonat.data.captions import draw_eval_captions, read_captions
from autonat.data.token_cache import read_token_cache
from autonat.data.tokenization import tokenize_dataset
from autonat.errors import AutonatError
from autonat.generator.checkpoint import load_generator, save_generator
from autonat.generator.condition import TextCondition, concat
from autonat.generator.uvit import UViT, UViTConfig
from autonat.training.loop import batch_conditions, caption_uniforms, train
from autonat.training.masking import MaskingConfig, mask_rows
from autonat.training.recipe import recipe_from_dict

TEXT = dict(codebook_size=16, grid=(2, 3), num_classes=0, width=32, depth=2, num_heads=2, dropout=0.0,
            text_width=6, text_length=5)


def reference_logits(model: UViT, tokens: torch.Tensor, context: torch.Tensor, keys: torch.Tensor | None):
    """The U-ViT forward written out from the state dict: embeddings, pre-norm blocks with an explicit
    softmax attention (key mask as -inf), long skips, the tied head; logits of the image positions."""
    sd, c = model.state_dict(), model.config
    heads, d = c.num_heads, c.width // c.num_heads

    def ln(x, name, eps=1e-5):
        return F.layer_norm(x, (c.width,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps)

    def lin(x, name):
        return x @ sd[f"{name}.weight"].T + (sd[f"{name}.bias"] if f"{name}.bias" in sd else 0)

    def block(x, name, skip=None):
        if skip is not None:
            x = lin(torch.cat([x, skip], -1), f"{name}.skip")
        h = ln(x, f"{name}.norm1")
        q, k, v = lin(h, f"{name}.attn.qkv").split(c.width, -1)
        q, k, v = (t.view(*t.shape[:2], heads, d).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / d ** 0.5
        if keys is not None:
            scores = scores.masked_fill(~keys[:, None, None, :], float("-inf"))
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(*x.shape)
        x = x + lin(a, f"{name}.attn.proj")
        h = lin(F.gelu(lin(ln(x, f"{name}.norm2"), f"{name}.mlp.fc1")), f"{name}.mlp.fc2")
        return x + h

    img = sd["token_embed.tokens.weight"][tokens] + sd["token_embed.positions.weight"][: tokens.shape[1]]
    img = F.layer_norm(img, (c.width,), sd["token_embed.norm.weight"], sd["token_embed.norm.bias"], 1e-6)
    x = torch.cat([context, img], 1)
    skips = []
    for i in range(c.depth // 2):
        x = block(x, f"in_blocks.{i}")
        skips.append(x)
    x = block(x, "mid_block")
    for i in range(c.depth // 2):
        x = block(x, f"out_blocks.{i}", skips.pop())
    h = ln(F.gelu(lin(ln(x, "final_norm"), "head.fc")), "head.norm")
    logits = h @ sd["token_embed.tokens.weight"].T + sd["head.bias"]
    return logits[:, context.shape[1]:, : c.codebook_size]


def _text_model(seed=0):
    torch.manual_seed(seed)
    return UViT(UViTConfig(**TEXT)).eval()


def test_text_logits_equal_an_independent_computation():
    model = _text_model()
    enc = FakeTextEncoder()
    cond = enc.encode(["a 3 next to a 7", "two words", ""])
    tokens = torch.randint(0, 17, (3, 6), generator=torch.Generator().manual_seed(1))
    sd = model.state_dict()
    context = cond.hidden @ sd["text_embed.weight"].T + sd["text_embed.bias"] + sd["text_positions"]
    keys = torch.cat([cond.mask, torch.ones(3, 6, dtype=torch.bool)], 1)
    expected = reference_logits(model, tokens, context, keys)
    assert torch.allclose(model(tokens, cond), expected, atol=1e-5)
    # padding positions are masked keys: changing their hidden states changes nothing
    noisy = TextCondition(torch.where(cond.mask[..., None], cond.hidden, torch.randn_like(cond.hidden)), cond.mask)
    assert torch.allclose(model(tokens, noisy), model(tokens, cond), atol=1e-6)
    # ... while a real token's does
    other = cond.hidden.clone()
    other[0, 1] += 1.0
    assert not torch.allclose(model(tokens, TextCondition(other, cond.mask))[0], model(tokens, cond)[0], atol=1e-4)


def test_class_conditional_unchanged(tiny_model, tiny_config):
    """The class model: same parameter names as always (the released weights' layout), logits equal to the
    written-out forward with the class token as context and no key mask."""
    names = set(tiny_model.state_dict())
    assert "class_embed.tokens.weight" in names and not any(n.startswith(("text_", "empty_")) for n in names)
    tokens = torch.randint(0, 17, (3, 16), generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 2, 3])
    sd = tiny_model.state_dict()
    ctx = F.layer_norm(sd["class_embed.tokens.weight"][labels][:, None] + sd["class_embed.positions.weight"][:1],
                       (32,), sd["class_embed.norm.weight"], sd["class_embed.norm.bias"], 1e-6)
    assert torch.allclose(tiny_model(tokens, labels), reference_logits(tiny_model, tokens, ctx, None), atol=1e-5)
    assert torch.equal(tiny_model(tokens, labels), _class_forward_before_text(tiny_model, tokens, labels))
    assert torch.equal(tiny_model.null_condition(labels), torch.full((3,), 3))


def _class_forward_before_text(model: UViT, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The class-conditional forward as it was before text conditioning, op for op on the model's own
    layers (attention without any mask argument): bit-identical outputs show the key-mask path is unused."""
    def attention(attn, x):
        b, n, w = x.shape
        q, k, v = attn.qkv(x).view(b, n, 3, attn.num_heads, w // attn.num_heads).permute(2, 0, 3, 1, 4)
        return attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w))

    def block(blk, x, skip=None):
        if skip is not None:
            x = blk.skip(torch.cat([x, skip], dim=-1))
        x = x + attention(blk.attn, blk.norm1(x))
        return x + blk.mlp(blk.norm2(x))

    x = torch.cat([model.class_embed(labels[:, None]), model.token_embed(tokens)], dim=1)
    skips = []
    for blk in model.in_blocks:
        x = block(blk, x)
        skips.append(x)
    x = block(model.mid_block, x)
    for blk in model.out_blocks:
        x = block(blk, x, skips.pop())
    return model.head(model.final_norm(x), model.token_embed.tokens.weight)[:, 1:, : model.config.codebook_size]


def test_wrong_condition_kind_is_one_clear_error(tiny_model):
    text = _text_model()
    cond = FakeTextEncoder().encode(["x"])
    with pytest.raises(AutonatError, match="text-conditional.*--classes"):
        text(torch.zeros(1, 6, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(AutonatError, match="class-conditional.*--prompt"):
        tiny_model(torch.zeros(1, 16, dtype=torch.long), cond)
    with pytest.raises(AutonatError, match="encoder the checkpoint records"):
        text(torch.zeros(1, 6, dtype=torch.long), FakeTextEncoder(width=4).encode(["x"]))


def test_null_condition_is_the_stored_empty_caption_and_survives_save_load(tmp_path):
    model = _text_model()
    enc = FakeTextEncoder()
    model.set_empty_caption(enc.encode([""]))
    cond = enc.encode(["one", "two three"])
    null = model.null_condition(cond)
    assert torch.equal(null.hidden, enc.encode(["", ""]).hidden) and torch.equal(null.mask, enc.encode(["", ""]).mask)
    both = concat(cond, null)  # the sampler's batched guidance
    assert len(both) == 4
    save_generator(tmp_path / "g", model, model.config, {"path": "none"}, meta={"text_encoder": {"name": enc.name}})
    loaded = load_generator(tmp_path / "g")
    assert loaded.config == model.config and loaded.meta["text_encoder"]["name"] == enc.name
    assert torch.equal(loaded.model.empty_hidden, model.empty_hidden)
    assert torch.equal(loaded.model.empty_mask, model.empty_mask)
    tokens = torch.randint(0, 17, (2, 6))
    assert torch.equal(loaded.model(tokens, cond), model(tokens, cond))


def test_condition_dropout_uses_the_empty_caption():
    enc = FakeTextEncoder()
    cond, empty = enc.encode(["a b", "c d", "e f", "g h"]), enc.encode([""])
    tokens = torch.zeros(4, 6, dtype=torch.long)
    cfg = MaskingConfig(p_uncond=0.5)
    batch = mask_rows(tokens, cond, 0, (3, 0), cfg, 16, empty)
    dropped = (batch.labels.hidden == empty.hidden).flatten(1).all(1)
    kept = (batch.labels.hidden == cond.hidden).flatten(1).all(1)
    assert (dropped | kept).all() and dropped.any() and kept.any()
    # the class path draws the same masks and drops the same rows
    ids = mask_rows(tokens, torch.arange(4), 0, (3, 0), cfg, 16, 9)
    assert torch.equal(ids.mask, batch.mask) and torch.equal(ids.labels == 9, dropped)


# --------------------------------------------------------------------------- captioned data and cache
@pytest.mark.parametrize("kind", ["jsonl", "coco"])
def test_tokenize_a_captioned_dataset(tmp_path, kind):
    images, file = write_caption_dataset(tmp_path / "data", kind)
    listing = read_captions(file, images)
    assert len(listing) == 6 and [len(c) for c in listing.captions] == [2, 3, 2, 3, 2, 3]
    assert listing.uncaptioned == (1 if kind == "coco" else 0)
    tok = write_tiny_tokenizer(tmp_path / "tok")
    enc = FakeTextEncoder()
    n = tokenize_dataset(str(images), tok, tmp_path / "cache", image_size=8, captions=file, text_encoder="fake",
                         encoder=enc, batch_size=4)
    cache = read_token_cache(tmp_path / "cache")
    assert n == 6 and cache.is_text and cache.num_classes == 0 and (cache.labels == -1).all()
    feats = cache.captions
    assert feats.hidden.dtype == np.float16 and isinstance(feats.hidden, np.memmap)
    assert feats.counts.tolist() == [2, 3, 2, 3, 2, 3] and feats.hidden.shape == (15, 5, 6)
    assert feats.encoder == {"spec": "fake", "name": enc.name, "width": 6, "max_length": 5}
    texts = feats.texts()
    assert texts[1] == ["picture 1 caption 0", "picture 1 caption 1", "picture 1 caption 2"]
    # caption j of image i is the encoder's output for that text, rounded to float16
    row = feats.offsets[3] + 2
    direct = enc.encode([texts[3][2]])
    assert torch.equal(feats.condition([row]).hidden, direct.hidden.half().float())
    assert torch.equal(feats.condition([row]).mask, direct.mask)
    assert torch.equal(feats.empty().hidden, enc.encode([""]).hidden.half().float())


def test_caption_file_errors(tmp_path):
    images, file = write_caption_dataset(tmp_path / "d", "jsonl", n=2)
    with pytest.raises(AutonatError, match="caption file not found"):
        read_captions(tmp_path / "nope.jsonl", images)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "0.png", "caption": "x"}\n{"img": "1.png"}\n')
    with pytest.raises(AutonatError, match=r"bad.jsonl:2: .*fix that line"):
        read_captions(bad, images)
    with pytest.raises(AutonatError, match="not found.*data.source"):
        read_captions(file, tmp_path)


def _captioned_cache(tmp_path, hflip=False):
    images, file = write_caption_dataset(tmp_path / "data", "jsonl", n=8)
    tok = write_tiny_tokenizer(tmp_path / "tok")
    tokenize_dataset(str(images), tok, tmp_path / "cache", image_size=8, captions=file, text_encoder="fake",
                     encoder=FakeTextEncoder(), batch_size=4, hflip=hflip)
    return tmp_path / "cache"


def test_caption_draws_are_per_position_and_cover_each_images_captions(tmp_path):
    cache = read_token_cache(_captioned_cache(tmp_path))
    u = caption_uniforms(0, np.arange(40))
    assert np.array_equal(u[10:20], caption_uniforms(0, np.arange(10, 20)))  # a position's draw is its own
    assert ((0 <= u) & (u < 1)).all() and not np.array_equal(u, caption_uniforms(1, np.arange(40)))
    labels = torch.full((8,), -1)
    rows = set()
    for step in range(12):
        idx = np.arange(8)
        cond = batch_conditions(step * 8 + idx, idx, 0, labels[idx], cache.captions)
        for i in idx:  # each row is one of its image's own captions
            mine = cache.captions.condition(np.arange(cache.captions.offsets[i], cache.captions.offsets[i + 1]))
            match = (mine.hidden == cond.hidden[i]).flatten(1).all(1)
            assert match.sum() >= 1
            rows.add((int(i), int(match.float().argmax())))
    assert len(rows) == int(cache.captions.counts.sum())  # every caption shown within 12 steps
    # a process's rows of a global batch get the captions the whole batch gives them
    idx, positions = np.array([3, 1, 4, 1, 5, 0, 2, 6]), np.arange(40, 48)
    whole = batch_conditions(positions, idx, 0, labels[idx], cache.captions)
    part = batch_conditions(positions[4:], idx[4:], 0, labels[idx[4:]], cache.captions)
    assert torch.equal(part.hidden, whole.hidden[4:]) and torch.equal(part.mask, whole.mask[4:])


def test_hflip_copies_share_their_images_captions(tmp_path):
    cache = read_token_cache(_captioned_cache(tmp_path, hflip=True))
    texts = cache.captions.texts()
    assert len(cache) == 16 and texts[0] == texts[4] and texts[4] == ["picture 0 caption 0", "picture 0 caption 1"]


def _losses(run):
    with open(run / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_training_on_captions_resumes_exactly(tmp_path, monkeypatch):
    cache = _captioned_cache(tmp_path)
    recipe = tiny_recipe(cache, tmp_path / "a", steps=12, checkpoint_every=6)
    final = train(recipe_from_dict(recipe))
    train(recipe_from_dict({**recipe, "train": {**recipe["train"], "out_dir": str(tmp_path / "b"), "steps": 6}}))
    resumed = train(recipe_from_dict({**recipe, "train": {**recipe["train"], "out_dir": str(tmp_path / "b")}}))
    assert _losses(tmp_path / "a") == pytest.approx(_losses(tmp_path / "b"), abs=1e-6)
    a, b = load_generator(final), load_generator(resumed)
    assert a.config.text_width == 6 and a.config.text_length == 5 and a.config.num_classes == 0
    assert a.meta["text_encoder"]["name"] == FakeTextEncoder().name
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k
    empty = read_token_cache(cache).captions.empty()
    assert torch.equal(a.model.empty_hidden, empty.hidden) and torch.equal(a.model.empty_mask, empty.mask)
    assert json.loads((tmp_path / "a" / "cache.json").read_text())["text_encoder"] == FakeTextEncoder().name


def test_training_refuses_a_cache_of_another_encoder(tmp_path, monkeypatch):
    import autonat.training.loop as loop

    cache = _captioned_cache(tmp_path)
    monkeypatch.setattr(loop, "open_text_encoder", lambda spec, device="cpu": FakeTextEncoder(tag="1" * 16))
    recipe = {**tiny_recipe(cache, tmp_path / "run", steps=2), "text": {"encoder": "other"}}
    with pytest.raises(AutonatError, match="was made with text encoder fake-words@0+ .*autonat tokenize"):
        train(recipe_from_dict(recipe))


def test_sampler_decodes_a_text_model_with_guidance():
    """The unchanged sampler on the text U-ViT: per-sample seeds give the same tokens alone or in a batch,
    and guidance runs the empty-caption pass (batched and split alike)."""
    from autonat.sampling.options import SamplerOptions
    from autonat.sampling.sampler import TokenSpace, make_generators, sample_seeds, sample_tokens
    from autonat.strategy.core import autonat_init

    model = _text_model()
    model.set_empty_caption(FakeTextEncoder().encode([""]))
    space = TokenSpace.of(model.config)
    cond = FakeTextEncoder().encode(["a 3 next to a 7", "the digits 1 and 2", "x"])
    strategy = autonat_init(4)
    together = sample_tokens(model, strategy, cond, make_generators(sample_seeds(5, range(3))), space)
    alone = sample_tokens(model, strategy, cond[1], make_generators(sample_seeds(5, [1])), space)
    split = sample_tokens(model, strategy, cond, make_generators(sample_seeds(5, range(3))), space,
                          SamplerOptions(cfg_batching="split"))
    assert together.shape == (3, 6) and torch.equal(together[1:2], alone) and torch.equal(together, split)


# --------------------------------------------------------------------------- the command line
class RecordingEncoder(FakeTextEncoder):
    calls: list = []

    def encode(self, captions):
        RecordingEncoder.calls.append(list(captions))
        return super().encode(captions)


@pytest.fixture
def fake_encoder(monkeypatch):
    import autonat.sampling.pipeline as pipeline

    RecordingEncoder.calls = []
    monkeypatch.setattr(pipeline, "open_text_encoder", lambda spec, device="cpu": RecordingEncoder())
    return RecordingEncoder


def test_sample_prompts_end_to_end(tmp_path, fake_encoder, capsys):
    from PIL import Image

    from autonat.cli.main import main

    gen = write_tiny_text_generator(tmp_path)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("the digits 1 and 2\n\nsix\n")
    out = tmp_path / "grid.png"
    argv = ["sample", "--checkpoint", str(gen), "--prompt", "a 3 next to a 7", "--prompts", str(prompts),
            "--per-prompt", "3", "--steps", "3", "--cfg", "2", "--out", str(out), "--npz", str(tmp_path / "s.npz"),
            "--png-dir", str(tmp_path / "pngs")]
    assert main(argv) == 0
    assert "3 prompts x 3" in capsys.readouterr().out
    assert Image.open(out).size == (3 * 10 + 2, 3 * 10 + 2)  # 3 columns, 3 rows of 8 px images, padding 2
    assert np.load(tmp_path / "s.npz")["arr_1"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir())[3] == "000003_prompt1.png"
    encoded = [c for call in fake_encoder.calls for c in call]
    assert encoded == ["a 3 next to a 7"] * 3 + ["the digits 1 and 2"] * 3 + ["six"] * 3
    # per-sample seeds: the same run in batches of 2 gives the same grid
    first = np.asarray(Image.open(out))
    assert main([*argv[:-4], "--batch-size", "2", "--trace", str(tmp_path / "trace.png"), "--trace-samples", "2"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), first)
    assert Image.open(tmp_path / "trace.png").size[0] > 0


def test_eval_on_a_caption_file(tmp_path, fake_encoder):
    from autonat.cli.main import main
    from autonat.data.captions import draw_eval_captions, read_caption_groups

    gen = write_tiny_text_generator(tmp_path)
    images, file = write_caption_dataset(tmp_path / "data", "coco", n=6, size=8)
    results = tmp_path / "eval.jsonl"
    assert main(["eval", "--checkpoint", str(gen), "--captions", str(file), "-n", "4", "--steps", "2",
                 "--reference", str(images), "--feature-extractor", "digits", "--results", str(results),
                 "--no-progress"]) == 0
    record = json.loads(results.read_text().splitlines()[-1])
    assert record["n"] == 4 and record["captions"] == str(file) and np.isfinite(record["metrics"]["fid"])
    assert record["text_encoder"] == FakeTextEncoder().name
    groups = read_caption_groups(file)
    drawn = draw_eval_captions(groups, 4)
    assert sorted(c for call in fake_encoder.calls for c in call) == sorted(drawn)
    # four distinct images, one caption each
    owners = [next(i for i, g in enumerate(groups) if c in g) for c in drawn]
    assert len(set(owners)) == 4


def test_eval_captions_cover_images_before_repeating():
    groups = [[f"image {i} caption {j}" for j in range(1 + i % 3)] for i in range(5)]
    drawn = draw_eval_captions(groups, 12, seed=1)
    owners = [int(c.split()[1]) for c in drawn]
    assert sorted(owners[:5]) == list(range(5)) and sorted(owners[5:10]) == list(range(5))
    assert drawn == draw_eval_captions(groups, 12, seed=1) and drawn != draw_eval_captions(groups, 12, seed=2)


@pytest.mark.slow
def test_search_generation_on_a_text_model(tmp_path, fake_encoder):
    from autonat.cli.main import main

    gen = write_tiny_text_generator(tmp_path)
    images, file = write_caption_dataset(tmp_path / "data", "jsonl", n=6, size=8)
    out = tmp_path / "search"
    assert main(["search", "generation", "--checkpoint", str(gen), "--captions", str(file), "--steps", "2",
                 "--n-eval", "4", "--iterations", "1", "--method", "spsa", "--noise-seeds", "0",
                 "--reference", str(images), "--feature-extractor", "digits", "--out", str(out)]) == 0
    inputs = json.loads((out / "inputs.json").read_text())
    assert inputs["captions"]["path"] == str(file.resolve()) and len(inputs["captions"]["sha256"]) == 16


def test_non_square_images_kept_whole(tmp_path, fake_encoder):
    """``crop=False``: 8 x 16 images give a 4 x 8 token grid, and a generator of that grid samples 8 x 16 images
    through the square tokenizer (its shorter side is the tokenizer's)."""
    from autonat.sampling.pipeline import Pipeline, fits_grid
    from autonat.strategy.core import autonat_init

    images, file = write_caption_dataset(tmp_path / "data", "jsonl", n=3, size=8, width=16)
    tok = write_tiny_tokenizer(tmp_path / "tok")
    tokenize_dataset(str(images), tok, tmp_path / "cache", image_size=8, captions=file, text_encoder="fake",
                     encoder=FakeTextEncoder(), crop=False)
    cache = read_token_cache(tmp_path / "cache")
    assert cache.grid == (4, 8) and cache.tokens.shape == (3, 32)
    gen = write_tiny_text_generator(tmp_path / "model", grid=(4, 8))
    pipe = Pipeline.load(gen, tokenizer=tok)
    assert pipe.images(autonat_init(2), ["a b"], [0]).shape == (1, 3, 8, 16)
    assert fits_grid((4, 4), (4, 8)) and fits_grid((4, 4), (4, 4)) and not fits_grid((4, 4), (8, 16))


@pytest.mark.slow
def test_captioned_training_does_not_depend_on_how_the_batch_is_split(tmp_path):
    """Captions drawn and dropped per row of the global batch: 2 micro-batches of 8 train as 1 batch of 16."""
    from safetensors.torch import load_file

    cache = _captioned_cache(tmp_path)
    one = tiny_recipe(cache, tmp_path / "one", steps=4, checkpoint_every=4)
    one["model"]["dropout"] = 0.0
    one["masking"]["p_uncond"] = 0.5
    train(recipe_from_dict(one))
    two = {**one, "train": {**one["train"], "out_dir": str(tmp_path / "two"), "grad_accum_steps": 2}}
    train(recipe_from_dict(two))
    a = load_file(tmp_path / "one" / "checkpoints" / "step_4" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoints" / "step_4" / "model.safetensors")
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-5


def test_caption_images_follow_the_resize_policy(tmp_path):
    from PIL import Image
    from torchvision.transforms import functional as TF

    from autonat.data.captions import CaptionImageDataset
    from autonat.data.images import resize_centre_crop

    images, file = write_caption_dataset(tmp_path / "d", "jsonl", n=2, size=20, width=30)
    listing = read_captions(file, images)
    image, index = CaptionImageDataset(listing, 8, resize="adm")[1]
    expected = TF.to_tensor(resize_centre_crop(Image.open(listing.images[1]).convert("RGB"), 8, "adm"))
    assert index == 1 and torch.equal(image, expected)
    assert CaptionImageDataset(listing, 8, crop=False)[0][0].shape == (3, 8, 12)
    with pytest.raises(AutonatError, match="data.crop"):
        CaptionImageDataset(listing, 8, crop=False, resize="adm")


def test_the_mscoco_recipe_is_a_text_recipe():
    from pathlib import Path

    from autonat.training.recipe import load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "configs" / "mscoco_autonat_s.yaml")
    assert recipe.text.encoder.startswith("clip:") and recipe.data.captions.endswith("captions_train2014.json")
    assert recipe.model.architecture()["width"] == 512 and recipe.masking.p_uncond == 0.1
