"""Our sampler against diffusers' ``AmusedPipeline`` on a random aMUSEd pipeline with a larger token grid.

``tests/test_amused.py`` checks parity on a 4x4 token grid; this script
prints the same figures on ``--grid`` x ``--grid`` tokens (16: aMUSEd-256's
sequence length), where aMUSEd's lack of position embeddings shows: on an
all-[MASK] canvas every position beyond the reach of the border's
convolutions has the same logits, so confidences tie exactly.

* logits: largest absolute difference between our wrapper and the
  transformer called as the pipeline calls it (same rows, and the
  pipeline's doubled guidance batch);
* greedy (tokens drawn by argmax, re-masking temperature 0): tokens equal
  to the pipeline's, and the steps where the scheduler kept fewer tokens
  masked than its schedule (ties at the cut-off stay decoded there);
* sampled at aMUSEd's defaults (temperature 1, re-masking 2 -> 0): whether
  both samplers keep the schedule's count masked at every step.

    OMP_NUM_THREADS=1 python -m benchmarks.amused_parity --grid 16
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PROMPTS = ["the dog", "a cat at the door", "", "the cat", "dog at the door", "a"]


def argmax_draw(probs, num_samples, generator=None):
    return probs.argmax(-1, keepdim=True)


def run_recording_counts(pipe, mask_id: int, **kwargs) -> tuple[torch.Tensor, list[list[int]]]:
    """The pipeline's tokens ``[B, h, w]`` and, after each step, each sample's count of masked tokens."""
    seen = []
    out = pipe(PROMPTS, output_type="latent",
               callback=lambda i, t, x: seen.append((x == mask_id).flatten(1).sum(1).tolist()), **kwargs)
    return out.images, seen


@torch.no_grad()
def scheduler_on_our_logits(scheduler, ours, strategy, cond, steps: int) -> torch.Tensor:
    """Greedy decoding by ``AmusedScheduler.step`` (argmax draws, re-masking temperature 0) on the logits of our
    wrapper after our guidance: what differs from our sampler is only how the scheduler picks what to re-mask."""
    from autonat.sampling.options import SamplerOptions
    from autonat.sampling.sampler import guided_logits

    space = ours.token_space
    tokens = torch.full((len(cond), space.seq_len), space.mask_id)
    scheduler.set_timesteps(steps, (0, 0))
    real_draw, torch.multinomial = torch.multinomial, argmax_draw
    try:
        for t, timestep in enumerate(scheduler.timesteps):
            logits = guided_logits(ours.model, tokens, cond, strategy.cfg_scale[t], space.null_class,
                                   SamplerOptions())
            tokens = scheduler.step(logits, timestep, tokens, generator=torch.Generator()).prev_sample
    finally:
        torch.multinomial = real_draw
    return tokens


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=int, default=16, help="token grid side (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = p.parse_args(argv)

    from amused_helpers import MASK_ID, write_tiny_amused
    from diffusers import AmusedPipeline

    from autonat.io.diffusers_folder import import_diffusers
    from autonat.sampling.amused import load_amused
    from autonat.sampling.sampler import decode, make_generators, sample_tokens
    from autonat.strategy.core import Strategy
    from autonat.strategy.zoo import amused

    import_diffusers()  # quiet, offline
    folder = write_tiny_amused(Path(tempfile.mkdtemp()) / "amused", args.seed, args.grid)
    theirs = AmusedPipeline.from_pretrained(folder, local_files_only=True)
    theirs.set_progress_bar_config(disable=True)
    ours = load_amused(folder)
    b, length = len(PROMPTS), args.grid ** 2
    cond = ours.text_encoder.encode(PROMPTS)

    calls = []
    handle = theirs.transformer.register_forward_hook(lambda m, a, kw, out: calls.append((a, kw, out)),
                                                      with_kwargs=True)
    theirs(PROMPTS, num_inference_steps=2, guidance_scale=3.0, output_type="latent",
           generator=torch.Generator().manual_seed(0))
    handle.remove()
    (ids,), kw, out = calls[1]
    with torch.no_grad():
        mine = ours.model(ids[b:].reshape(b, length), cond)
        alone = theirs.transformer(ids[b:], encoder_hidden_states=kw["encoder_hidden_states"][b:],
                                   pooled_text_emb=kw["pooled_text_emb"][b:], micro_conds=kw["micro_conds"][b:])
    batched = (mine - out[b:].flatten(2).transpose(1, 2)).abs().max().item()
    same = (mine - alone.flatten(2).transpose(1, 2)).abs().max().item()
    print(f"{args.grid}x{args.grid} tokens, {b} prompts; logits: max |diff| {same:.3g} on the same rows, "
          f"{batched:.3g} against the pipeline's batch of {2 * b} (logit std {out.std():.3g})")

    for steps, g in [(12, 10.0), (8, 3.0), (16, 1.0)]:
        real_draw, torch.multinomial = torch.multinomial, argmax_draw
        try:
            expected, seen = run_recording_counts(theirs, MASK_ID, num_inference_steps=steps, guidance_scale=g,
                                                  temperature=(0, 0), generator=torch.Generator().manual_seed(0))
        finally:
            torch.multinomial = real_draw
        s = amused(steps, guidance_scale=g, temperature=(0.0, 0.0))
        s = Strategy.create(s.mask_ratio, s.remask_temp, [0.0] * steps, s.cfg_scale)
        tokens = sample_tokens(ours.model, s, cond, make_generators(range(b)), ours.token_space)
        equal = tokens == expected.reshape(b, length)
        schedule = s.masked_counts(length)
        short = sum(int(seen[t][k] != schedule[t]) for t in range(steps) for k in range(b))
        through = scheduler_on_our_logits(theirs.scheduler, ours, s, cond, steps)
        print(f"greedy T={steps} g={g:g}: tokens equal {int(equal.sum())}/{equal.numel()}, samples equal "
              f"{int(equal.all(1).sum())}/{b}; scheduler off its schedule at {short} of {steps * b} "
              f"(step, sample) pairs; its step run on our guided logits: samples equal "
              f"{int((through == expected.reshape(b, length)).all(1).sum())}/{b}")

    steps = 12
    _, seen = run_recording_counts(theirs, MASK_ID, num_inference_steps=steps,
                                   generator=torch.Generator().manual_seed(1))
    ours_counts = [st.masked.sum(1).tolist() for st in decode(ours.model, amused(steps), cond,
                                                               make_generators(range(b)), ours.token_space)]
    expected_counts = [[c] * b for c in amused(steps).masked_counts(length)]
    print(f"sampled, aMUSEd defaults (T=12, g=10): per-step masked counts equal the schedule: diffusers "
          f"{seen == expected_counts}, ours {ours_counts == expected_counts} "
          f"({amused(steps).masked_counts(length)})")


if __name__ == "__main__":
    main()
