"""aMUSEd through diffusers: our wrapper, sampler and ``amused`` strategy against ``AmusedPipeline`` itself.

A tiny random ``AmusedPipeline`` is built from configs and saved to disk (no
download). What must agree:

* the logits of our generator wrapper and of the transformer called as the
  pipeline calls it (same text states, pooled embedding, micro-conditioning);
* the tokens of our sampler and of the pipeline in greedy settings: sampling
  temperature 0 and re-masking temperature 0. The scheduler always draws
  tokens with ``torch.multinomial``; for the greedy run it is replaced by the
  argmax, everything else of the pipeline runs as released. This holds while
  no two confidences tie exactly at a step's cut-off, true of the 4x4 grid
  here; where they tie the two differ by design (see
  ``test_exact_ties_at_the_cut_off_are_where_greedy_re_masking_differs``);
* the per-step masked counts of the zoo's ``amused`` strategy and of the
  scheduler, also at temperature 1 where the tokens themselves cannot agree
  (the scheduler draws from one generator for the whole batch, in its own
  order; we draw per sample), and the distribution of the drawn tokens.
"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from amused_helpers import CODEBOOK, GRID_SIDE, IMAGE_SIDE, MASK_ID, write_tiny_amused  # noqa: E402

from autonat.sampling.amused import load_amused  # noqa: E402
from autonat.sampling.sampler import TokenSpace, decode, make_generators, sample_tokens  # noqa: E402
from autonat.strategy.core import Strategy  # noqa: E402
from autonat.strategy.zoo import amused  # noqa: E402

PROMPTS = ["the dog", "a cat at the door", ""]
L = GRID_SIDE * GRID_SIDE
SPACE = TokenSpace(mask_id=MASK_ID, null_class=1, grid=(GRID_SIDE, GRID_SIDE))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_amused(tmp_path_factory.mktemp("amused") / "pipeline")


@pytest.fixture(scope="module")
def theirs(folder):
    from diffusers import AmusedPipeline

    pipe = AmusedPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def ours(folder):
    return load_amused(folder)


def record_transformer_calls(pipe):
    """Every call the pipeline makes to its transformer: (positional args, keyword args, output)."""
    calls = []

    def hook(module, args, kwargs, output):
        calls.append((args, kwargs, output))

    return calls, pipe.transformer.register_forward_hook(hook, with_kwargs=True)


def greedy(strategy: Strategy) -> Strategy:
    return Strategy.create(strategy.mask_ratio, strategy.remask_temp, [0.0] * strategy.steps, strategy.cfg_scale)


def test_logits_equal_the_transformers_as_the_pipeline_calls_it(theirs, ours):
    calls, handle = record_transformer_calls(theirs)
    try:
        theirs(PROMPTS, num_inference_steps=2, guidance_scale=3.0, output_type="latent",
               generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    (ids,), kwargs, logits = calls[1]  # the second step: a canvas with decoded and masked tokens
    assert (ids == MASK_ID).any() and (ids != MASK_ID).any()
    b = len(PROMPTS)
    cond = ours.text_encoder.encode(PROMPTS)
    null = ours.model.null_condition(cond)
    # the pipeline's batch is [negative prompts; prompts], its micro-conditioning [W, H, 0, 0, 6]
    assert torch.equal(kwargs["encoder_hidden_states"][b:], cond.hidden)
    assert torch.equal(kwargs["pooled_text_emb"][b:], cond.pooled)
    # the pipeline encodes "" once per prompt in one batch, we once: equal up to batch-size rounding
    assert torch.allclose(kwargs["encoder_hidden_states"][:b], null.hidden, rtol=0, atol=1e-6)
    assert torch.allclose(kwargs["pooled_text_emb"][:b], null.pooled, rtol=0, atol=1e-6)
    assert kwargs["micro_conds"].tolist() == [[IMAGE_SIDE, IMAGE_SIDE, 0, 0, 6]] * (2 * b)
    with torch.no_grad():
        mine = ours.model(ids[b:].reshape(b, L), cond)
        mine_null = ours.model(ids[:b].reshape(b, L), null)
    expected = logits.flatten(2).transpose(1, 2)  # [2B, V, h, w] -> [2B, L, V]
    assert mine.shape == (b, L, CODEBOOK)
    diff = max((mine - expected[b:]).abs().max().item(), (mine_null - expected[:b]).abs().max().item())
    # against a batch of 2B rows: equal up to batch-size rounding; against the same rows called alone: exactly
    with torch.no_grad():
        alone = theirs.transformer(ids[b:], encoder_hidden_states=kwargs["encoder_hidden_states"][b:],
                                   pooled_text_emb=kwargs["pooled_text_emb"][b:], micro_conds=kwargs["micro_conds"][b:])
    exact = (mine - alone.flatten(2).transpose(1, 2)).abs().max().item()
    print(f"max |logit difference|: {diff:.3g} against the pipeline's batched call, {exact:.3g} against the same "
          f"rows (logits of std {expected.std():.3g})")
    assert diff <= 1e-5 and exact == 0.0


@pytest.mark.parametrize("steps, guidance", [(4, 1.0), (12, 10.0), (6, 3.0)])
def test_greedy_tokens_equal_the_pipelines(theirs, ours, monkeypatch, steps, guidance):
    def argmax_draw(probs, num_samples, generator=None):
        return probs.argmax(-1, keepdim=True)

    monkeypatch.setattr(torch, "multinomial", argmax_draw)
    expected = theirs(PROMPTS, num_inference_steps=steps, guidance_scale=guidance, temperature=(0, 0),
                      output_type="latent", generator=torch.Generator().manual_seed(0)).images
    monkeypatch.undo()
    strategy = greedy(amused(steps, guidance_scale=guidance, temperature=(0.0, 0.0)))
    assert set(strategy.cfg_scale) == {guidance - 1.0 if guidance > 1 else 0.0}
    tokens = sample_tokens(ours.model, strategy, ours.text_encoder.encode(PROMPTS),
                           make_generators(range(len(PROMPTS))), SPACE)
    assert tokens.shape == (len(PROMPTS), L) and int(tokens.max()) < CODEBOOK
    assert torch.equal(tokens, expected.reshape(len(PROMPTS), L))


def scheduler_counts(length: int, steps: int, temperature=(2, 0), seed: int = 0) -> list[int]:
    """Tokens still masked after each ``AmusedScheduler.step`` on a ``length``-token canvas (random logits)."""
    from diffusers import AmusedScheduler

    scheduler = AmusedScheduler(mask_token_id=8)
    scheduler.set_timesteps(steps, temperature)
    gen = torch.Generator().manual_seed(seed)
    sample = torch.full((1, length), 8)
    counts = []
    for timestep in scheduler.timesteps:
        logits = torch.randn(1, length, 8, generator=gen)
        sample = scheduler.step(logits, timestep, sample, generator=gen).prev_sample
        counts.append(int((sample == 8).sum()))
    return counts


@pytest.mark.parametrize("length", [16, 256, 1024])
def test_amused_strategy_counts_equal_the_schedulers(length):
    for steps in (1, 2, 3, 6, 8, 12, 16, 24):
        assert amused(steps).masked_counts(length) == scheduler_counts(length, steps), (length, steps)
    # the float32 cosine matters: cos(pi/3) is 0.49999997 in float32, so 12 steps keep 127 of 256 masked, not 128
    assert amused(12).masked_counts(256)[7] == 127 and math.floor(256 * math.cos(math.pi / 3)) == 128


def test_exact_ties_at_the_cut_off_are_where_greedy_re_masking_differs(monkeypatch):
    """With re-masking temperature 0, ``AmusedScheduler`` masks the tokens whose confidence is strictly below
    the ``mask_len``-th smallest: positions tied with it all stay decoded, so it can keep fewer masked than its
    schedule. Our sampler keeps exactly the schedule's count (ties broken by position). aMUSEd's transformer has
    no position embedding, so on an all-[MASK] canvas every position out of reach of the border's convolutions
    has the same logits; any re-masking temperature above 0 (its defaults: 2 -> 0) breaks such ties."""
    from diffusers import AmusedScheduler

    scheduler = AmusedScheduler(mask_token_id=8)
    scheduler.set_timesteps(4, (0, 0))
    logits = torch.zeros(1, 16, 8)
    logits[..., 3] = 1.0  # every position: the same prediction, the same confidence (p = 0.28)
    monkeypatch.setattr(torch, "multinomial", lambda probs, n, generator=None: probs.argmax(-1, keepdim=True))
    step = scheduler.step(logits, scheduler.timesteps[0], torch.full((1, 16), 8), generator=torch.Generator())
    assert int((step.prev_sample == 8).sum()) == 0  # the schedule says keep 14 masked; ties keep none
    assert amused(4, temperature=(0.0, 0.0)).masked_counts(16)[0] == 14


def test_sampled_runs_mask_the_same_counts_each_step(theirs, ours):
    """At aMUSEd's defaults (temperature 1, re-masking 2 -> 0, g = 10) tokens differ, the counts may not."""
    steps = 12
    seen = []
    theirs(PROMPTS, num_inference_steps=steps, output_type="latent", generator=torch.Generator().manual_seed(1),
           callback=lambda i, t, latents: seen.append((latents == MASK_ID).flatten(1).sum(1).tolist()))
    states = list(decode(ours.model, amused(steps), ours.text_encoder.encode(PROMPTS),
                         make_generators(range(len(PROMPTS))), SPACE))
    ours_counts = [s.masked.sum(1).tolist() for s in states]
    expected = [[c] * len(PROMPTS) for c in amused(steps).masked_counts(L)]
    assert seen == expected and ours_counts == expected


