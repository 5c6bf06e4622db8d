"""Sampler speed against the forward-pass bound and the reference-style baseline.

Timing: for every (model size, strategy, batch) one process builds each
variant it compares (ours and the baseline of :mod:`benchmarks.baseline`, or
the ablation variants), every one on its own copy of the same seeded network,
and times them round-robin, ``--reps`` decodes each. After each decode it
replays *only* the forward passes that decode made (same batch sizes,
precision and grad mode, random tokens): that replay is the forward-pass
bound, and the sampler's overhead is the rest. Taking turns inside one
process keeps the ratios steady on a machine shared with other jobs.

Memory: each variant then decodes once more, untimed, in a fresh process of
its own: its peak RSS with the default allocator and its live peak (see
:data:`benchmarks.measure.LIVE_MEMORY_ENV`); on CUDA, the peak of
``torch.cuda.max_memory_allocated``.

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

from autonat.sampling.pipeline import autocast_dtype
from autonat.sampling.sampler import (
    SamplerOptions,
    TokenSpace,
    decode,
    make_generators,
    sample_seeds,
    sample_tokens,
)
from autonat.strategy.core import Strategy

from .baseline import baseline_sample, reference_style
from .measure import (
    LIVE_MEMORY_ENV,
    Machine,
    RunLog,
    current_memory_mb,
    markdown_table,
    median,
    peak_memory_mb,
    progress,
    report,
    run_child,
    timed,
)
from .workloads import (
    SIZES,
    STRATEGY_NAMES,
    build_model,
    model_config,
    sample_labels,
    strategy,
)

MODULE = "benchmarks.bench_sampler"

#: Variants of the ablation table: what each one changes relative to ours.
ABLATIONS = {
    "ours": "the sampler as shipped (CPU: fp32, split CFG passes; CUDA: bf16 autocast, batched CFG passes)",
    "ours-manual-attn": "without scaled_dot_product_attention (attention by hand)",
    "ours-batched-cfg": "conditional and unconditional rows in one forward pass "
                        "(cfg_batching='batched'; CUDA's default)",
    "ours-split-cfg": "conditional and unconditional as two forward passes (cfg_batching='split'; the CPU default)",
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
    space = TokenSpace.of(model.config)
    if variant == "baseline":
        rec = Recorder(reference_style(model))
        return Runner(lambda: baseline_sample(rec, strat, labels, space), rec, None, torch.no_grad)
    options = SamplerOptions(autocast_dtype=autocast_dtype("auto", device))
    net: nn.Module = model
    if variant == "ours-manual-attn":
        net = reference_style(model)
    elif variant == "ours-split-cfg":
        options.cfg_batching = "split"
    elif variant == "ours-batched-cfg":
        options.cfg_batching = "batched"
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
                *_, last = decode(rec, strat, labels, gens, space, options)
            return last.tokens
        return sample_tokens(rec, strat, labels, gens, space, options)

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


def time_variants(cfg: dict) -> dict:
    """Round-robin timing of ``cfg["variants"]`` in this process; times per variant."""
    device = torch.device(cfg["device"])
    strat = strategy(cfg["strategy"])
    batch = cfg["batch"]
    labels = torch.tensor(sample_labels(batch), device=device)
    seeds = sample_seeds(0, range(batch))
    runners = {v: make_runner(v, build_model(cfg["size"], device), strat, labels, seeds, device)
               for v in cfg["variants"]}
    g = torch.Generator().manual_seed(1)
    mc = model_config(cfg["size"])
    tokens = torch.randint(0, mc.mask_id + 1, (2 * batch, mc.seq_len), generator=g).to(device)
    rand_labels = torch.randint(0, mc.null_class + 1, (2 * batch,), generator=g).to(device)
    out = {v: {"sample_s": [], "sample_cpu_s": [], "bound_s": [], "bound_cpu_s": [],
               "warmup_s": timed(lambda r=r: warm_up(r, batch, tokens, rand_labels), device)[0]}
           for v, r in runners.items()}
    for _ in range(cfg["reps"]):
        for v, runner in runners.items():
            runner.recorder.calls.clear()
            wall, cpu = timed(runner.sample, device)
            calls = list(runner.recorder.calls)
            bound_wall, bound_cpu = timed(lambda runner=runner, calls=calls: replay(runner, calls, tokens, rand_labels),
                                          device)
            rec = out[v]
            rec["sample_s"].append(wall), rec["sample_cpu_s"].append(cpu)
            rec["bound_s"].append(bound_wall), rec["bound_cpu_s"].append(bound_cpu)
            rec["forward_batches"] = calls
    if device.type == "cuda" and "ours" in runners:
        out["ours"]["syncs"] = count_syncs(runners["ours"].sample)
    return {"variants": out, "steps": strat.steps}


def memory_of_variant(cfg: dict) -> dict:
    """Peak memory of one untimed decode of ``cfg["variant"]`` in this fresh process."""
    device = torch.device(cfg["device"])
    start_mb = current_memory_mb(device)  # the interpreter, torch and autonat, before any model
    batch = cfg["batch"]
    labels = torch.tensor(sample_labels(batch), device=device)
    runner = make_runner(cfg["variant"], build_model(cfg["size"], device), strategy(cfg["strategy"]), labels,
                         sample_seeds(0, range(batch)), device)
    runner.sample()
    return {"peak_mb": peak_memory_mb(device), "start_mb": start_mb}


def child(cfg: dict) -> dict:
    return memory_of_variant(cfg) if "variant" in cfg else time_variants(cfg)


# --------------------------------------------------------------------------- parent side
class Results(RunLog):
    """Child reports: timing runs keyed ``(size, strategy, batch, "time:" + variants)``,
    memory runs keyed ``(size, strategy, batch, variant, "rss" or "live")``.

    ``clock`` is ``"cpu"`` (process CPU time) or ``"wall"``; ratios use it,
    absolute rates always use the wall clock.
    """

    clock = "wall"

    def _field(self, name: str, clock: str | None) -> str:
        """The report field of ``name`` (``sample`` or ``bound``) on ``clock`` (default: ``self.clock``)."""
        return f"{name}_cpu_s" if (clock or self.clock) == "cpu" else f"{name}_s"

    def _timing_runs(self, config: tuple, *variants: str) -> list[dict]:
        """Timing processes of ``config`` that timed all of ``variants`` (taking turns)."""
        return [r["variants"] for k, runs in self.runs.items()
                if k[:3] == tuple(config) and k[3].startswith("time:") and set(variants) <= set(k[3][5:].split(","))
                for r in runs]

    def timing(self, config: tuple, variant: str) -> list[dict]:
        return [r[variant] for r in self._timing_runs(config, variant)]

    def pooled(self, config: tuple, variant: str, name: str) -> list[float]:
        return [v for r in self.timing(config, variant) for v in r[name]]

    def seconds(self, config: tuple, variant: str, clock: str = "wall") -> float:
        return median(self.pooled(config, variant, self._field("sample", clock)))

    def ratio(self, config: tuple, variant: str, other: str, clock: str | None = None) -> float:
        """Median over repetitions of (time of ``variant``) / (time of ``other`` in the same round)."""
        name = self._field("sample", clock)
        pairs = [(a, b) for r in self._timing_runs(config, variant, other)
                 for a, b in zip(r[variant][name], r[other][name])]
        return median([a / b for a, b in pairs])

    def overhead(self, config: tuple, variant: str, clock: str | None = None) -> float:
        """Median over repetitions of decode / its own forward passes, minus 1."""
        pairs = zip(self.pooled(config, variant, self._field("sample", clock)),
                    self.pooled(config, variant, self._field("bound", clock)))
        return median([s / b - 1 for s, b in pairs])

    def first(self, config: tuple, variant: str) -> dict:
        return self.timing(config, variant)[0]

    def peak(self, config: tuple, variant: str, kind: str = "rss") -> float:
        """Peak memory of the work (weights, activations) above the process's memory at start."""
        runs = self.runs.get(tuple(config) + (variant, kind), [])
        return max(r["peak_mb"] - r["start_mb"] for r in runs) if runs else float("nan")


