"""Ours against the official AutoNAT code itself, same weights: the sampler and a training step.

The official code is not shipped here: point ``AUTONAT_OFFICIAL_CODE`` at a
local checkout of LeapLabTHU/ImprovedNAT (it carries its own timm 0.3.2;
its other requirement, loguru, is the ``official`` extra: ``pip install -e .[official]``). Without it the script
says so and exits.

Each run is a fresh process that builds the official U-ViT
(``libs/nat_model.py``) with seeded random weights and ours from the same
state dict (:func:`autonat.generator.official.uvit_from_official`), then
times the two taking turns for ``--rounds`` rounds, on process CPU time
(after one untimed call each; for the sampler a batch-1 call at any batch):

* sampler: the official ``NATSchedule.generate`` with train.py's guided
  network (both passes at every step) against our
  :func:`~autonat.sampling.sampler.sample_tokens` as ``autonat sample``
  runs it on a CPU, at the released AutoNAT-L T=8 strategy; seconds per
  image;
* training step: train.py's step (``NATSchedule.sample`` and ``loss``,
  AdamW, its LambdaLR, ``utils.ema`` at 0.9999, the host reads of its
  logger) against :func:`autonat.training.loop.train_step` with the default
  recipe; tokens per second.

The ratio column is official time / our time per round, as min-max over
all rounds of all runs (above 1: ours is faster). Each round also records
the machine's 1-minute load average (``os.getloadavg``) as it starts: on a
shared machine other jobs slow both sides of a round alike, and the table
shows how loaded the rounds were. ``--json F`` keeps every child's report as
it arrives; the same command again measures only what is missing.

    AUTONAT_OFFICIAL_CODE=~/ImprovedNAT OMP_NUM_THREADS=2 python -m benchmarks.bench_official \\
        --size s --batches 1 2 4 8 16 --runs 3 --rounds 3
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from .measure import Machine, RunLog, cell, markdown_table, median, progress, report, run_child, timed
from .workloads import AUTONAT_L_T8, SIZES, model_config, sample_labels

MODULE = "benchmarks.bench_official"
ENV = "AUTONAT_OFFICIAL_CODE"
CPU = torch.device("cpu")
WORKLOADS = ("sampler", "training step")


def official_modules(checkout: str):
    """``libs.nat_model``, ``libs.nat_misc`` and ``utils`` of the official checkout."""
    sys.path.insert(0, str(Path(checkout).expanduser().resolve()))  # first: its timm 0.3.2 over any other
    import utils
    from libs import nat_misc, nat_model

    return nat_model, nat_misc, utils


def build_pair(size: str, nat_model):
    """The official U-ViT (eval mode, seeded) and ours holding the same weights."""
    from autonat.generator.official import uvit_from_official

    c = model_config(size)
    torch.manual_seed(0)
    official = nat_model.UViT(img_size=c.grid[0], embed_dim=c.width, depth=c.depth, num_heads=c.num_heads,
                              mlp_ratio=c.mlp_ratio, qkv_bias=False, num_classes=c.num_classes + 1,
                              codebook_size=c.codebook_size, skip=True)
    ours = uvit_from_official(official.state_dict(), c.num_heads)
    return official, ours


def sampler_pair(official, ours, nat_misc, batch: int):
    """Two callables drawing ``batch`` images' tokens: the official loop and ours."""
    from autonat.sampling.sampler import TokenSpace, make_generators, sample_seeds, sample_tokens
    from autonat.strategy.files import load_strategy

    official.eval()
    ours.eval()
    c = ours.config
    labels = torch.tensor(sample_labels(batch, c.num_classes))
    empty = torch.full((batch, 1), c.num_classes)
    schedule = nat_misc.NATSchedule(codebook_size=c.codebook_size, device=torch.device("cpu"))
    manual = yaml.safe_load(AUTONAT_L_T8.read_text())
    strategy = load_strategy(AUTONAT_L_T8)

    def guided(x, scale, context):  # train.py's cfg_nnet
        cond, uncond = official(x, context=context), official(x, context=empty)
        return cond + scale * (cond - uncond)

    def run_official() -> None:
        schedule.generate(strategy.steps, batch, guided, lambda z: z, context=labels[:, None], **manual)

    def run_ours() -> None:
        sample_tokens(ours, strategy, labels, make_generators(sample_seeds(0, range(batch))), TokenSpace.of(c))

    return run_official, run_ours