def test_first_step_tokens_follow_the_same_distribution(theirs, ours):
    """One step at temperature 1: both draw each token from softmax(uncond + g (cond - uncond)).

    Over 400 runs of one prompt, the frequency of every code at every position
    agrees with those probabilities for both samplers (each within 5 binomial
    standard deviations), which a draw from other logits would not.
    """
    n, g = 400, 3.0
    prompt = ["the dog"]
    cond = ours.text_encoder.encode(prompt)
    blank = torch.full((1, L), MASK_ID)
    with torch.no_grad():
        c, u = ours.model(blank, cond), ours.model(blank, ours.model.null_condition(cond))
    probs = torch.softmax(u + g * (c - u), -1)[0]  # [L, V]
    theirs_tokens = theirs(prompt * n, num_inference_steps=1, guidance_scale=g, output_type="latent",
                           generator=torch.Generator().manual_seed(2)).images.reshape(n, L)
    ours_tokens = sample_tokens(ours.model, amused(1, guidance_scale=g), cond.repeat(n),
                                make_generators(range(n)), SPACE)
    sd = (probs * (1 - probs) / n).sqrt()
    for tokens in (theirs_tokens, ours_tokens):
        freq = torch.nn.functional.one_hot(tokens, CODEBOOK).float().mean(0)
        assert ((freq - probs).abs() <= 5 * sd + 1e-3).all()
    assert probs.max(-1).values.min() < 0.99  # the check has teeth: draws are not near-deterministic