def run_timing(args, res: Results, config: tuple, variants: list[str], rounds: int) -> None:
    key = tuple(config) + ("time:" + ",".join(variants),)
    while res.count(key) < rounds:
        size, strat, batch = config
        cfg = {"size": size, "strategy": strat, "batch": batch, "variants": variants, "reps": args.reps,
               "device": args.device}
        progress(f"sampler timing {cfg}")
        res.add(key, run_child(MODULE, cfg))


def run_memory(args, res: Results, config: tuple, variant: str) -> None:
    kinds = {"rss": None, "live": LIVE_MEMORY_ENV} if args.device == "cpu" else {"rss": None}
    for kind, env in kinds.items():
        key = tuple(config) + (variant, kind)
        if not res.count(key):
            size, strat, batch = config
            cfg = {"size": size, "strategy": strat, "batch": batch, "variant": variant, "device": args.device}
            progress(f"sampler memory ({kind}) {cfg}")
            res.add(key, run_child(MODULE, cfg, env))


def main_rows(args, res: Results) -> list[dict]:
    rows = []
    for size in args.sizes:
        for strat in args.strategies:
            for batch in args.batches:
                c = (size, strat, batch)
                t, tb = res.seconds(c, "ours"), res.seconds(c, "baseline")
                steps = res.first(c, "ours").get("steps") or strategy(strat).steps
                bound = median(res.pooled(c, "ours", "bound_s"))
                ours_fwd = sum(res.first(c, "ours")["forward_batches"])
                base_fwd = sum(res.first(c, "baseline")["forward_batches"])
                row = {
                    "model": SIZES[size][0], "strategy": STRATEGY_NAMES[strat], "batch": batch,
                    "img_s": batch / t, "ms_step": 1000 * t / steps, "bound_ms_step": 1000 * bound / steps,
                    "overhead": f"{100 * res.overhead(c, 'ours'):+.1f}%",
                    "overhead_wall": f"{100 * res.overhead(c, 'ours', 'wall'):+.1f}%",
                    "fwd": f"{ours_fwd} / {base_fwd}", "base_img_s": batch / tb,
                    "speedup": f"{res.ratio(c, 'baseline', 'ours'):.2f}x",
                    "speedup_wall": f"{res.ratio(c, 'baseline', 'ours', 'wall'):.2f}x",
                    "base_overhead": f"{100 * res.overhead(c, 'baseline'):+.1f}%",
                    "mem": f"{res.peak(c, 'ours'):.0f} / {res.peak(c, 'baseline'):.0f}",
                    "mem_ratio": f"{res.peak(c, 'ours') / res.peak(c, 'baseline'):.3f}",
                    "live": f"{res.peak(c, 'ours', 'live'):.0f} / {res.peak(c, 'baseline', 'live'):.0f}",
                    "live_ratio": f"{res.peak(c, 'ours', 'live') / res.peak(c, 'baseline', 'live'):.3f}",
                }
                other = args.other_precision
                if other and res.timing(c, other):
                    row["other_img_s"] = batch / res.seconds(c, other)
                    row["other_speedup"] = f"{res.ratio(c, 'baseline', other):.2f}x"
                if "syncs" in res.first(c, "ours"):
                    row["syncs"] = res.first(c, "ours")["syncs"]
                rows.append(row)
    return rows


