"""FID / IS evaluation under accelerate: every process generates and embeds its share.

    accelerate launch [--cpu] --num_processes K tools/eval.py --checkpoint CKPT --reference REF [...]
    accelerate launch [--cpu] --num_processes K tools/eval.py fid-stats SOURCE --out stats.npz [...]

The same as `autonat eval` / `autonat fid-stats`, which run in one process.
"""
import sys

from autonat.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("eval", "fid-stats"):
        argv = ["eval", *argv]
    sys.exit(main(argv))
