"""The condition contract: class ids and text conditions through the same sampler."""
import pytest
import torch

from autonat.errors import AutonatError
from autonat.generator.condition import TextCondition, batch_size, concat, null_condition
from autonat.sampling.options import SamplerOptions
from autonat.sampling.sampler import TokenSpace, make_generators, sample_seeds, sample_tokens
from autonat.strategy.core import Strategy, autonat_init


class TextToy(torch.nn.Module):
    """Logits depend on the caption's first hidden value; the null caption is all zeros."""

    def __init__(self, vocab=5, length=6):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.calls = []

    def null_condition(self, cond):
        empty = TextCondition(torch.zeros(1, *cond.hidden.shape[1:]), torch.ones(1, cond.hidden.shape[1], dtype=bool))
        return empty.repeat(len(cond))

    def forward(self, tokens, cond):
        self.calls.append(cond)
        base = torch.arange(self.vocab, dtype=torch.float32)
        return (cond.hidden[:, :1, :1] * base).expand(tokens.shape[0], tokens.shape[1], self.vocab).clone()


def _cond(values):
    h = torch.tensor(values, dtype=torch.float32)[:, None, None].expand(-1, 3, 2).clone()
    return TextCondition(h, torch.ones(len(values), 3, dtype=torch.bool))


def test_text_condition_operations():
    c = _cond([1.0, 2.0, 3.0])
    assert batch_size(c) == 3 and len(c[1:]) == 2 and len(c[0]) == 1
    both = concat(c, c[:1])
    assert both.hidden.shape == (4, 3, 2) and both.hidden[3, 0, 0] == 1.0
    mixed = c.where(torch.tensor([True, False, True]), _cond([0.0, 0.0, 0.0]))
    assert mixed.hidden[:, 0, 0].tolist() == [0.0, 2.0, 0.0]
    with pytest.raises(AutonatError, match="mask"):
        TextCondition(torch.zeros(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(AutonatError, match="one kind"):
        concat(c, torch.zeros(3, dtype=torch.long))


def test_class_null_is_the_null_class():
    ids = torch.tensor([0, 3, 1])
    assert null_condition(torch.nn.Identity(), ids, 7).tolist() == [7, 7, 7]
    with pytest.raises(AutonatError, match="null_condition"):
        null_condition(torch.nn.Identity(), _cond([1.0]), 7)


def test_sampler_guides_a_text_model_with_its_null():
    """Guided logits = cond + s (cond - uncond) with the model's own empty caption as uncond; both CFG modes."""
    model = TextToy()
    space = TokenSpace(mask_id=5, null_class=1, grid=(2, 3))
    cond = _cond([1.0, -1.0])
    out = {}
    for mode in ("batched", "split"):
        gens = make_generators(sample_seeds(0, range(2)))
        out[mode] = sample_tokens(model, autonat_init(4), cond, gens, space, SamplerOptions(cfg_batching=mode))
    assert torch.equal(out["batched"], out["split"])
    nulls = [c for c in model.calls if len(c) == 2 and float(c.hidden.abs().sum()) == 0]
    assert nulls, "the unconditional pass must receive the model's null condition"
    # positive captions favour the highest id, negative ones the lowest, at every position
    greedy = Strategy.create(autonat_init(4).mask_ratio, [0.0] * 3, [0.0] * 4, [1.0] * 4)
    tokens = sample_tokens(model, greedy, cond, make_generators(sample_seeds(0, range(2))), space)
    assert tokens[0].eq(4).all() and tokens[1].eq(0).all()
