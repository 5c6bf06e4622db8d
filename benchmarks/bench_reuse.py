"""Reuse across decoding steps: what each setting saves (FLOPs, CPU time) and what it costs (FID).

A *setting* marks, for a T = 8 strategy, the steps that reuse the guidance
residual (``cfg_reuse``) and the steps that take U-ViT's deep features from
the last full step (``deep_reuse``, recomputing ``keep`` blocks at each end);
see :class:`autonat.sampling.sampler.StepMemory`. ``exact`` reuses nothing.

Quality (``--fid``): the built-in demo model with the T = 8 strategy it
shipped with when the table was measured (``REUSE_STRATEGY``: the first
``--free all`` CMA-ES search, guidance at all 8 steps), FID against the
held-out digits (digit-classifier features, the README's demo figures) on
three seed sets of N images each, mean ± std, and the share of sampled
tokens identical to the exact sampler's under the same seeds.
Results are saved after every (setting, seed set), so the run resumes.

Cost (``--cost``): the AutoNAT-S and AutoNAT-L shapes (random seeded
weights, ImageNet 256 token grid) with the released AutoNAT-L T = 8
strategy. One process times every setting round-robin (exact and reuse
alternate, so load from other jobs falls on all alike), the process CPU time
(``time.process_time``) of one decode of ``--batch`` images; FLOPs are the
network's matmul FLOPs (``torch.utils.flop_counter``) of every forward pass
the decode made, counted per pass shape.

``--profile`` prints where one AutoNAT-L step's time goes (torch.profiler,
one full pass and one deep-reuse pass, by operator). ``--report`` prints the
tables from the saved results.

    python -m benchmarks.bench_reuse --fid --out runs/reuse            # demo FID (hours on one thread)
    python -m benchmarks.bench_reuse --cost --sizes s l --out runs/reuse
    python -m benchmarks.bench_reuse --report --out runs/reuse
    python -m benchmarks.bench_reuse --cost --sizes tiny --rounds 1    # check the script in seconds
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autonat.generator.uvit import DeepReuse
from autonat.sampling.sampler import SamplerOptions, TokenSpace, make_generators, sample_seeds, sample_tokens
from autonat.strategy.core import Strategy

from .measure import Machine, RunLog, markdown_table, progress
from .workloads import SIZES, build_model, sample_labels, strategy

#: The demo's T = 8 strategy of the published reuse table (docs/benchmarks.md); the demo now ships another.
REUSE_STRATEGY = Path(__file__).resolve().parents[1] / "configs" / "strategies" / "demo_T8_cma_all.yaml"
FRESH_SEEDS = (20_001, 20_002, 20_003)  # the demo's final-comparison seed sets (tools/search_experiment.py)


@dataclass(frozen=True)
class Setting:
    """Steps (0-based) that reuse the guidance residual / the deep features, and the blocks kept at each end."""

    cfg: tuple[int, ...] = ()
    deep: tuple[int, ...] = ()
    keep: int = 1

    def apply(self, base: Strategy) -> Strategy:
        flags = [[int(t in steps) for t in range(base.steps)] for steps in (self.cfg, self.deep)]
        return base.with_reuse(*(f if any(f) else [] for f in flags))

    def options(self, **kwargs) -> SamplerOptions:
        return SamplerOptions(deep_keep=self.keep, **kwargs)

    def describe(self) -> str:
        parts = [f"cfg_reuse {','.join(map(str, self.cfg))}" if self.cfg else "",
                 f"deep_reuse {','.join(map(str, self.deep))} (keep {self.keep})" if self.deep else ""]
        return " + ".join(p for p in parts if p) or "exact (no reuse)"


SETTINGS: dict[str, Setting] = {
    "exact": Setting(),
    "cfg-57": Setting(cfg=(5, 7)),
    "cfg-4567": Setting(cfg=(4, 5, 6, 7)),
    "deep-567": Setting(deep=(5, 6, 7)),
    "deep-246": Setting(deep=(2, 4, 6)),
    "deep-1246": Setting(deep=(1, 2, 4, 6)),
    "deep-1246-k2": Setting(deep=(1, 2, 4, 6), keep=2),
    "deep-1357": Setting(deep=(1, 3, 5, 7)),
    "deep-1357-k2": Setting(deep=(1, 3, 5, 7), keep=2),
    "deep-123567": Setting(deep=(1, 2, 3, 5, 6, 7)),
    "deep-all": Setting(deep=(1, 2, 3, 4, 5, 6, 7)),
    "cfg-all": Setting(cfg=(1, 2, 3, 4, 5, 6, 7)),
    "deep-246+cfg-57": Setting(cfg=(5, 7), deep=(2, 4, 6)),
    "deep-1246+cfg-57": Setting(cfg=(5, 7), deep=(1, 2, 4, 6)),
    "deep-1357+cfg-4567": Setting(cfg=(4, 5, 6, 7), deep=(1, 3, 5, 7)),
    "deep-1+cfg-4567": Setting(cfg=(4, 5, 6, 7), deep=(1,)),
    "deep-12+cfg-4567": Setting(cfg=(4, 5, 6, 7), deep=(1, 2)),
    "deep-13+cfg-4567": Setting(cfg=(4, 5, 6, 7), deep=(1, 3)),
    "deep-123+cfg-4567": Setting(cfg=(4, 5, 6, 7), deep=(1, 2, 3)),
}


# --------------------------------------------------------------------------- quality (demo)
def demo_quality(names: list[str], n: int, out: Path, log_name: str = "fid") -> None:
    """FID of every setting on every seed set (setting by setting), its tokens saved for :func:`same_tokens`.

    Each process writes its own log ``out/<log_name>.json``, so settings can be
    measured by several processes at once; a (setting, seed set) found in any
    log under ``out`` is skipped.
    """
    from autonat.data.demo import DEMO_CHECKPOINT
    from autonat.data.images import to_uint8
    from autonat.evaluation.images import ArrayImages
    from autonat.search.objective import FIDObjective
    from autonat.strategy.files import load_strategy

    log = RunLog(str(out / f"{log_name}.json"))
    base = load_strategy(REUSE_STRATEGY)
    objective = FIDObjective(DEMO_CHECKPOINT, "demo:heldout", n)
    pipe, labels = objective.pipeline, objective.labels
    (out / "tokens").mkdir(parents=True, exist_ok=True)
    for name in names:
        for seed in FRESH_SEEDS:
            if (name, seed, n) in fid_runs(out):
                continue
            setting = SETTINGS[name]
            t0 = time.process_time()
            tokens = torch.cat([pipe.tokens(setting.apply(base), labels[i:i + 100],
                                            sample_seeds(seed, range(i, min(i + 100, n))), setting.options())
                                for i in range(0, n, 100)])
            seconds = time.process_time() - t0
            images = torch.cat([to_uint8(pipe.tokenizer.decode(tokens[i:i + 100])) for i in range(0, n, 100)])
            fid = objective.evaluator.score(ArrayImages(images.permute(0, 2, 3, 1).numpy()), progress=False)["fid"]
            torch.save(tokens, token_file(out, name, seed, n))
            log.add((name, seed, n), {"fid": fid, "cpu_seconds": seconds})
            progress(f"{name} seed {seed}: FID {fid:.3f}, {seconds:.0f} s CPU sampling")


def fid_runs(out: Path) -> dict[tuple, dict]:
    """Every saved (setting, seed, n) -> its FID record, over all the logs under ``out``."""
    runs = {}
    for path in sorted(out.glob("fid*.json")):
        runs.update({key: records[-1] for key, records in RunLog(str(path)).runs.items()})
    return runs


def token_file(out: Path, name: str, seed: int, n: int) -> Path:
    return out / "tokens" / f"{name}-{seed}-{n}.pt"


def same_tokens(out: Path, name: str, seed: int, n: int) -> float | None:
    """The share of sampled tokens equal to the exact sampler's under the same seeds (None if either is missing)."""
    mine, exact = token_file(out, name, seed, n), token_file(out, "exact", seed, n)
    if not (mine.exists() and exact.exists()):
        return None
    return float((torch.load(mine) == torch.load(exact)).float().mean())


