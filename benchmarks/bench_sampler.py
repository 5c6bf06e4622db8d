"""Sampler speed against the forward-pass bound and the reference-style baseline.

For every (model size, strategy, batch) the parent runs two fresh processes,
ours and the baseline (:mod:`benchmarks.baseline`), alternately for
``--rounds`` rounds. Each process decodes a batch ``--reps`` times and, after
each decode, replays *only* the forward passes that decode made (same batch
sizes, same precision and grad mode, random tokens): that replay is the
forward-pass bound, and the sampler's overhead is the rest. Both come from the
same process, one right after the other.

``--ablations`` adds one row per optimisation at one configuration, each with
a single optimisation taken away from ours (or, for the opt-in ones, added).

    python -m benchmarks.bench_sampler                       # S and L, batches 1 2 4, both strategies
    python -m benchmarks.bench_sampler --sizes tiny --reps 1 # check the script in seconds
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from autonat.generate import autocast_dtype
from autonat.sampler import SamplerOptions, decode, make_generators, sample_seeds, sample_tokens
from autonat.strategy import Strategy

from .baseline import baseline_sample, reference_style
from .measure import (LIVE_MEMORY_ENV, Machine, RunLog, current_memory_mb, markdown_table, median, peak_memory_mb, progress,
                      report, run_child, timed)
from .workloads import SIZES, STRATEGY_NAMES, build_model, sample_labels, strategy

MODULE = "benchmarks.bench_sampler"

#: Variants of the ablation table: what each one changes relative to ours.
ABLATIONS = {
    "ours": "autonat.sampler as shipped (CPU: fp32; CUDA: bf16 autocast, Pipeline's default)",
    "ours-manual-attn": "without scaled_dot_product_attention (attention by hand)",
    "ours-split-cfg": "without batching: conditional and unconditional as two forward passes",
    "ours-no-cfg-skip": "without the CFG-zero skip (cfg_zero_threshold=0: the 1e-4 steps run both passes)",
    "ours-no-grad": "torch.no_grad instead of torch.inference_mode",
    "ours-bf16": "plus bf16 autocast (the CUDA default; opt-in on CPU: --precision bf16)",
    "ours-fp32": "without bf16 autocast (full precision)",
    "ours-compile": "plus torch.compile (opt-in: --compile)",
    "baseline": "reference style (benchmarks/baseline.py)",
}


# --------------------------------------------------------------------------- child side
class Recorder(nn.Module):
    """Passes calls through to ``inner`` and records the batch size of each one."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls: list[int] = []

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(tokens.shape[0]))  # a shape, not a tensor value: no device sync
        return self.inner(tokens, labels)


class SplitCfg(nn.Module):
    """Runs a batched conditional+unconditional call as two calls (undoes the batching)."""

    def __init__(self, inner: nn.Module, batch: int) -> None:
        super().__init__()
        self.inner, self.batch = inner, batch

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if tokens.shape[0] != 2 * self.batch:
            return self.inner(tokens, labels)
        b = self.batch
        return torch.cat([self.inner(tokens[:b], labels[:b]), self.inner(tokens[b:], labels[b:])])


@dataclass
class Runner:
    """One variant ready to time: a decode, the network it calls, and how that network runs."""

    sample: Callable[[], torch.Tensor]
    recorder: Recorder
    amp_dtype: torch.dtype | None
    grad_mode: Callable = torch.inference_mode
    full_warmup: bool = False  # compile: the first decode compiles every shape


def make_runner(variant: str, model: nn.Module, strat: Strategy, labels: torch.Tensor, seeds: list[int],
                device: torch.device) -> Runner:
    c = model.config
    kw = dict(mask_id=c.mask_id, null_class=c.null_class, seq_len=c.seq_len)
    if variant == "baseline":
        rec = Recorder(reference_style(model))
        return Runner(lambda: baseline_sample(rec, strat, labels, **kw), rec, None, torch.no_grad)
    options = SamplerOptions(autocast_dtype=autocast_dtype("auto", device))
    net: nn.Module = model
    if variant == "ours-manual-attn":
        net = reference_style(model)
    elif variant == "ours-split-cfg":
        net = SplitCfg(model, len(labels))
    elif variant == "ours-no-cfg-skip":
        options.cfg_zero_threshold = 0.0
    elif variant == "ours-bf16":
        options.autocast_dtype = torch.bfloat16
    elif variant == "ours-fp32":
        options.autocast_dtype = None
    elif variant == "ours-compile":
        net = torch.compile(model, dynamic=False)
    elif variant not in ("ours", "ours-no-grad"):
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(ABLATIONS)}")
    rec = Recorder(net)

    def run() -> torch.Tensor:
        gens = make_generators(seeds, device)
        if variant == "ours-no-grad":
            with torch.no_grad():
                *_, last = decode(rec, strat, labels, gens, options=options, **kw)
            return last.tokens
        return sample_tokens(rec, strat, labels, gens, options=options, **kw)

    grad = torch.no_grad if variant == "ours-no-grad" else torch.inference_mode
    return Runner(run, rec, options.autocast_dtype, grad, full_warmup=variant == "ours-compile")