def test_tokenizer_round_trip_and_shapes(ours):
    tok = ours.tokenizer
    assert tok.codebook_size == CODEBOOK and tok.grid == (GRID_SIDE, GRID_SIDE) and tok.image_size == IMAGE_SIDE
    ids = torch.randint(0, CODEBOOK, (2, GRID_SIDE, GRID_SIDE), generator=torch.Generator().manual_seed(0))
    images = tok.decode(ids)
    assert images.shape == (2, 3, IMAGE_SIDE, IMAGE_SIDE) and 0 <= images.min() and images.max() <= 1
    codes = tok.encode(images)
    assert codes.shape == ids.shape and codes.dtype == torch.long and int(codes.max()) < CODEBOOK
    # encode is the nearest codebook entry of each latent vector, as the img2img pipeline quantises
    latents = tok.vqvae.encode(images).latents.permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = torch.cdist(latents, tok.vqvae.quantize.embedding.weight).argmin(-1)
    assert torch.equal(codes.flatten(), nearest)


def test_missing_or_wrong_folders_are_clear_errors(tmp_path, folder):
    from autonat.errors import AutonatError

    with pytest.raises(AutonatError, match="model_index.json"):
        load_amused(tmp_path)
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(AutonatError, match="not AmusedPipeline"):
        load_amused(tmp_path)
    (tmp_path / "model_index.json").write_text('{"_class_name": "AmusedPipeline"}')
    with pytest.raises(AutonatError, match="lacks vqvae/, transformer/"):
        load_amused(tmp_path)
    from autonat.sampling.pipeline import Pipeline

    with pytest.raises(AutonatError, match="is an aMUSEd pipeline: pass that folder"):
        Pipeline.load(folder / "transformer")