# --------------------------------------------------------------------------- cost (AutoNAT shapes)
class PassLog(nn.Module):
    """Passes calls through to ``inner`` and records each pass's shape: (rows, reused deep features)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.passes: list[tuple[int, bool]] = []

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, deep: DeepReuse | None = None) -> torch.Tensor:
        self.passes.append((int(tokens.shape[0]), deep is not None and deep.features is not None))
        return self.inner(tokens, labels) if deep is None else self.inner(tokens, labels, deep=deep)


def pass_flops(model: nn.Module, rows: int, reused: bool, keep: int) -> int:
    """Matmul FLOPs of one forward pass of ``rows`` rows, full or reusing deep features (``keep`` blocks)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    tokens = torch.randint(0, cfg.codebook_size, (rows, cfg.seq_len))
    labels = torch.zeros(rows, dtype=torch.long)
    deep = DeepReuse(keep)
    with torch.no_grad():  # the counter's module tracker does not run under inference_mode
        if reused:
            model(tokens, labels, deep=deep)
        with FlopCounterMode(display=False) as counter:
            model(tokens, labels, deep=deep if reused else None)
    return counter.get_total_flops()


def decode_flops(model: PassLog, setting: Setting, strat: Strategy, batch: int, cache: dict) -> float:
    """Matmul FLOPs per image of one decode of ``batch`` images (the passes it made, counted per shape)."""
    model.passes.clear()
    with torch.inference_mode():
        sample_tokens(model, setting.apply(strat), torch.tensor(sample_labels(batch, model.config.num_classes)),
                      make_generators(sample_seeds(0, range(batch))), TokenSpace.of(model.config), setting.options())
    return passes_flops(model, setting, cache) / batch


