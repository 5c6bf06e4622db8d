"""Generator training under accelerate.

    accelerate launch --multi_gpu --num_processes K tools/train.py --config configs/NAME.yaml [key=value ...]

The same as `autonat train`, which runs it in one process. Without CUDA the K
processes train on the CPU through gloo (`accelerate launch --cpu` would start
only one process unless MPI is configured).
"""
import sys

from autonat.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))  # `autonat train`'s flags, help and one-line errors