def training_pair(official, ours, nat_misc, utils, batch: int):
    """Two callables taking training step ``i`` on one batch: train.py's and ours."""
    from .bench_training import our_step

    official.train()
    ours.train()
    c = ours.config
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, c.codebook_size, (batch, c.seq_len), generator=g)
    labels = torch.tensor(sample_labels(batch, c.num_classes))
    schedule = nat_misc.NATSchedule(codebook_size=c.codebook_size, device=torch.device("cpu"), smoothing=0.1)
    official_ema = copy.deepcopy(official).eval()
    optimizer = torch.optim.AdamW(official.parameters(), lr=4e-4, weight_decay=0.03, betas=(0.99, 0.99))
    scheduler = utils.customized_lr_scheduler(optimizer, warmup_steps=5000)
    ours_step = our_step("ours", ours, torch.device("cpu"))

    def run_official(i: int) -> None:
        optimizer.zero_grad()
        _, targets, masked = schedule.sample(tokens)
        loss = schedule.loss(official(masked, context=labels[:, None]), targets)
        _ = loss.item(), masked.eq(schedule.mask_ind).sum().item()  # its logger's host reads
        loss.backward()
        optimizer.step()
        scheduler.step(i)
        utils.ema(official_ema, official, 0.9999)
        utils.get_grad_norm_(optimizer.param_groups[0]["params"]).item()

    return run_official, lambda i: ours_step(tokens, labels, i)


def child(cfg: dict) -> dict:
    """One run: both sides built once, then ``rounds`` rounds taking turns (sides swap each round)."""
    import warnings

    warnings.filterwarnings("ignore")  # train.py's scheduler.step(step) is deprecated in torch
    nat_model, nat_misc, utils = official_modules(cfg["checkout"])
    np.random.seed(0)  # the official Gumbel noise comes from NumPy's global generator
    official, ours = build_pair(cfg["size"], nat_model)
    batch = cfg["batch"]
    if cfg["workload"] == "sampler":
        with torch.no_grad():
            pair = sampler_pair(official, ours, nat_misc, batch)
            warm_up = sampler_pair(official, ours, nat_misc, 1) if batch > 1 else pair  # a batch-1 image each
            times = _take_turns(pair, cfg["rounds"], lambda fn, r: fn(), warm_up)
        return {side: ts if side == "load" else [t / batch for t in ts]  # seconds per image
                for side, ts in times.items()}
    pair = training_pair(official, ours, nat_misc, utils, batch)
    times = _take_turns(pair, cfg["rounds"], lambda fn, r: fn(r))
    return {side: ts if side == "load" else [batch * ours.config.seq_len / t for t in ts]  # tokens/s
            for side, ts in times.items()}


def _take_turns(pair, rounds: int, call, warm_up=None) -> dict:
    """CPU seconds per round of each side after one untimed call each; the first side alternates.

    The untimed calls are of ``warm_up`` when given (a cheaper pair: they only
    have to load the libraries' kernels and thread pools). ``load`` holds the
    1-minute load average as each round starts.
    """
    sides = dict(zip(("official", "ours"), pair))
    for fn in (warm_up or pair):
        call(fn, 0)
    times = {side: [] for side in (*sides, "load")}
    for r in range(1, rounds + 1):
        times["load"].append(round(os.getloadavg()[0], 2))
        for side in (("official", "ours") if r % 2 else ("ours", "official")):
            times[side].append(timed(lambda s=side, r=r: call(sides[s], r), CPU)[1])
    return times


def faster(workload: str, official: float, ours: float) -> float:
    """Ours against the official in one round, above 1 when ours is faster (s/img: lower is faster)."""
    return official / ours if workload == "sampler" else ours / official


