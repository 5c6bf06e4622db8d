"""Speed benchmarks of autonat: sampler, training step and tokenizer (see ``docs/benchmarks.md``).

Run from the repository root as modules, e.g. ``python -m benchmarks.bench_sampler``.
They print figures; nothing here is a test.
"""
