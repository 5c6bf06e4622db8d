"""FID / IS evaluation under accelerate: every process generates and embeds its share.

    accelerate launch --multi_gpu --num_processes K tools/eval.py --checkpoint CKPT --reference REF [...]
    accelerate launch --multi_gpu --num_processes K tools/eval.py fid-stats SOURCE --out stats.npz [...]

The same as `autonat eval` / `autonat fid-stats`, which run in one process. On a
machine without CUDA the K processes work on the CPU (gloo); note that
`accelerate launch --cpu --num_processes K` starts only one process unless it
is given an MPI host file (`torchrun --nproc_per_node K tools/eval.py ...` works too).
"""
import sys

from autonat.cli.main import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not argv or argv[0] not in ("eval", "fid-stats"):
        argv = ["eval", *argv]
    sys.exit(main(argv))