def replay(runner: Runner, calls: list[int], tokens: torch.Tensor, labels: torch.Tensor) -> None:
    """The forward passes of one decode, alone: the forward-pass bound."""
    net, dtype = runner.recorder.inner, runner.amp_dtype
    with runner.grad_mode(), torch.autocast(tokens.device.type, dtype=dtype or torch.bfloat16,
                                            enabled=dtype is not None):
        for n in calls:
            net(tokens[:n], labels[:n])


def warm_up(runner: Runner, batch: int, tokens: torch.Tensor, labels: torch.Tensor) -> None:
    """One forward pass; with ``full_warmup`` a whole decode and its replay (compiling every shape)."""
    if not runner.full_warmup:
        return replay(runner, [batch], tokens, labels)
    runner.recorder.calls.clear()
    runner.sample()
    replay(runner, list(runner.recorder.calls), tokens, labels)


def count_syncs(fn: Callable[[], object]) -> int:
    """Host-device synchronisations during ``fn()`` (CUDA's sync debug mode; CUDA only)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def child(cfg: dict) -> dict:
    device = torch.device(cfg["device"])
    start_mb = current_memory_mb(device)  # the interpreter, torch and autonat, before any model
    model = build_model(cfg["size"], device)
    strat = strategy(cfg["strategy"])
    batch = cfg["batch"]
    labels = torch.tensor(sample_labels(batch), device=device)
    runner = make_runner(cfg["variant"], model, strat, labels, sample_seeds(0, range(batch)), device)
    if cfg.get("memory_only"):
        runner.sample()
        return {"peak_mb": peak_memory_mb(device), "start_mb": start_mb}
    g = torch.Generator().manual_seed(1)
    rand_tokens = torch.randint(0, model.config.mask_id + 1, (2 * batch, model.config.seq_len), generator=g)
    rand_labels = torch.randint(0, model.config.null_class + 1, (2 * batch,), generator=g)
    rand_tokens, rand_labels = rand_tokens.to(device), rand_labels.to(device)
    warmup_s = timed(lambda: warm_up(runner, batch, rand_tokens, rand_labels), device)[0]
    sample, bound, calls = [], [], []
    for _ in range(cfg["reps"]):
        runner.recorder.calls.clear()
        sample.append(timed(runner.sample, device))
        calls = list(runner.recorder.calls)
        bound.append(timed(lambda: replay(runner, calls, rand_tokens, rand_labels), device))
    out = {"sample_s": [w for w, _ in sample], "sample_cpu_s": [c for _, c in sample],
           "bound_s": [w for w, _ in bound], "bound_cpu_s": [c for _, c in bound],
           "forward_batches": calls, "steps": strat.steps, "peak_mb": peak_memory_mb(device),
           "start_mb": start_mb, "warmup_s": warmup_s}
    if device.type == "cuda" and cfg["variant"] == "ours":
        out["syncs"] = count_syncs(runner.sample)
    return out


# --------------------------------------------------------------------------- parent side
class Results(RunLog):
    """Child reports by configuration key, pooled over rounds.

    ``clock`` is ``"cpu"`` (process CPU time) or ``"wall"``; ratios use it,
    absolute rates always use the wall clock.
    """

    clock = "wall"

    def pooled(self, key: tuple, name: str) -> list[float]:
        return [v for r in self.runs.get(key, []) for v in r[name]]

    def seconds(self, key: tuple, clock: str = "wall") -> float:
        return median(self.pooled(key, "sample_cpu_s" if clock == "cpu" else "sample_s"))

    def ratio(self, key: tuple, other: tuple, clock: str | None = None) -> float:
        """Time of ``key`` over time of ``other`` on ``clock`` (default: :attr:`clock`)."""
        clock = clock or self.clock
        return self.seconds(key, clock) / self.seconds(other, clock)

    def overhead(self, key: tuple, clock: str | None = None) -> float:
        """Median over repetitions of decode / its own forward passes, minus 1."""
        cpu = (clock or self.clock) == "cpu"
        pairs = zip(self.pooled(key, "sample_cpu_s" if cpu else "sample_s"),
                    self.pooled(key, "bound_cpu_s" if cpu else "bound_s"))
        return median([s / b - 1 for s, b in pairs])

    def peak(self, key: tuple, live: bool = False) -> float:
        """Peak memory of the work (weights, activations), above the process's memory at start.

        ``live``: from the memory-only child (see :data:`~benchmarks.measure.LIVE_MEMORY_ENV`), if run.
        """
        runs = self.runs.get(key + ("live",), []) if live else self.runs[key]
        return max(r["peak_mb"] - r["start_mb"] for r in runs) if runs else float("nan")

    def first(self, key: tuple) -> dict:
        return self.runs[key][0]


def measure(args, results: Results, key: tuple, memory_only: bool = False) -> None:
    size, strat, batch, variant = key
    cfg = {"size": size, "strategy": strat, "batch": batch, "variant": variant, "reps": args.reps,
           "device": args.device}
    if memory_only:
        cfg["memory_only"] = True
        key = key + ("live",)
    progress(f"sampler {cfg}")
    results.add(key, run_child(MODULE, cfg, LIVE_MEMORY_ENV if memory_only else None))


def main_rows(args, res: Results) -> list[dict]:
    rows = []
    for size in args.sizes:
        for strat in args.strategies:
            for batch in args.batches:
                ours, base = (size, strat, batch, "ours"), (size, strat, batch, "baseline")
                t, tb = res.seconds(ours), res.seconds(base)
                steps = res.first(ours)["steps"]
                bound = median(res.pooled(ours, "bound_s"))
                rows.append({
                    "model": SIZES[size][0], "strategy": STRATEGY_NAMES[strat], "batch": batch,
                    "img_s": batch / t, "ms_step": 1000 * t / steps, "bound_ms_step": 1000 * bound / steps,
                    "overhead": f"{100 * res.overhead(ours):+.1f}%",
                    "overhead_wall": f"{100 * res.overhead(ours, 'wall'):+.1f}%",
                    "fwd": f"{sum(res.first(ours)['forward_batches'])} / {sum(res.first(base)['forward_batches'])}",
                    "base_img_s": batch / tb, "speedup": f"{res.ratio(base, ours):.2f}x",
                    "speedup_wall": f"{tb / t:.2f}x",
                    "base_overhead": f"{100 * res.overhead(base):+.1f}%",
                    "mem": f"{res.peak(ours):.0f} / {res.peak(base):.0f}",
                    "mem_ratio": f"{res.peak(ours) / res.peak(base):.3f}",
                    "live": f"{res.peak(ours, True):.0f} / {res.peak(base, True):.0f}",
                    "live_ratio": f"{res.peak(ours, True) / res.peak(base, True):.3f}",
                    **({"syncs": res.first(ours).get("syncs")} if "syncs" in res.first(ours) else {}),
                })
    return rows


MAIN_COLUMNS = [
    ("model", "model"), ("strategy", "strategy"), ("batch", "batch"), ("img_s", "ours img/s"),
    ("ms_step", "ours ms/step"), ("bound_ms_step", "bound ms/step"), ("overhead", "ours overhead vs bound"),
    ("overhead_wall", "(wall clock)"), ("fwd", "images through the network: ours / baseline"),
    ("base_img_s", "baseline img/s"), ("speedup", "ours vs baseline"), ("speedup_wall", "(wall clock)"),
    ("base_overhead", "baseline overhead vs its bound"),
    ("mem", "peak MB above start: ours / baseline"), ("mem_ratio", "peak ratio"),
    ("live", "live peak MB: ours / baseline"), ("live_ratio", "live peak ratio"), ("syncs", "syncs (CUDA)"),
]


def ablation_rows(args, res: Results) -> list[dict]:
    size, strat, batch = args.ablation_size, args.ablation_strategy, args.ablation_batch
    ours = (size, strat, batch, "ours")
    rows = []
    for variant in args.ablations:
        key = (size, strat, batch, variant)
        first = res.first(key)
        rows.append({"variant": variant, "what": ABLATIONS[variant], "s": res.seconds(key),
                     "vs_ours": f"{res.ratio(key, ours):.3f}", "vs_ours_wall": f"{res.ratio(key, ours, 'wall'):.3f}",
                     "overhead": f"{100 * res.overhead(key):+.1f}%",
                     "fwd": sum(first["forward_batches"]), "mem": f"{res.peak(key):.0f}",
                     "live": f"{res.peak(key, True):.0f}",
                     "warmup": f"{first['warmup_s']:.1f}" if variant == "ours-compile" else ""})
    return rows


ABLATION_COLUMNS = [("variant", "variant"), ("what", "change"), ("s", "s per decode"),
                    ("vs_ours", "time / ours"), ("vs_ours_wall", "(wall clock)"),
                    ("overhead", "overhead vs own bound"),
                    ("fwd", "images through the network"), ("mem", "peak MB above start"),
                    ("live", "live peak MB"), ("warmup", "compile s")]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--sizes", nargs="+", default=["s", "l"], choices=list(SIZES))
    p.add_argument("--strategies", nargs="+", default=["t8", "cosine"], choices=list(STRATEGY_NAMES))
    p.add_argument("--batches", nargs="+", type=int, default=None,
                   help="batch sizes (default: 1 2 4 on CPU, 8 32 128 on CUDA)")
    p.add_argument("--reps", type=int, default=2, help="decodes timed per process")
    p.add_argument("--rounds", type=int, default=1, help="alternations of ours and the baseline")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--ablations", nargs="*", default=None, choices=list(ABLATIONS),
                   help="variants for the ablation table (no values: all that apply to the device)")
    p.add_argument("--ablation-size", default="l", choices=list(SIZES))
    p.add_argument("--ablation-strategy", default="t8", choices=list(STRATEGY_NAMES))
    p.add_argument("--ablation-batch", type=int, default=None, help="default: the middle of --batches")
    p.add_argument("--no-main", action="store_true", help="only the ablation table")
    p.add_argument("--live-memory", action=argparse.BooleanOptionalAction, default=None,
                   help="also run each configuration once untimed for its live peak memory "
                        "(default: on CPU; CUDA's peak is live already)")
    p.add_argument("--clock", default="auto", choices=("auto", "cpu", "wall"),
                   help="clock of the ratios: process CPU time (auto on CPU: steady on a shared machine) "
                        "or wall (auto on CUDA)")
    p.add_argument("--json", help="keep the raw child reports here, after every child; "
                                  "an existing file is resumed (only missing runs are measured)")
    args = p.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = args.device.startswith("cuda")
    args.batches = args.batches or ([8, 32, 128] if cuda else [1, 2, 4])
    args.ablation_batch = args.ablation_batch or args.batches[len(args.batches) // 2]
    if args.live_memory is None:
        args.live_memory = not cuda
    if args.ablations is not None and not args.ablations:
        extra = "ours-fp32" if cuda else "ours-bf16"
        args.ablations = [v for v in ABLATIONS if v not in ("ours-bf16", "ours-fp32")] + [extra]
        args.ablations = sorted(args.ablations, key=list(ABLATIONS).index)
    if args.ablations and "ours" not in args.ablations:
        args.ablations.insert(0, "ours")
    return args


def clock_for(args) -> str:
    if args.clock != "auto":
        return args.clock
    return "wall" if args.device.startswith("cuda") else "cpu"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        report(child(json.loads(args.child)))
        return
    res = Results(args.json)
    res.clock = clock_for(args)
    main_keys = [] if args.no_main else [(s, st, b, v) for s in args.sizes for st in args.strategies
                                         for b in args.batches for v in ("ours", "baseline")]
    abl_keys = [(args.ablation_size, args.ablation_strategy, args.ablation_batch, v) for v in args.ablations or []]
    keys = main_keys + [k for k in abl_keys if k not in main_keys]
    for done in range(args.rounds):
        for key in keys:
            if res.count(key) <= done:
                measure(args, res, key)
    for key in keys if args.live_memory else []:
        if not res.count(key + ("live",)):
            measure(args, res, key, memory_only=True)
    print(f"Machine: {Machine.here(torch.device(args.device)).describe()}")
    print(f"Sampler, {args.reps} decodes per process x {args.rounds} round(s); times are medians; "
          f"rates use the wall clock, ratios the {res.clock} clock (the '(wall clock)' columns: the same ratios on the wall clock).\n")
    if main_keys:
        print(markdown_table(main_rows(args, res), [c for c in MAIN_COLUMNS if c[0] != "syncs"
                                                    or args.device.startswith("cuda")]))
    if abl_keys:
        print(f"\nAblations at {SIZES[args.ablation_size][0]}, {STRATEGY_NAMES[args.ablation_strategy]}, "
              f"batch {args.ablation_batch}:\n")
        print(markdown_table(ablation_rows(args, res), ABLATION_COLUMNS))


if __name__ == "__main__":
    main()
