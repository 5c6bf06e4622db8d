"""A scale rehearsal of the ImageNet data path on this machine (not a unit test).

    python -m benchmarks.bench_scale [--rows 2560000] [--work runs/bench_scale] [--keep]

1. Writes a synthetic token cache of ImageNet's size with its mirror images
   (``--rows`` 2.56 M rows x 256 uint16 tokens, about 1.3 GB) and a 10k-row
   one, through the cache writer ``autonat tokenize`` merges shards with.
2. (a) Per-step data time at global batch 2048 split over 2 processes (each
   process: its 1024 item indices, the gather of their rows from the
   memory-mapped cache, the masking of its rows), both caches, as the
   process's CPU milliseconds (medians; steady on a shared machine) and the
   wall time of the three; and the per-step index cost of the earlier loop
   (a permutation of all N items every step), for comparison.
3. (b) Resident memory of each process of a real 2-process training run
   (``accelerate launch tools/train.py``, a tiny model, 3 steps of batch 256
   in 2 micro-batches a process) on each cache: peak anonymous memory (the process's own)
   and peak file-backed memory (pages of the memory-mapped cache: page
   cache, shared, reclaimable); and the memory of the earlier loop's first
   act (the whole cache turned into an int64 tensor), in one process.
4. (c) Tokenisation throughput (images/s) with 0 and 2 DataLoader workers
   on ``--images`` synthetic JPEGs (512 x 384, a tiny random tokenizer at
   16 px, so that decoding is most of the work), alternating the two.
5. (d) ``autonat tokenize`` (2 workers) killed with SIGKILL once half its
   shards are written, then run again: the shards found, the rerun's time
   against the same command uninterrupted (both with process start-up), and
   whether the cache equals the uninterrupted one.

The caches and images go under ``--work`` and are deleted at the end
(``--keep`` keeps them). Figures are printed; docs/benchmarks.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import Machine, progress, report, run_child

ROOT = Path(__file__).resolve().parents[1]
LENGTH, CODEBOOK, CLASSES, BATCH, WORLD = 256, 1024, 1000, 2048, 2
TRAIN_BATCH = 256  # (b): the memory of the model's step does not depend on N; a small batch keeps it quick on a CPU


# --------------------------------------------------------------------------- the synthetic caches
def write_cache(path: Path, rows: int, seed: int = 0) -> None:
    """A token cache of ``rows`` random rows (written block by block, as a shard merge writes)."""
    from autonat.data.token_cache import CHUNK_ROWS, write_token_cache_blocks

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, rows)

    def blocks():
        for start in range(0, rows, CHUNK_ROWS):
            yield rng.integers(0, CODEBOOK, (min(CHUNK_ROWS, rows - start), LENGTH), dtype=np.uint16)

    meta = {"tokenizer": {"path": "none", "fingerprint": None}, "grid": [16, 16], "codebook_size": CODEBOOK,
            "num_classes": CLASSES, "augmentation": "hflip"}
    write_token_cache_blocks(path, blocks, labels, LENGTH, meta)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mb(pid: int | str = "self") -> dict:
    """RssAnon, RssFile and VmHWM (peak RSS) of a process, in MiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024
    return out