def passes_flops(model: PassLog, setting: Setting, cache: dict) -> int:
    """Matmul FLOPs of the passes ``model`` recorded; ``cache`` keeps each pass shape's count."""
    total = 0
    for n_rows, reused in model.passes:
        key = (n_rows, reused, setting.keep)
        if key not in cache:
            cache[key] = pass_flops(model.inner, *key)
        total += cache[key]
    return total


def demo_flops(names: list[str]) -> dict[str, float]:
    """FLOPs per image of each setting on the demo model with ``REUSE_STRATEGY``, relative to exact (exact / it)."""
    from autonat.data.demo import DEMO_CHECKPOINT
    from autonat.generator.checkpoint import load_generator
    from autonat.strategy.files import load_strategy

    model = PassLog(load_generator(DEMO_CHECKPOINT, "cpu").model.eval())
    base, cache = load_strategy(REUSE_STRATEGY), {}
    flops = {name: decode_flops(model, SETTINGS[name], base, 1, cache) for name in ["exact", *names]}
    return {name: flops["exact"] / flops[name] for name in names}


def measure_cost(sizes: list[str], names: list[str], batch: int, rounds: int, out: Path | None) -> list[dict]:
    """Per image: process CPU seconds (median over rounds) and matmul FLOPs of every setting at each size."""
    strat = strategy("t8")
    rows = []
    for size in sizes:
        model = PassLog(build_model(size, torch.device("cpu")))
        space = TokenSpace.of(model.config)
        labels = torch.tensor(sample_labels(batch))
        seeds = sample_seeds(0, range(batch))
        flops_of: dict[tuple, int] = {}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        flops: dict[str, float] = {}
        order = ["exact", *[x for x in names if x != "exact"]]
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:  # alternate, so drifts in load fall on all alike
                setting = SETTINGS[name]
                model.passes.clear()
                t0 = time.process_time()
                with torch.inference_mode():
                    sample_tokens(model, setting.apply(strat), labels, make_generators(seeds), space,
                                  setting.options())
                cpu[name].append((time.process_time() - t0) / batch)
                flops[name] = passes_flops(model, setting, flops_of) / batch
                progress(f"{SIZES[size][0]} round {r}: {name} {cpu[name][-1]:.2f} s CPU/img, "
                         f"{flops[name] / 1e9:.0f} GFLOP/img, {len(model.passes)} passes")
        for name in names:
            row = {"size": SIZES[size][0], "setting": name, "describe": SETTINGS[name].describe(),
                   "gflop": flops[name] / 1e9, "flop_ratio": flops["exact"] / flops[name],
                   "cpu_s": statistics.median(cpu[name]), "cpu_runs": cpu[name],
                   "cpu_ratio": statistics.median(cpu["exact"]) / statistics.median(cpu[name]),
                   "batch": batch, "threads": torch.get_num_threads(),
                   "machine": Machine.here(torch.device("cpu")).describe()}
            rows.append(row)
        if out is not None:
            path = out / "cost.json"
            saved = json.loads(path.read_text()) if path.exists() else []
            mine = {(x["size"], x["setting"]) for x in rows}  # each row's ratios are against its own run's exact
            saved = [x for x in saved if (x["size"], x["setting"]) not in mine] + rows
            path.write_text(json.dumps(saved, indent=1))
    return rows


