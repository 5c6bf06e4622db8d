import pytest
import torch

from autonat.errors import AutonatError
from autonat.sampling.sampler import (
    SamplerOptions,
    TokenSpace,
    decode,
    guided_logits,
    make_generators,
    sample_seeds,
    sample_tokens,
)
from autonat.strategy.core import Strategy, maskgit_cosine


def _decode(model, cfg, strategy, labels, seed=0, options=None):
    gens = make_generators(sample_seeds(seed, range(len(labels))), "cpu")
    y = torch.as_tensor(labels)
    with torch.inference_mode():
        return list(decode(model, strategy, y, gens, TokenSpace.of(cfg), options))


@pytest.mark.parametrize("strategy", [maskgit_cosine(5, cfg_scale=1.5),
                                      Strategy.create([0.9, 0.9, 0.3], [2, 0, 1], [1, 0.5, 0, 2], [0, 1, 2, 3])])
def test_scheduled_masked_counts_fixed_tokens_and_no_mask_left(tiny_model, tiny_config, strategy):
    states = _decode(tiny_model, tiny_config, strategy, [0, 1, 2, 0, 3])
    expected = strategy.masked_counts(tiny_config.seq_len)
    assert [int(s.masked.sum(1).unique().item()) for s in states] == expected
    for before, after in zip(states, states[1:]):
        fixed = ~before.masked
        assert torch.equal(after.tokens[fixed], before.tokens[fixed])  # a fixed token never changes
    final = states[-1].tokens
    assert (final != tiny_config.mask_id).all() and final.max() < tiny_config.codebook_size


def test_cfg_formula(tiny_model, tiny_config):
    tokens = torch.randint(0, tiny_config.codebook_size + 1, (2, tiny_config.seq_len))
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        cond = tiny_model(tokens, labels)
        uncond = tiny_model(tokens, torch.full_like(labels, tiny_config.null_class))
        got = {mode: guided_logits(tiny_model, tokens, labels, 2.5, tiny_config.null_class,
                                   SamplerOptions(cfg_batching=mode)) for mode in ("batched", "split")}
        below = guided_logits(tiny_model, tokens, labels, 1e-4, tiny_config.null_class, SamplerOptions())
    for mode, logits in got.items():
        assert torch.allclose(logits, cond + 2.5 * (cond - uncond), atol=1e-5), mode
    assert torch.allclose(below, cond, atol=1e-6)  # scales under the threshold skip the unconditional pass


def test_cfg_batching_by_device_and_bad_names_refused():
    assert SamplerOptions().batches_cfg(torch.device("cuda")) and not SamplerOptions().batches_cfg(torch.device("cpu"))
    assert SamplerOptions(cfg_batching="batched").batches_cfg(torch.device("cpu"))
    assert not SamplerOptions(cfg_batching="split").batches_cfg(torch.device("cuda"))
    with pytest.raises(AutonatError, match="cfg_batching"):
        SamplerOptions(cfg_batching="both")


def test_temperature_zero_is_deterministic_greedy(tiny_model, tiny_config):
    greedy = Strategy.create([0.7, 0.3], [0, 0], [0, 0, 0], [0, 0, 0])
    a = _decode(tiny_model, tiny_config, greedy, [0, 1], seed=1)[-1].tokens
    b = _decode(tiny_model, tiny_config, greedy, [0, 1], seed=2)[-1].tokens
    assert torch.equal(a, b)
    # the first step fixes the argmax tokens of the all-mask canvas
    with torch.no_grad():
        start = torch.full((2, tiny_config.seq_len), tiny_config.mask_id)
        argmax = tiny_model(start, torch.tensor([0, 1])).argmax(-1)
    first = _decode(tiny_model, tiny_config, greedy, [0, 1])[0]
    assert torch.equal(first.tokens[~first.masked], argmax[~first.masked])


def test_same_seed_same_sample_whatever_the_batch(tiny_model, tiny_config):
    strategy = maskgit_cosine(4, cfg_scale=1.0)
    labels = [2, 0, 1, 2]
    gens = make_generators(sample_seeds(7, range(4)))
    space = TokenSpace.of(tiny_config)
    batch = sample_tokens(tiny_model, strategy, torch.tensor(labels), gens, space)
    for i, label in enumerate(labels):
        single = sample_tokens(tiny_model, strategy, torch.tensor([label]),
                               make_generators(sample_seeds(7, [i])), space)
        assert torch.equal(single[0], batch[i])
    other = sample_tokens(tiny_model, strategy, torch.tensor(labels), make_generators(sample_seeds(8, range(4))), space)
    assert not torch.equal(other, batch)


def test_bad_labels_and_generators_rejected(tiny_model, tiny_config):
    from autonat.errors import AutonatError

    space = TokenSpace.of(tiny_config)
    with pytest.raises(AutonatError, match="class ids"):
        sample_tokens(tiny_model, maskgit_cosine(2), torch.tensor([7]), make_generators([0]), space)
    with pytest.raises(AutonatError, match="one generator per sample"):
        sample_tokens(tiny_model, maskgit_cosine(2), torch.tensor([0, 1]), make_generators([0]), space)


def test_token_space_of_a_config(tiny_config):
    space = TokenSpace.of(tiny_config)
    assert (space.mask_id, space.null_class, space.grid, space.seq_len) == (16, 3, (4, 4), 16)
    assert TokenSpace(mask_id=16, null_class=3, grid=[4, 4]) == space  # lists from JSON become the same value
    with pytest.raises(AutonatError, match="token grid"):
        TokenSpace(mask_id=16, null_class=3, grid=(4, 0))


def test_halton_order_reads_the_grid_of_the_token_space():
    """A non-square grid needs no extra option: the token space carries it to the order policy."""
    from autonat.generator.uvit import UViT, UViTConfig

    torch.manual_seed(0)
    config = UViTConfig(codebook_size=16, grid=(3, 4), num_classes=3, width=32, depth=2, num_heads=2, dropout=0.0)
    tokens = sample_tokens(UViT(config).eval(), maskgit_cosine(4), torch.tensor([0, 1]),
                           make_generators([0, 1]), TokenSpace.of(config), SamplerOptions(order="halton"))
    assert tokens.shape == (2, 12) and (tokens < 16).all()