# --------------------------------------------------------------------------- children
def child_data(cfg: dict) -> dict:
    """One process's data path for ``steps`` steps: index, gather, mask (its rows of the global batch)."""
    import torch

    from autonat.data.token_cache import read_token_cache
    from autonat.generator.uvit import UViTConfig
    from autonat.training.loop import batch_indices, read_rows, step_key
    from autonat.training.masking import MaskingConfig, mask_counts, mask_rows

    torch.set_num_threads(1)
    cache = read_token_cache(cfg["cache"])
    config = UViTConfig(codebook_size=CODEBOOK, grid=(16, 16), num_classes=CLASSES, width=32, depth=2, num_heads=2)
    rank, per = cfg["rank"], BATCH // WORLD
    mine, masking = slice(rank * per, (rank + 1) * per), MaskingConfig()
    times = {"index": [], "gather": [], "mask": [], "wall": []}
    first = cfg["first_step"]
    for step in range(first, first + cfg["steps"]):
        w0, t0 = time.perf_counter(), time.process_time()
        idx = batch_indices(step, BATCH, len(cache), seed=0, rows=mine)
        t1 = time.process_time()
        tokens, labels = read_rows(cache, config, idx)
        t2 = time.process_time()
        mask_counts(step_key(0, step), 0, BATCH, LENGTH, masking)  # the global batch's masked count
        mask_rows(tokens, labels, mine.start, step_key(0, step), masking, config.mask_id, config.null_class)
        t3, w3 = time.process_time(), time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, w3 - w0)):
            times[key].append(dt * 1000)
    skip = min(3, cfg["steps"] - 1)  # the first steps read pages and warm caches
    return {key: statistics.median(v[skip:]) for key, v in times.items()} | {"memory": memory_mb()}


def child_old_index(cfg: dict) -> dict:
    """The earlier loop's index computation: a permutation of all N items, every step."""
    times = []
    for step in range(cfg["steps"]):
        t0 = time.process_time()
        np.random.default_rng([0, step]).permutation(cfg["n"])
        times.append((time.process_time() - t0) * 1000)
    return {"index": statistics.median(times)}


def child_old_load(cfg: dict) -> dict:
    """The earlier loop's first act in every process: the whole cache as int64 tensors."""
    import torch

    from autonat.data.token_cache import read_token_cache

    cache = read_token_cache(cfg["cache"])
    before = memory_mb()
    tokens = torch.from_numpy(np.asarray(cache.tokens, dtype=np.int64))
    labels = torch.from_numpy(np.asarray(cache.labels, dtype=np.int64))
    after = memory_mb()
    return {"before": before, "after": after, "bytes": tokens.numel() * 8 + labels.numel() * 8}


def child_tokenize(cfg: dict) -> dict:
    from autonat.data.tokenization import tokenize_dataset

    t0 = time.perf_counter()
    n = tokenize_dataset(cfg["source"], cfg["tokenizer"], cfg["out"], image_size=16, batch_size=50,
                         workers=cfg["workers"], shard_size=cfg["shard_size"])
    return {"seconds": time.perf_counter() - t0, "items": n}


CHILDREN = {"data": child_data, "old_index": child_old_index, "old_load": child_old_load,
            "tokenize": child_tokenize}


# --------------------------------------------------------------------------- the parts
def data_time(caches: dict[str, Path], steps: int) -> list[dict]:
    """(a): both processes of each cache run at once (as two training processes would)."""
    rows = []
    for name, path in caches.items():
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.bench_scale", "--child",
                                   json.dumps({"part": "data", "cache": str(path), "rank": r, "steps": steps,
                                               "first_step": 1000})],
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
                 for r in range(WORLD)]
        results = [json.loads(p.communicate()[0].strip().splitlines()[-1].split(" ", 1)[1]) for p in procs]
        for r, res in enumerate(results):
            rows.append({"cache": name, "rank": r, **{k: res[k] for k in ("index", "gather", "mask", "wall")},
                         "anon_mb": res["memory"]["RssAnon"], "file_mb": res["memory"]["RssFile"]})
        n = len(np.load(path / "labels.npy", mmap_mode="r"))
        old = run_child("benchmarks.bench_scale", {"part": "old_index", "n": n, "steps": 5})
        rows.append({"cache": name, "rank": "earlier loop", "index": old["index"]})
    return rows


