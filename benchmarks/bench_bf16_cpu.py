"""bf16 autocast against fp32 on this CPU, in seconds: does ``--precision bf16`` pay here?

A U-ViT of AutoNAT-S width (512, codebook 1024, 16x16 tokens) but only
``--depth`` blocks, so each figure takes a second or two: a 2-step guided
decode (the sampler) and a forward and backward pass (a training step's
arithmetic), fp32 and bf16 taking turns, best of ``--rounds`` on process
CPU time. The ratio, not the absolute time, is the result; it depends on
the CPU's instructions (printed first):

    python -m benchmarks.bench_bf16_cpu
    # a CPU without bf16 (or AVX-512) instructions, emulated on one that has them:
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python -m benchmarks.bench_bf16_cpu
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from autonat.generator.uvit import UViT
from autonat.runtime import cpu_has_bf16
from autonat.sampling.sampler import SamplerOptions, TokenSpace, make_generators, sample_seeds, sample_tokens
from autonat.strategy.core import maskgit_cosine
from benchmarks.measure import Machine
from benchmarks.workloads import model_config, sample_labels


def cpu_seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def workloads(model: UViT, batch: int, dtype: torch.dtype | None) -> dict:
    """The two timed workloads at autocast ``dtype`` (None: fp32)."""
    config = model.config
    labels = torch.tensor(sample_labels(batch))
    space, strategy = TokenSpace.of(config), maskgit_cosine(2, cfg_scale=2.0)
    tokens = torch.randint(0, config.codebook_size, (batch, config.seq_len), generator=torch.Generator().manual_seed(0))

    def sample() -> None:
        sample_tokens(model, strategy, labels, make_generators(sample_seeds(0, range(batch))), space,
                      SamplerOptions(autocast_dtype=dtype))

    def train() -> None:
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits = model(tokens, labels)
            loss = F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
        loss.backward()
        model.zero_grad(set_to_none=True)

    return {"sampler": sample, "training step": train}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=2, help="blocks of each half (AutoNAT-S has 6)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    print(f"machine: {Machine.here(torch.device('cpu')).describe()}; /proc/cpuinfo bf16: {cpu_has_bf16()}")
    torch.manual_seed(0)
    model = UViT(replace(model_config("s"), depth=2 * args.depth))
    runs = {name: {} for name in ("fp32", "bf16")}
    for dtype in (None, torch.bfloat16):  # a first, untimed pass of each
        for fn in workloads(model, args.batch, dtype).values():
            fn()
    for _ in range(args.rounds):
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            for work, fn in workloads(model, args.batch, dtype).items():
                runs[name].setdefault(work, []).append(cpu_seconds(fn))
    for work in runs["fp32"]:
        fp32, bf16 = min(runs["fp32"][work]), min(runs["bf16"][work])
        print(f"{work}: fp32 {fp32:.2f} s, bf16 {bf16:.2f} s CPU time; bf16 takes {bf16 / fp32:.2f}x the fp32 time")


if __name__ == "__main__":
    main()
