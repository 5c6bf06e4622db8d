"""Correctness of the speed paths (not their speed: that is benchmarks/, which prints figures).

* the decoding loop reads nothing back from the device (no host-device sync);
* ``Pipeline`` keeps CPU results unchanged by default; ``precision="bf16"``
  runs; ``compile=True`` gives the same tokens as eager;
* the benchmark's reference-style baseline is the same network as ours.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autonat.errors import AutonatError
from autonat.generator.checkpoint import Generator
from autonat.sampling.pipeline import Pipeline, autocast_dtype
from autonat.sampling.sampler import (
    SamplerOptions,
    TokenSpace,
    decode,
    make_generators,
    sample_seeds,
    sample_tokens,
)
from autonat.strategy.core import Strategy, maskgit_cosine

STRATEGY = Strategy.create([0.9, 0.6, 0.3], [2.0, 1.0, 0.5], [1.0, 1.0, 0.5, 1.0], [1e-4, 0.0, 1.5, 2.0])


def _host_read(*args, **kwargs):
    raise AssertionError("a device value was read back on the host inside the decoding loop")


@pytest.mark.parametrize("order", ["confidence", "random", "halton"])
def test_decoding_loop_reads_nothing_back_from_the_device(tiny_model, tiny_config, monkeypatch, order):
    """After the first step (which also checks the labels), no step calls item/int/bool/float/tolist on a tensor."""
    c = tiny_config
    steps = decode(tiny_model, STRATEGY, torch.tensor([0, 1, 3]), make_generators(sample_seeds(0, range(3))),
                   TokenSpace.of(c), SamplerOptions(order=order))
    with torch.inference_mode():
        next(steps)
        for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
            monkeypatch.setattr(torch.Tensor, name, _host_read)
        states = list(steps)
    monkeypatch.undo()
    assert len(states) == STRATEGY.steps - 1 and (states[-1].tokens < c.codebook_size).all()


def _pipeline(model, config, **kw) -> Pipeline:
    gen = Generator(model=model, config=config, tokenizer={}, path=Path("."), meta={})
    return Pipeline(gen, torch.nn.Identity(), torch.device("cpu"), **kw)


def _plain_tokens(model, config, labels, seeds):
    return sample_tokens(model, STRATEGY, torch.tensor(labels), make_generators(seeds), TokenSpace.of(config))


def test_pipeline_default_on_cpu_is_the_plain_sampler(tiny_model, tiny_config):
    labels, seeds = [0, 1, 2, 3], sample_seeds(4, range(4))
    got = _pipeline(tiny_model, tiny_config).tokens(STRATEGY, labels, seeds)
    assert torch.equal(got.flatten(1), _plain_tokens(tiny_model, tiny_config, labels, seeds))


def test_precision_names():
    assert autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("fp32", "cpu") is None
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16
    with pytest.raises(AutonatError, match="precision"):
        autocast_dtype("fp8", "cpu")
    with pytest.raises(AutonatError, match="precision"):
        _pipeline(None, None, precision="half")


def test_bf16_autocast_runs_and_explicit_options_win(tiny_model, tiny_config):
    pipe = _pipeline(tiny_model, tiny_config, precision="bf16")
    assert pipe.sampler_options().autocast_dtype is torch.bfloat16
    assert pipe.sampler_options(SamplerOptions(order="halton")).order == "halton"
    tokens = pipe.tokens(maskgit_cosine(4, cfg_scale=2.0), [0, 1, 2], sample_seeds(0, range(3)))
    assert tokens.shape == (3, *tiny_config.grid)
    assert ((tokens >= 0) & (tokens < tiny_config.codebook_size)).all()


@pytest.mark.slow
def test_compiled_pipeline_gives_the_eager_tokens(tiny_model, tiny_config):
    labels, seeds = [0, 1, 2], sample_seeds(1, range(3))
    pipe = _pipeline(tiny_model, tiny_config, compile=True)
    got = pipe.tokens(STRATEGY, labels, seeds)
    assert pipe.network is not tiny_model  # the compiled wrapper, built once
    assert torch.equal(got.flatten(1), _plain_tokens(tiny_model, tiny_config, labels, seeds))


def test_benchmark_baseline_is_the_same_network(tiny_config):
    """The reference-style baseline differs from ours in how it computes, not in what."""
    benchmarks = pytest.importorskip("benchmarks.baseline")
    from autonat.generator.uvit import UViT

    torch.manual_seed(0)
    ours = UViT(tiny_config).eval()
    torch.manual_seed(0)
    reference = benchmarks.reference_style(UViT(tiny_config).eval())
    assert ours.state_dict().keys() == reference.state_dict().keys()
    tokens = torch.randint(0, tiny_config.mask_id + 1, (3, tiny_config.seq_len))
    labels = torch.tensor([0, 1, tiny_config.null_class])
    with torch.no_grad():
        assert torch.allclose(ours(tokens, labels), reference(tokens, labels), atol=1e-5)
        ids = benchmarks.baseline_sample(reference, STRATEGY, labels, TokenSpace.of(tiny_config))
    assert ids.shape == tokens.shape and (ids < tiny_config.codebook_size).all()


def test_the_official_comparison_skips_cleanly_without_a_checkout(monkeypatch, tmp_path, capsys):
    bench = pytest.importorskip("benchmarks.bench_official")
    monkeypatch.delenv(bench.ENV, raising=False)
    assert bench.main(["--size", "tiny"]) == 0
    assert "skipped: set AUTONAT_OFFICIAL_CODE" in capsys.readouterr().out
    monkeypatch.setenv(bench.ENV, str(tmp_path))  # a folder without libs/nat_misc.py
    assert bench.main(["--size", "tiny"]) == 0
    assert repr(str(tmp_path)) in capsys.readouterr().out


def test_the_official_comparison_reports_every_rounds_ratio_and_load():
    """Sampler s/img: ours faster when its time is lower; training tokens/s: when its rate is higher."""
    bench = pytest.importorskip("benchmarks.bench_official")
    results = {("sampler", 2): [{"official": [10.0, 12.0], "ours": [8.0, 4.0], "load": [1.5, 6.25]},
                                {"official": [9.0, 9.0], "ours": [9.0, 6.0], "load": [2.0, 3.0]}],
               ("training step", 8): [{"official": [200.0, 300.0], "ours": [250.0, 240.0], "load": [0.5, 0.75]}]}
    sampler, training = bench.rows(results)
    assert sampler["ratio"] == "1-3x" and sampler["load"] == "1.5-6.25" and sampler["rounds"] == "2 x 2"
    assert sampler["official"] == "9.5 (9-12)" and sampler["ours"] == "7 (4-9)"
    assert training["ratio"] == "0.8-1.25x" and training["unit"] == "tokens/s"
    rounds = bench.round_rows(results)
    assert [r["ratio"] for r in rounds] == ["1.25x", "3.00x", "1.00x", "1.50x", "1.25x", "0.80x"]
    assert [r["load"] for r in rounds] == [1.5, 6.25, 2.0, 3.0, 0.5, 0.75]
    assert [r["round"] for r in rounds][:4] == ["1.1", "1.2", "2.1", "2.2"]