def training_memory(caches: dict[str, Path], work: Path) -> list[dict]:
    """(b): peak memory of each process of a 2-process training run, polled from outside."""
    import psutil
    import yaml

    rows = []
    for name, path in caches.items():
        run = work / f"run_{name}"
        shutil.rmtree(run, ignore_errors=True)
        recipe = {"cache": str(path), "model": {"width": 32, "depth": 2, "num_heads": 2, "dropout": 0.0},
                  "optim": {"warmup_steps": 10},
                  "train": {"out_dir": str(run), "steps": 3, "batch_size": TRAIN_BATCH, "grad_accum_steps": 2,
                            "checkpoint_every": 1000, "log_every": 1, "ema_decay": 0.9}}
        (work / f"recipe_{name}.yaml").write_text(yaml.safe_dump(recipe))
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(WORLD),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), str(ROOT / "tools" / "train.py"),
               "--config", str(work / f"recipe_{name}.yaml")]
        launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "OMP_NUM_THREADS": "1"})
        peaks: dict[int, dict] = {}
        stop = threading.Event()

        def poll(launcher=launcher, peaks=peaks, stop=stop):
            while not stop.is_set():
                try:
                    kids = psutil.Process(launcher.pid).children(recursive=True)
                except psutil.NoSuchProcess:
                    return
                for kid in kids:
                    try:
                        if "LOCAL_RANK" not in kid.environ():  # a training process, not a launcher or helper
                            continue
                        m = memory_mb(kid.pid)
                    except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                        continue
                    peak = peaks.setdefault(kid.pid, {})
                    for key, value in m.items():
                        peak[key] = max(peak.get(key, 0.0), value)
                time.sleep(0.05)

        thread = threading.Thread(target=poll)
        t0 = time.perf_counter()
        thread.start()
        _, err = launcher.communicate()
        stop.set()
        thread.join()
        if launcher.returncode:
            raise RuntimeError(f"training on {name} failed:\n{err[-3000:]}")
        for pid, peak in sorted(peaks.items()):
            rows.append({"cache": name, "pid": pid, "anon_mb": peak.get("RssAnon"), "file_mb": peak.get("RssFile"),
                         "peak_rss_mb": peak.get("VmHWM"), "seconds": time.perf_counter() - t0})
        shutil.rmtree(run, ignore_errors=True)
    return rows


