"""Sampling throughput of the shipped demo model: images/s, tokens and decoding to pixels.

The demo generator (tiny U-ViT, 8x8 tokens) with the MaskGIT cosine heuristic
(no guidance: one pass per step) and the default strategy (AutoNAT's
initialisation: guided steps need a conditional and an unconditional pass),
each in both CFG batching modes.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_demo
"""
from __future__ import annotations

import argparse
import time

from autonat.demo import DEMO_CHECKPOINT
from autonat.sampling.pipeline import Pipeline
from autonat.sampling.sampler import SamplerOptions
from autonat.strategy.core import autonat_init, maskgit_cosine

from .measure import Machine, markdown_table


def images_per_second(pipe: Pipeline, strategy, labels: list[int], batch: int, options: SamplerOptions) -> float:
    """Wall-clock images/s of generating ``labels`` (after one warm-up batch)."""
    list(pipe.batches(strategy, labels[:batch], 0, batch, progress=False, options=options))
    start = time.perf_counter()
    count = sum(len(y) for _, y in pipe.batches(strategy, labels, 0, batch, progress=False, options=options))
    return count / (time.perf_counter() - start)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=500, help="images per measurement")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args(argv)
    pipe = Pipeline.load(DEMO_CHECKPOINT)
    labels = [i % pipe.num_classes for i in range(args.n)]
    rows = []
    for name, strategy in [("MaskGIT cosine (no CFG)", maskgit_cosine(args.steps)),
                           ("AutoNAT init (CFG)", autonat_init(args.steps))]:
        for batching in ("split", "batched"):
            rate = images_per_second(pipe, strategy, labels, args.batch, SamplerOptions(cfg_batching=batching))
            rows.append({"strategy": name, "cfg": batching, "img_s": rate})
    print(f"Machine: {Machine.here(pipe.device).describe()}")
    print(f"Demo model, {args.n} images, batch {args.batch}, {args.steps} steps, tokens and decoding.\n")
    print(markdown_table(rows, [("strategy", "strategy"), ("cfg", "CFG passes"), ("img_s", "images/s")]))


if __name__ == "__main__":
    main()
