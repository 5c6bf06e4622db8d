"""Sampling throughput of the shipped demo model (images/s, tokens and decoding).

    OMP_NUM_THREADS=1 python benchmarks/bench_demo.py
"""
import time

import torch

from autonat.generate import Pipeline
from autonat.strategy import maskgit_cosine, autonat_init
from autonat.demo import DEMO_CHECKPOINT
pipe = Pipeline.load(DEMO_CHECKPOINT)
labels = [i % 10 for i in range(500)]
for name, s in [("cosine (no CFG)", maskgit_cosine(8)), ("AutoNAT init (CFG)", autonat_init(8))]:
    list(pipe.batches(s, labels[:100], 0, 100, progress=False))  # warm-up
    t = time.perf_counter(); n = sum(len(y) for _, y in pipe.batches(s, labels, 0, 100, progress=False)); dt = time.perf_counter() - t
    print(f"{name}: {n} images in {dt:.1f} s = {n/dt:.1f} images/s (tokens + decode, batch 100, 8 steps, {torch.get_num_threads()} thread)")