MAIN_COLUMNS = [
    ("model", "model"), ("strategy", "strategy"), ("batch", "batch"), ("img_s", "ours img/s"),
    ("ms_step", "ours ms/step"), ("bound_ms_step", "bound ms/step"), ("overhead", "ours overhead vs bound"),
    ("overhead_wall", "(wall clock)"), ("fwd", "images through the network: ours / baseline"),
    ("base_img_s", "baseline img/s"), ("speedup", "ours vs baseline"), ("speedup_wall", "(wall clock)"),
    ("base_overhead", "baseline overhead vs its bound"),
    ("mem", "peak MB above start: ours / baseline"), ("mem_ratio", "peak ratio"),
    ("live", "live peak MB: ours / baseline"), ("live_ratio", "live peak ratio"),
    ("other_img_s", "OTHER img/s"), ("other_speedup", "OTHER vs baseline"), ("syncs", "syncs (CUDA)"),
]


def ablation_rows(args, res: Results) -> list[dict]:
    c = (args.ablation_size, args.ablation_strategy, args.ablation_batch)
    rows = []
    for variant in args.ablations:
        first = res.first(c, variant)
        rows.append({"variant": variant, "what": ABLATIONS[variant], "s": res.seconds(c, variant),
                     "vs_ours": f"{res.ratio(c, variant, 'ours'):.3f}",
                     "vs_ours_wall": f"{res.ratio(c, variant, 'ours', 'wall'):.3f}",
                     "overhead": f"{100 * res.overhead(c, variant):+.1f}%",
                     "fwd": sum(first["forward_batches"]), "mem": f"{res.peak(c, variant):.0f}",
                     "live": f"{res.peak(c, variant, 'live'):.0f}",
                     "warmup": f"{first['warmup_s']:.1f}" if variant == "ours-compile" else ""})
    return rows


