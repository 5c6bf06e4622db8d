"""Order policies (random, Halton), the decoding trace, and `strategy show` / `sample --trace` end to end."""
import pytest
import torch
from PIL import Image

from autonat.errors import AutonatError
from autonat.sampling.order import halton_order, position_ranks, ranks_from_order
from autonat.sampling.sampler import (
    SamplerOptions,
    TokenSpace,
    decode,
    make_generators,
    sample_seeds,
    sample_tokens,
)
from autonat.sampling.trace import render_canvas, render_trace, save_trace
from autonat.strategy.core import Strategy, maskgit_cosine


# --------------------------------------------------------------------------- Halton order
@pytest.mark.parametrize("grid", [(1, 1), (4, 4), (3, 5), (7, 2), (16, 16), (32, 32)])
def test_halton_order_visits_every_position_exactly_once(grid):
    order = halton_order(grid)
    assert sorted(order) == list(range(grid[0] * grid[1]))


def test_halton_order_spreads_early_positions_over_the_grid():
    rows_cols = [divmod(p, 16) for p in halton_order((16, 16))[:16]]
    gaps = [max(abs(a - c), abs(b - d)) for i, (a, b) in enumerate(rows_cols) for c, d in rows_cols[:i]]
    assert min(gaps) >= 2  # no two of the first 16 tokens touch (16 random cells almost always do)


def test_ranks_invert_an_order():
    order = torch.tensor([[2, 0, 3, 1]])
    ranks = ranks_from_order(order)
    assert ranks.tolist() == [[1, 3, 0, 2]] and torch.equal(order[0][ranks[0]], torch.arange(4))


def test_unknown_order_and_non_square_grid_are_clear_errors():
    gens = make_generators([0])
    with pytest.raises(AutonatError, match="unknown decoding order"):
        position_ranks("zigzag", gens, 16, None, "cpu")
    with pytest.raises(AutonatError, match="not a square grid"):
        position_ranks("halton", gens, 12, None, "cpu")
    assert position_ranks("halton", gens, 12, (3, 4), "cpu").shape == (1, 12)
    assert position_ranks("confidence", gens, 16, None, "cpu") is None


# --------------------------------------------------------------------------- sampler with an order
def _states(model, cfg, strategy, labels, order, seed=0, indices=None):
    indices = range(len(labels)) if indices is None else indices
    gens = make_generators(sample_seeds(seed, indices))
    with torch.inference_mode():
        return list(decode(model, strategy, torch.tensor(labels), gens, TokenSpace.of(cfg),
                           SamplerOptions(order=order)))


@pytest.mark.parametrize("order", ["random", "halton"])
def test_order_policies_keep_the_scheduled_masked_counts(tiny_model, tiny_config, order):
    strategy = Strategy.create([0.8, 0.5, 0.2], [3, 2, 1], [1, 1, 0.5, 1], [0, 1, 2, 0])
    states = _states(tiny_model, tiny_config, strategy, [0, 1, 2, 3], order)
    assert [int(s.masked.sum(1).unique().item()) for s in states] == strategy.masked_counts(tiny_config.seq_len)
    for before, after in zip(states, states[1:]):
        fixed = ~before.masked
        assert torch.equal(after.tokens[fixed], before.tokens[fixed])
    assert (states[-1].tokens < tiny_config.codebook_size).all()
    if order == "halton":  # decoded positions are a prefix of the Halton order, for every sample
        first = list(halton_order(tiny_config.grid))
        for s, masked in zip(states, strategy.masked_counts(tiny_config.seq_len)):
            decoded = set(first[: tiny_config.seq_len - masked])
            for row in (~s.masked):
                assert set(row.nonzero().flatten().tolist()) == decoded


@pytest.mark.parametrize("order", ["random", "halton"])
def test_order_policies_do_not_depend_on_the_batch(tiny_model, tiny_config, order):
    strategy = maskgit_cosine(4, cfg_scale=1.0)
    labels = [2, 0, 1]
    kw = dict(space=TokenSpace.of(tiny_config), options=SamplerOptions(order=order))
    batch = sample_tokens(tiny_model, strategy, torch.tensor(labels), make_generators(sample_seeds(5, range(3))), **kw)
    for i, label in enumerate(labels):
        single = sample_tokens(tiny_model, strategy, torch.tensor([label]), make_generators(sample_seeds(5, [i])), **kw)
        assert torch.equal(single[0], batch[i])


def test_random_order_differs_between_samples(tiny_model, tiny_config):
    states = _states(tiny_model, tiny_config, maskgit_cosine(4), [0, 0, 0, 0], "random")
    first_step = states[0].masked
    assert len({tuple(row.tolist()) for row in first_step}) > 1


# --------------------------------------------------------------------------- trace rendering
def _fake_decode(ids):
    """Token id / 16 as brightness, each token 2 x 2 pixels."""
    img = (ids.float() / 16).repeat_interleave(2, -1).repeat_interleave(2, -2)
    return img[:, None].expand(-1, 3, -1, -1)