def rows(results: dict) -> list[dict]:
    """One row per (workload, batch): medians, the spreads over all rounds of all runs, the rounds' loads."""
    out = []
    for (workload, batch), runs in results.items():
        official = [v for run in runs for v in run["official"]]
        ours = [v for run in runs for v in run["ours"]]
        ratios = [faster(workload, o, u) for o, u in zip(official, ours)]
        load = [v for run in runs for v in run.get("load", [])]
        unit = "s/img" if workload == "sampler" else "tokens/s"
        out.append({"workload": workload, "batch": batch, "unit": unit,
                    "official": f"{cell(median(official))} ({_spread(official)})",
                    "ours": f"{cell(median(ours))} ({_spread(ours)})", "ratio": f"{_spread(ratios)}x",
                    "load": _spread(load) if load else "", "rounds": f"{len(runs)} x {len(runs[0]['ours'])}"})
    return out


def round_rows(results: dict) -> list[dict]:
    """Every round of every run: both sides, their ratio and the load average as the round started."""
    out = []
    for (workload, batch), runs in results.items():
        for i, run in enumerate(runs, 1):
            for r, (o, u) in enumerate(zip(run["official"], run["ours"]), 1):
                load = run.get("load", [])
                out.append({"workload": workload, "batch": batch, "round": f"{i}.{r}", "official": o, "ours": u,
                            "ratio": f"{faster(workload, o, u):.2f}x", "load": load[r - 1] if load else ""})
    return out


def _spread(values: list[float]) -> str:
    return f"{cell(min(values))}-{cell(max(values))}"


COLUMNS = [("workload", "workload"), ("batch", "batch"), ("unit", "unit"),
           ("official", "official: median (min-max)"), ("ours", "ours: median (min-max)"),
           ("ratio", "ours vs official, per round (min-max)"), ("load", "load average at the rounds"),
           ("rounds", "runs x rounds")]
ROUND_COLUMNS = [("workload", "workload"), ("batch", "batch"), ("round", "run.round"), ("official", "official"),
                 ("ours", "ours"), ("ratio", "ours vs official"), ("load", "load average")]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--size", default="s", choices=list(SIZES))
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    p.add_argument("--runs", type=int, default=3, help="fresh processes per configuration")
    p.add_argument("--rounds", type=int, default=3, help="timed turns of each side per process")
    p.add_argument("--json", help="keep the raw per-round reports here (resumes: measures only what is missing)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        report(child(json.loads(args.child)))
        return 0
    checkout = os.environ.get(ENV)
    if not checkout or not (Path(checkout).expanduser() / "libs" / "nat_misc.py").is_file():
        print(f"skipped: set {ENV} to a local checkout of LeapLabTHU/ImprovedNAT (with libs/nat_misc.py; "
              f"{'got ' + repr(checkout) if checkout else 'unset'}) to compare against the official code")
        return 0
    log = RunLog(args.json)
    for workload in args.workloads:
        for batch in args.batches:
            key = (args.size, workload, batch, args.rounds)
            for run in range(log.count(key), args.runs):
                progress(f"{workload}, batch {batch}, run {run + 1}/{args.runs} "
                         f"(load average {os.getloadavg()[0]:.1f})")
                cfg = {"checkout": checkout, "size": args.size, "batch": batch, "workload": workload,
                       "rounds": args.rounds}
                log.add(key, run_child(MODULE, cfg))
    results = {(w, b): log.runs[(args.size, w, b, args.rounds)] for w in args.workloads for b in args.batches}
    print(f"Machine: {Machine.here(torch.device('cpu')).describe()}")
    print(f"{SIZES[args.size][0]}, released AutoNAT-L T=8 strategy, fp32, process CPU time, "
          "sampler in s/img (lower is faster), "
          f"training in tokens/s (higher is faster)\n")
    print(markdown_table(rows(results), COLUMNS))
    print("\nEvery round (load average: 1 minute, as the round started)\n")
    print(markdown_table(round_rows(results), ROUND_COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
