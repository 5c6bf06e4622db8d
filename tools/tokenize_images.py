"""Tokenisation under accelerate: each process encodes its share of the shards (not named tokenize.py,
which would hide the standard library module of that name from the script's imports).

    accelerate launch --multi_gpu --num_processes K tools/tokenize_images.py --config configs/NAME.yaml [options]

The same as `autonat tokenize` (the options are its own: --tokenizer, --out,
--workers, --shard-size, ...), which runs it in one process. Without CUDA the
K processes encode on the CPU and meet through gloo.
"""
import sys

from autonat.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["tokenize", *sys.argv[1:]]))