def test_missing_diffusers_names_the_extra(monkeypatch):
    import builtins

    from autonat.errors import AutonatError
    from autonat.io.diffusers_folder import import_diffusers

    real_import = builtins.__import__

    def no_diffusers(name, *args, **kwargs):
        if name == "diffusers":
            raise ImportError("no diffusers", name="diffusers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_diffusers)
    with pytest.raises(AutonatError, match=r"diffusers is missing.*pip install -e '\.\[diffusers\]'"):
        import_diffusers()


def test_pipeline_loads_the_folder_and_gives_the_pipelines_images(theirs, folder, monkeypatch):
    """``Pipeline.load`` recognises the folder; greedy images equal ``AmusedPipeline``'s, decoded by its VQ model."""
    from autonat.sampling.pipeline import AmusedPipeline, Pipeline

    pipe = Pipeline.load(folder)
    assert isinstance(pipe, AmusedPipeline) and pipe.token_space == SPACE and pipe.num_classes == 0
    monkeypatch.setattr(torch, "multinomial", lambda probs, n, generator=None: probs.argmax(-1, keepdim=True))
    expected = theirs(PROMPTS, num_inference_steps=6, temperature=(0, 0), output_type="pt",
                      generator=torch.Generator().manual_seed(0)).images
    monkeypatch.undo()
    strategy = greedy(amused(6, temperature=(0.0, 0.0)))
    images = pipe.images(strategy, PROMPTS, seeds=[0, 1, 2])
    assert images.shape == (3, 3, IMAGE_SIDE, IMAGE_SIDE)
    assert (images - expected).abs().max() <= 1e-6
    # sampled (temperature 1): a sample depends on its own seed and caption only, not on the batch
    tokens = pipe.tokens(amused(6), PROMPTS, seeds=[5, 6, 7])
    assert torch.equal(tokens[1:], pipe.tokens(amused(6), PROMPTS[1:], seeds=[6, 7]))
    with pytest.raises(Exception, match="captions"):
        pipe.tokens(strategy, [0, 1], seeds=[0, 1])
    with pytest.raises(Exception, match="drop --tokenizer"):
        Pipeline.load(folder, tokenizer="elsewhere")


def test_a_search_records_the_transformer_weights(folder):
    from autonat.search.objective import objective_inputs
    from autonat.tokenizers.base import fingerprint

    inputs = objective_inputs(folder, "demo:heldout")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    assert inputs["checkpoint"] == str(folder.resolve()) and inputs["checkpoint_fingerprint"] == fingerprint(weights)


@pytest.mark.slow
def test_sample_eval_and_search_run_on_the_folder(folder, tmp_path):
    """``autonat sample | eval | search generation --checkpoint FOLDER`` end to end, from captions."""
    import json

    from autonat.cli.main import main
    from autonat.strategy.files import load_strategy

    grid = tmp_path / "grid.png"
    assert main(["sample", "--checkpoint", str(folder), "--schedule", "amused", "--steps", "4",
                 "--prompt", "the dog", "--prompt", "a cat", "--per-prompt", "2", "--out", str(grid),
                 "--npz", str(tmp_path / "s.npz")]) == 0
    import numpy as np

    assert np.load(tmp_path / "s.npz")["arr_0"].shape == (4, IMAGE_SIDE, IMAGE_SIDE, 3) and grid.exists()
    captions = tmp_path / "captions.txt"
    captions.write_text("the dog\na cat at the door\nthe cat\n")
    common = ["--reference", "demo:heldout", "--feature-extractor", "digits", "--captions", str(captions),
              "--batch-size", "6"]
    assert main(["eval", "--checkpoint", str(folder), "--schedule", "amused", "--steps", "4", "-n", "6",
                 "--metrics", "fid", "--results", str(tmp_path / "eval.jsonl"), *common]) == 0
    record = json.loads((tmp_path / "eval.jsonl").read_text().splitlines()[-1])
    assert record["metrics"]["fid"] > 0 and record["n"] == 6
    out = tmp_path / "search"
    assert main(["search", "generation", "--checkpoint", str(folder), "--schedule", "amused", "--steps", "3",
                 "--method", "spsa", "--iterations", "1", "--n-eval", "6", "--noise-seeds", "0", "--out", str(out),
                 *common]) == 0
    assert load_strategy(out / "best_strategy.yaml").steps == 3
    assert len((out / "history.csv").read_text().strip().splitlines()) == 2  # header + 1 step


def test_strategy_show_counts_tokens_on_an_amused_folders_grid(folder, capsys):
    from autonat.cli.main import main

    assert main(["strategy", "show", "amused", "--steps", "4", "--checkpoint", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    side = GRID_SIDE
    assert f"{side}x{side} grid ({side * side} tokens, the grid of {folder})" in out[0], out[0]
    assert sum(int(row.split()[-1]) for row in out[3:]) == side * side  # every token decoded once
