"""Tokenizer speed: MaskGIT VQGAN encode and decode images/s at 256x256, and peak memory.

The network is :class:`autonat.tokenizers.maskgit.MaskGITVQGAN` (the released
``vq-f16-jax`` architecture) with seeded random weights: speed does not
depend on the weights. Each (operation, precision, batch) runs in a fresh
process so its peak memory is its own.

    python -m benchmarks.bench_tokenizer                     # batches 1 2 4, fp32 and bf16 autocast
    python -m benchmarks.bench_tokenizer --resolution 64     # check the script quickly
"""
from __future__ import annotations

import argparse
import json

import torch

from autonat.tokenizers.maskgit import MaskGITVQGAN, MaskGITVQGANConfig

from .measure import (
    Machine,
    current_memory_mb,
    markdown_table,
    median,
    peak_memory_mb,
    progress,
    report,
    run_child,
    timed,
)

MODULE = "benchmarks.bench_tokenizer"
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def child(cfg: dict) -> dict:
    device = torch.device(cfg["device"])
    start_mb = current_memory_mb(device)  # the interpreter, torch and autonat, before any model
    torch.manual_seed(0)
    vq = MaskGITVQGAN(MaskGITVQGANConfig(resolution=cfg["resolution"])).to(device).eval()
    b, res = cfg["batch"], cfg["resolution"]
    images = torch.rand(b, 3, res, res, device=device)
    tokens = torch.randint(0, vq.codebook_size, (b, *vq.grid), device=device)
    op = vq.encode if cfg["op"] == "encode" else vq.decode
    x = images if cfg["op"] == "encode" else tokens
    dtype = PRECISIONS[cfg["precision"]]

    def run() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                                                    enabled=dtype is not None):
            op(x)

    warmup_s = timed(run, device)[0]
    times = [timed(run, device) for _ in range(cfg["reps"])]
    return {"s": [w for w, _ in times], "cpu_s": [c for _, c in times], "warmup_s": warmup_s,
            "peak_mb": peak_memory_mb(device), "start_mb": start_mb}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--batches", nargs="+", type=int, default=None,
                   help="batch sizes (default: 1 2 4 on CPU, 16 64 on CUDA)")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--json", help="also write the raw child reports here")
    args = p.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.batches = args.batches or ([16, 64] if args.device.startswith("cuda") else [1, 2, 4])
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        report(child(json.loads(args.child)))
        return
    rows, raw = [], []
    for op in ("encode", "decode"):
        for precision in args.precisions:
            for batch in args.batches:
                cfg = {"op": op, "precision": precision, "batch": batch, "resolution": args.resolution,
                       "reps": args.reps, "device": args.device}
                progress(f"tokenizer {cfg}")
                r = run_child(MODULE, cfg)
                raw.append({"config": cfg, **r})
                t = median(r["s"])
                rows.append({"op": op, "precision": precision, "batch": batch, "img_s": batch / t,
                             "ms_img": 1000 * t / batch, "mem": f"{r['peak_mb'] - r['start_mb']:.0f}"})
    print(f"Machine: {Machine.here(torch.device(args.device)).describe()}")
    print(f"MaskGIT VQGAN at {args.resolution}px, {args.reps} repetitions per process; times are medians.\n")
    print(markdown_table(rows, [("op", "operation"), ("precision", "precision"), ("batch", "batch"),
                                ("img_s", "images/s"), ("ms_img", "ms/image"), ("mem", "peak MB above start")]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