def test_masked_tokens_are_grey_in_the_canvas(tiny_model, tiny_config):
    states = _states(tiny_model, tiny_config, maskgit_cosine(4), [0, 1], "halton")
    canvas = render_canvas(states[0], _fake_decode, tiny_config.grid)
    assert canvas.shape == (2, 3, 8, 8)
    masked = states[0].masked.view(2, 4, 4).repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert (canvas[:, 0][masked] == 0.5).all()
    expected = _fake_decode(states[0].tokens.view(2, 4, 4))[:, 0]
    assert torch.equal(canvas[:, 0][~masked], expected[~masked])


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_save_trace_writes_gif_frames_or_a_strip(tiny_model, tiny_config, tmp_path, suffix):
    states = _states(tiny_model, tiny_config, maskgit_cosine(5), [0, 1, 2], "confidence")
    frames = render_trace(states, _fake_decode, tiny_config.grid)
    assert frames.shape == (5, 3, 3, 8, 8)
    out = save_trace(frames, tmp_path / f"trace{suffix}", min_side=16)
    with Image.open(out) as im:
        if suffix == ".gif":
            assert im.n_frames == 5
        else:  # 3 rows (samples) x 5 columns (steps) of 16 px images with 2 px padding
            assert im.size == (2 + 5 * 18, 2 + 3 * 18)
    with pytest.raises(AutonatError, match=".gif or .png"):
        save_trace(frames, tmp_path / "trace.jpg")


# --------------------------------------------------------------------------- command line
def test_strategy_show_prints_a_table_and_writes_a_plot(tmp_path, capsys):
    from autonat.cli.main import main
    from autonat.strategy.files import save_strategy

    plot = tmp_path / "plot.png"
    assert main(["strategy", "show", "amused", "--steps", "12", "--grid", "16", "16", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert plot.stat().st_size > 0 and "decoded" in out and len(out.splitlines()) >= 12 + 3
    assert "  9.0000" in out  # aMUSEd's guidance_scale 10 is our CFG 9
    path = tmp_path / "s.yaml"
    save_strategy(Strategy.create([0.5], [1.0], [1.0, 1.0], [0.0, 2.0]), path, official=True)
    assert main(["strategy", "show", str(path), "--grid", "4", "4"]) == 0
    rows = capsys.readouterr().out.splitlines()[-2:]
    assert rows[0].split()[-2:] == ["8", "8"] and rows[1].split()[-2:] == ["0", "8"]
    assert main(["strategy", "show", "no-such-schedule"]) == 2


def test_strategy_show_takes_the_token_grid_from_the_model(tmp_path, capsys):
    """A strategy file beside a generator checkpoint (the demo's layout) is counted on that generator's grid,
    ``--checkpoint`` names one elsewhere, ``--grid`` wins, and without either the default grid is said so."""
    from autonat.cli.main import main
    from autonat.strategy.files import save_strategy

    checkpoint = tmp_path / "generator"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"format": "autonat-generator", "model": {"grid": [2, 3]}}')
    path = tmp_path / "s.yaml"
    save_strategy(Strategy.create([0.5], [1.0], [1.0, 1.0], [0.0, 2.0]), path)

    def shown(*extra):
        assert main(["strategy", "show", *map(str, extra)]) == 0
        out = capsys.readouterr().out.splitlines()
        return out[0], [row.split()[-2:] for row in out[-2:]]

    head, rows = shown(path)
    assert "2x3 grid (6 tokens, the grid of" in head and rows == [["3", "3"], ["0", "3"]]
    elsewhere = tmp_path / "other" / "s.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(path.read_text())
    head, rows = shown(elsewhere)
    assert "16x16 grid (256 tokens; the default grid" in head and rows == [["128", "128"], ["0", "128"]]
    head, rows = shown(elsewhere, "--checkpoint", checkpoint)
    assert "2x3 grid" in head and rows == [["3", "3"], ["0", "3"]]
    head, rows = shown(path, "--grid", 4, 4)
    assert "4x4 grid (16 tokens)" in head and rows == [["8", "8"], ["0", "8"]]


def test_sample_trace_and_order_end_to_end(tmp_path, tiny_model, tiny_config, tiny_vqgan_config, capsys):
    from autonat.cli.main import main
    from autonat.generator.checkpoint import save_generator
    from autonat.tokenizers.taming import VQGAN
    from autonat.tokenizers.training import save_tokenizer

    torch.manual_seed(0)
    save_tokenizer(VQGAN(tiny_vqgan_config), tmp_path / "tok")
    ckpt = tmp_path / "ckpt"
    save_generator(ckpt, tiny_model, tiny_config, {"path": str(tmp_path / "tok")})
    common = ["sample", "--checkpoint", str(ckpt), "--steps", "4", "--per-class", "2", "--classes", "0", "1"]
    gif, png = tmp_path / "trace.gif", tmp_path / "trace.png"
    assert main(common + ["--out", str(tmp_path / "g.png"), "--order", "halton", "--trace", str(gif)]) == 0
    with Image.open(gif) as im:
        assert im.n_frames == 4
    assert main(common + ["--out", str(tmp_path / "r.png"), "--order", "random", "--trace", str(png),
                          "--trace-samples", "2"]) == 0
    assert Image.open(png).size[1] > Image.open(png).size[0] / 4  # 2 rows of 4 steps
    assert main(common + ["--out", str(tmp_path / "x.png"), "--trace", str(tmp_path / "t.jpg")]) == 2
