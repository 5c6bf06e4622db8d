"""Parallel decoding: the sampler, decoding orders, the tokenizer+generator pipeline, outputs, traces."""
