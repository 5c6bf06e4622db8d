"""``autonat convert``: parsing and wiring."""
from __future__ import annotations

import argparse
from pathlib import Path

from autonat.cli.args import positive_int
from autonat.io.formats import KINDS

# --------------------------------------------------------------------------- command line


def add_convert_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", required=True, type=Path,
                   help="released file: nnet_ema.pth, vqgan_jax_strongaug.ckpt, or taming last.ckpt")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--kind", default="auto", choices=["auto", *KINDS], help="what the file is (default: detect)")
    p.add_argument("--config", type=Path,
                   help="taming model.yaml (for --kind taming), or the official AutoNAT configs/*.yaml "
                        "(gives the generator's head count)")
    p.add_argument("--tokenizer", type=Path,
                   help="tokenizer to record in a converted generator (a converted tokenizer directory is best)")
    p.add_argument("--tokenizer-config", type=Path, help="model.yaml when --tokenizer is a taming .ckpt")
    p.add_argument("--num-heads", type=positive_int,
                   help="attention heads of the generator (not stored in the weights; 8 for AutoNAT-S/L); "
                        "default: the official config's (--config, or configs/*.yaml beside the weights)")


def run_convert(args: argparse.Namespace) -> None:
    from autonat.convert import ConvertRequest, convert

    request = ConvertRequest(weights=args.weights, out=args.out, kind=args.kind, config=args.config,
                             tokenizer=args.tokenizer, tokenizer_config=args.tokenizer_config,
                             num_heads=args.num_heads)
    kind = convert(request)
    what = "generator checkpoint" if kind == "autonat" else f"{kind} tokenizer"
    print(f"{what} written to {request.out}")