def profile_step(size: str, keep: int) -> None:
    """Operator breakdown of one full forward pass and one deep-reuse pass (batch 1), and the sampler's own work."""
    from torch.profiler import ProfilerActivity, profile

    model = build_model(size, torch.device("cpu"))
    cfg = model.config
    tokens = torch.randint(0, cfg.codebook_size, (1, cfg.seq_len))
    labels = torch.zeros(1, dtype=torch.long)
    with torch.inference_mode():
        deep = DeepReuse(keep)
        model(tokens, labels, deep=deep)
        for title, kwargs in (("full pass", {}), (f"deep-reuse pass (keep {keep})", {"deep": deep})):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                model(tokens, labels, **kwargs)
            print(f"\n## {SIZES[size][0]}, one {title}, batch 1\n")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
        strat = strategy("t8")
        gens = make_generators(sample_seeds(0, [0]))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            sample_tokens(model, strat, labels, gens, TokenSpace.of(cfg))
        print(f"\n## {SIZES[size][0]}, one exact decode of the T=8 strategy, batch 1\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))


# --------------------------------------------------------------------------- report
def report(out: Path) -> None:
    runs = fid_runs(out)
    if runs:
        cost = {}
        if (out / "cost.json").exists():
            for row in json.loads((out / "cost.json").read_text()):
                cost[(row["size"], row["setting"])] = row
        fids: dict[str, list[float]] = {}
        same: dict[str, list[float]] = {}
        for (name, seed, n), record in runs.items():
            fids.setdefault(name, []).append(record["fid"])
            share = same_tokens(out, name, seed, n)
            if share is not None:
                same.setdefault(name, []).append(share)
        demo = demo_flops([name for name in SETTINGS if name in fids])
        exact = fids.get("exact", [])
        std = statistics.stdev(exact) if len(exact) > 1 else float("nan")
        rows = []
        for name in SETTINGS:
            if name not in fids:
                continue
            mean = statistics.mean(fids[name])
            spread = statistics.stdev(fids[name]) if len(fids[name]) > 1 else float("nan")
            row = {"setting": name, "what": SETTINGS[name].describe(), "fid": f"{mean:.3f} ± {spread:.3f}",
                   "sets": len(fids[name]), "same": statistics.mean(same[name]) if same.get(name) else None,
                   "within": "yes" if exact and abs(mean - statistics.mean(exact)) <= std else "no",
                   "demo-flop": demo[name]}
            for size in ("AutoNAT-S", "AutoNAT-L"):
                c = cost.get((size, name))
                if c:
                    row[f"{size}-flop"] = c["flop_ratio"]
                    row[f"{size}-cpu"] = c["cpu_ratio"]
            rows.append(row)
        print(f"exact sampler: FID std over {len(exact)} seed sets = {std:.3f}\n")
        print(markdown_table(rows, [("setting", "setting"), ("what", "reuse (steps 0-7)"),
                                    ("fid", "demo FID, mean ± std"), ("sets", "seed sets"),
                                    ("same", "tokens as exact"), ("within", "within exact's std"),
                                    ("demo-flop", "demo: FLOPs saved x"),
                                    ("AutoNAT-S-flop", "S: FLOPs saved x"), ("AutoNAT-S-cpu", "S: CPU saved x"),
                                    ("AutoNAT-L-flop", "L: FLOPs saved x"), ("AutoNAT-L-cpu", "L: CPU saved x")]))
    if (out / "cost.json").exists():
        rows = json.loads((out / "cost.json").read_text())
        print()
        print(markdown_table(rows, [("size", "shape"), ("setting", "setting"), ("gflop", "GFLOP/img"),
                                    ("flop_ratio", "FLOPs saved x"), ("cpu_s", "CPU s/img (median)"),
                                    ("cpu_ratio", "CPU saved x"), ("batch", "batch"), ("threads", "threads")]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fid", action="store_true", help="demo FID and token agreement of every setting")
    p.add_argument("--cost", action="store_true", help="CPU time and FLOPs per image at the AutoNAT shapes")
    p.add_argument("--profile", action="store_true", help="operator breakdown of one AutoNAT-L step")
    p.add_argument("--report", action="store_true", help="print the tables from --out")
    p.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--sizes", nargs="*", default=["s", "l"], choices=list(SIZES))
    p.add_argument("--n", type=int, default=1000, help="images per FID seed set (default 1000)")
    p.add_argument("--batch", type=int, default=1, help="images per timed decode (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="timed decodes of each setting (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--keep", type=int, default=1, help="--profile: blocks kept at each end (default 1)")
    p.add_argument("--out", help="directory of the saved results (resumable)")
    p.add_argument("--log", default="fid", help="--fid: this process's log name under --out (default fid)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if args.fid:
        if out is None:
            p.error("--fid needs --out (its results are saved as they come)")
        demo_quality(args.settings, args.n, out, args.log)
    if args.cost:
        rows = measure_cost(args.sizes, args.settings, args.batch, args.rounds, out)
        print(f"\n{Machine.here(torch.device('cpu')).describe()}\n")
        print(markdown_table(rows, [("size", "shape"), ("setting", "setting"), ("gflop", "GFLOP/img"),
                                    ("flop_ratio", "FLOPs saved x"), ("cpu_s", "CPU s/img"),
                                    ("cpu_ratio", "CPU saved x")]))
    if args.profile:
        profile_step("l" if "l" in args.sizes else args.sizes[0], args.keep)
    if args.report and out is not None:
        report(out)


if __name__ == "__main__":
    main()