ABLATION_COLUMNS = [("variant", "variant"), ("what", "change"), ("s", "s per decode"),
                    ("vs_ours", "time / ours"), ("vs_ours_wall", "(wall clock)"),
                    ("overhead", "overhead vs own bound"), ("fwd", "images through the network"),
                    ("mem", "peak MB above start"), ("live", "live peak MB"), ("warmup", "compile s")]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--sizes", nargs="+", default=["s", "l"], choices=list(SIZES))
    p.add_argument("--strategies", nargs="+", default=["t8", "cosine"], choices=list(STRATEGY_NAMES))
    p.add_argument("--batches", nargs="+", type=int, default=None,
                   help="batch sizes (default: 1 2 4 on CPU, 8 32 128 on CUDA)")
    p.add_argument("--reps", type=int, default=2, help="decodes timed per variant and process")
    p.add_argument("--rounds", type=int, default=1, help="timing processes per configuration")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--ablations", nargs="*", default=None, choices=list(ABLATIONS),
                   help="variants for the ablation table (no values: all that apply to the device)")
    p.add_argument("--ablation-size", default="l", choices=list(SIZES))
    p.add_argument("--ablation-strategy", default="t8", choices=list(STRATEGY_NAMES))
    p.add_argument("--ablation-batch", type=int, default=None, help="default: the middle of --batches")
    p.add_argument("--no-main", action="store_true", help="only the ablation table")
    p.add_argument("--other-precision", action=argparse.BooleanOptionalAction, default=True,
                   help="the main table also times ours in the device's other precision (bf16 on CPU, "
                        "fp32 on CUDA) against the same baseline")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                   help="also run each variant once, untimed, in fresh processes for its peak memory")
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
    args.other_precision = ("ours-fp32" if cuda else "ours-bf16") if args.other_precision else None
    if args.ablations is not None and not args.ablations:
        # each variant changes one thing from the device's default, so the other precision and the
        # other CFG batching apply
        extra = ["ours-fp32", "ours-split-cfg"] if cuda else ["ours-bf16", "ours-batched-cfg"]
        device_specific = ("ours-bf16", "ours-fp32", "ours-split-cfg", "ours-batched-cfg")
        args.ablations = [v for v in ABLATIONS if v not in device_specific] + extra
        args.ablations = sorted(args.ablations, key=list(ABLATIONS).index)
    if args.ablations and "ours" not in args.ablations:
        args.ablations.insert(0, "ours")
    if args.clock == "auto":
        args.clock = "wall" if cuda else "cpu"
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        report(child(json.loads(args.child)))
        return
    res = Results(args.json)
    res.clock = args.clock
    main_configs = [] if args.no_main else [(s, st, b) for s in args.sizes for st in args.strategies
                                            for b in args.batches]
    ablation = (args.ablation_size, args.ablation_strategy, args.ablation_batch)
    main_variants = ["ours", "baseline"] + ([args.other_precision] if args.other_precision else [])
    for config in main_configs:
        run_timing(args, res, config, main_variants, args.rounds)
    if args.ablations:
        run_timing(args, res, ablation, args.ablations, args.rounds)
    for config in main_configs if args.memory else []:
        for variant in ("ours", "baseline"):
            run_memory(args, res, config, variant)
    for variant in args.ablations if args.ablations and args.memory else []:
        run_memory(args, res, ablation, variant)
    print(f"Machine: {Machine.here(torch.device(args.device)).describe()}")
    print(f"Sampler, {args.reps} decodes per variant and process x {args.rounds} process(es), variants taking "
          f"turns; times are medians; rates use the wall clock, ratios the {res.clock} clock (the "
          f"'(wall clock)' columns: the same ratios on the wall clock).\n")
    if main_configs:
        cuda = args.device.startswith("cuda")
        other = {"ours-bf16": "ours bf16", "ours-fp32": "ours fp32"}.get(args.other_precision, "")
        columns = [(k, h.replace("OTHER", other)) for k, h in MAIN_COLUMNS
                   if (k != "syncs" or cuda) and (k not in ("live", "live_ratio") or not cuda)
                   and (other or not k.startswith("other"))]
        print(markdown_table(main_rows(args, res), columns))
    if args.ablations:
        print(f"\nAblations at {SIZES[args.ablation_size][0]}, {STRATEGY_NAMES[args.ablation_strategy]}, "
              f"batch {args.ablation_batch}:\n")
        print(markdown_table(ablation_rows(args, res), ABLATION_COLUMNS))


if __name__ == "__main__":
    main()