def write_jpegs(root: Path, count: int) -> None:
    """``count`` smooth random 512 x 384 JPEGs in 10 class folders."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(count):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((512, 384), Image.BICUBIC).save(folder / f"{i:05d}.jpg", quality=90)


def write_tokenizer(path: Path) -> Path:
    """A random 64-code tokenizer for 16 px images (so that decoding the JPEGs is most of the work)."""
    from autonat.tokenizers.taming import VQGANConfig
    from autonat.tokenizers.training import save_random_tokenizer

    return save_random_tokenizer(path, VQGANConfig(n_embed=64, embed_dim=8, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                                                   attn_resolutions=(), resolution=16, z_channels=8))


def tokenize_throughput(source: Path, tok: Path, work: Path, images: int, rounds: int, shard: int) -> list[dict]:
    """(c): 0 and 2 workers, taking turns."""
    rows = []
    for r in range(rounds):
        for workers in (0, 2):
            out = work / f"cache_w{workers}"
            shutil.rmtree(out, ignore_errors=True)
            res = run_child("benchmarks.bench_scale", {"part": "tokenize", "source": str(source),
                                                       "tokenizer": str(tok), "out": str(out),
                                                       "workers": workers, "shard_size": shard},
                            env={"OMP_NUM_THREADS": "1"})
            rows.append({"round": r, "workers": workers, "seconds": res["seconds"],
                         "images_per_s": images / res["seconds"]})
            progress(f"tokenize round {r} workers {workers}: {images / res['seconds']:.0f} images/s")
    return rows


def kill_and_resume(source: Path, tok: Path, work: Path, shard: int, images: int) -> dict:
    """(d): SIGKILL once half the shards are written, then the same command again."""
    from autonat.data.shards import work_folder
    from autonat.data.token_cache import read_token_cache

    out = work / "cache_killed"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(work_folder(out), ignore_errors=True)
    cfg = work / "tokenize.yaml"
    cfg.write_text(json.dumps({"data": {"source": str(source), "image_size": 16}}))
    cmd = [sys.executable, "-m", "autonat.cli", "tokenize", "--config", str(cfg), "--tokenizer", str(tok),
           "--out", str(out), "--batch-size", "50", "--workers", "2", "--shard-size", str(shard)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    total = -(-images // shard)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    while proc.poll() is None and len(list(work_folder(out).glob("shard_*.npz"))) < total // 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its decoding workers, as a machine failure would
    proc.wait()
    killed_after = time.perf_counter() - t0
    found = len(list(work_folder(out).glob("shard_*.npz")))
    t0 = time.perf_counter()
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env)
    rerun_s = time.perf_counter() - t0
    if rerun.returncode:
        raise RuntimeError(f"the rerun failed:\n{rerun.stderr[-3000:]}")
    whole = [*cmd[:cmd.index("--out") + 1], str(work / "cache_whole"), *cmd[cmd.index("--out") + 2:]]
    t0 = time.perf_counter()
    subprocess.run(whole, capture_output=True, text=True, env=env, check=True)
    whole_s = time.perf_counter() - t0  # the same command uninterrupted, process start-up included
    a, b = read_token_cache(work / "cache_whole"), read_token_cache(out)
    same = bool(np.array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
                and np.array_equal(np.asarray(a.labels), np.asarray(b.labels)))
    said = [ln for ln in rerun.stdout.splitlines() if "resuming" in ln]
    return {"shards": total, "killed_after_s": killed_after, "shards_found": found, "rerun_s": rerun_s,
            "uninterrupted_s": whole_s, "same_cache": same, "rerun_said": said[0] if said else ""}


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--rows", type=int, default=2_560_000)
    parser.add_argument("--small-rows", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=200)
    parser.add_argument("--work", default="runs/bench_scale")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--parts", default="abcd", help="which parts to run (default abcd)")
    args = parser.parse_args()
    if args.child:
        cfg = json.loads(args.child)
        report(CHILDREN[cfg["part"]](cfg))
        return
    import torch

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(Machine.here(torch.device("cpu")).describe())
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (other work on the machine shares its cores)")
    results: dict = {}
    try:
        caches = {"big": work / "cache_big", "small": work / "cache_small"}
        for (name, path), rows in zip(caches.items(), (args.rows, args.small_rows)):
            if not path.exists():
                progress(f"writing the {name} cache ({rows} rows)")
                t0 = time.perf_counter()
                write_cache(path, rows)
                progress(f"  {time.perf_counter() - t0:.1f} s, {(path / 'tokens.npy').stat().st_size / 1e9:.2f} GB")
        if "a" in args.parts:
            progress("(a) data time per step")
            results["data_time"] = data_time(caches, args.steps)
            print(json.dumps(results["data_time"], indent=1), flush=True)
        if "b" in args.parts:
            progress("(b) training processes' memory")
            results["training_memory"] = training_memory(caches, work)
            print(json.dumps(results["training_memory"], indent=1), flush=True)
            results["old_load"] = run_child("benchmarks.bench_scale", {"part": "old_load",
                                                                       "cache": str(caches["big"])})
            print(json.dumps(results["old_load"], indent=1), flush=True)
        source, tok = work / "jpegs", work / "tok"
        if "c" in args.parts or "d" in args.parts:
            if not source.exists():
                write_jpegs(source, args.images)
            write_tokenizer(tok)
        if "c" in args.parts:
            progress("(c) tokenisation throughput")
            results["tokenize"] = tokenize_throughput(source, tok, work, args.images, args.rounds, args.shard_size)
            print(json.dumps(results["tokenize"], indent=1), flush=True)
        if "d" in args.parts:
            progress("(d) kill and resume")
            results["resume"] = kill_and_resume(source, tok, work, args.shard_size, args.images)
            print(json.dumps(results["resume"], indent=1), flush=True)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
        (work.parent / "bench_scale.json").write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
