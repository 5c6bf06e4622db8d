"""The generator training loop, on accelerate (one process or many, CPU or CUDA).

AdamW (AutoNAT: betas 0.99/0.99, weight decay 0.03), linear warm-up to a
constant learning rate, gradient clipping, EMA weights for inference, mixed
precision through accelerate. Checkpoints every N steps and at the end;
a run resumes from its latest state.

Everything random in a step is a function of ``(seed, step)``: which items
form the global batch, the caption each item is shown (captioned data: see
:func:`caption_uniforms`), the mask ratios and positions, the condition
dropout and the dropout noise. A run interrupted and resumed therefore follows the same
trajectory as an uninterrupted one. Each process reads and masks only its
own rows of the global batch (gathered from the memory-mapped token cache;
the item order is a keyed permutation of each epoch, O(batch) a step, see
:mod:`autonat.data.shuffle`), and those rows are what the whole batch would
give them, whatever the number of processes; per-process memory does not
grow with the cache.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import functools
import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from autonat.data.captions import CaptionFeatures, check_same_encoder, open_text_encoder
from autonat.data.shuffle import epoch_items
from autonat.data.token_cache import TokenCache, read_token_cache
from autonat.data.tokenization import verify_cache_tokenizer
from autonat.errors import AutonatError
from autonat.generator.checkpoint import save_generator
from autonat.generator.condition import Condition, TextCondition
from autonat.generator.uvit import UViT, UViTConfig
from autonat.generator.warm_start import warm_start
from autonat.io.atomic import explain_disk_full
from autonat.io.config import to_plain
from autonat.io.identity import check_identity, record_identity
from autonat.io.interrupt import StopRequest
from autonat.io.lock import run_lock
from autonat.training.masking import mask_counts, mask_rows, masked_accuracy, masked_cross_entropy
from autonat.training.recipe import (
    OptimConfig,
    Recipe,
    recipe_from_dict,
    resolve_mixed_precision,
    training_summary,
)
from autonat.training.run_dir import RunDir


def train_from_recipe(d: dict, force: bool = False) -> Path | None:
    return train(recipe_from_dict(d), raw=d, force=force)


# --------------------------------------------------------------------------- pieces
def batch_indices(step: int, batch_size: int, n: int, seed: int, rows: slice | None = None) -> np.ndarray:
    """The items of global batch ``step`` (its ``rows`` only, when given): positions
    ``step * batch_size ..`` of the run's stream of per-epoch permutations (:func:`~autonat.data.shuffle.epoch_items`).

    O(batch) time and memory whatever ``n``; every epoch visits each item once.
    """
    first, stop, _ = (rows or slice(0, batch_size)).indices(batch_size)
    return epoch_items(seed, n, step * batch_size + first, stop - first)


def step_key(seed: int, step: int) -> tuple[int, int]:
    """The key of step ``step``'s per-row mask and label-dropout streams (see ``masking.mask_rows``)."""
    return (seed, step)


CAPTION_STREAM = 0xCA9


def caption_uniforms(seed: int, positions: np.ndarray) -> np.ndarray:
    """One uniform in [0, 1) per position of the run's item stream (``step * batch_size + row``).

    Position ``p``'s draw is a hash of ``(seed, CAPTION_STREAM, p)`` alone, so
    the caption an item is shown does not depend on the process count and a
    resumed run draws what an uninterrupted one would.
    """
    bits = [np.random.SeedSequence([seed, CAPTION_STREAM, int(p)]).generate_state(1, np.uint64)[0] >> np.uint64(11)
            for p in positions]
    return np.asarray(bits, dtype=np.float64) / float(1 << 53)


def batch_conditions(positions: np.ndarray, idx: np.ndarray, seed: int, labels: torch.Tensor,
                     captions: CaptionFeatures | None) -> Condition:
    """The conditions of items ``idx`` at ``positions`` of the run's stream (``step * batch_size + row``):
    their class ids ``labels``, or for a captioned cache one of each item's captions, chosen by
    :func:`caption_uniforms` (U-ViT draws one caption per image per step)."""
    if captions is None:
        return labels
    return captions.condition(captions.choose(idx, caption_uniforms(seed, positions)))


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for step ``step``; ``stream`` separates independent uses."""
    mixed = np.random.SeedSequence([seed, step, stream]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed >> np.uint64(1)))


def learning_rate(step: int, optim: OptimConfig) -> float:
    """Linear warm-up to ``optim.lr``, then constant (U-ViT / AutoNAT); step ``step`` counts from 0.

    ``optim.warmup`` ``ours``: ``lr * min(1, (step + 1) / W)``; ``official``:
    ``lr * min(1, max(step - 1, 0) / W)``, the rates the official train.py's
    optimizer steps run at (see :class:`OptimConfig`). ``W = 0``: ``lr`` throughout.
    """
    if optim.warmup_steps == 0:
        return optim.lr
    done = step + 1 if optim.warmup == "ours" else max(step - 1, 0)
    return optim.lr * min(1.0, done / optim.warmup_steps)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    ema_p = list(ema.parameters())
    torch._foreach_lerp_(ema_p, [p.detach().float() for p in model.parameters()], 1.0 - decay)


def ema_decay_at(step: int, decay: float, warmup: bool = True) -> float:
    """The EMA decay after step ``step``: ``min(decay, (1 + step) / (10 + step))``, warmed up over the
    first steps so early weights do not dominate, or the constant ``decay`` (``warmup=False``, official)."""
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


@dataclass
class StepResult:
    """What one training step leaves for the log: this process's values, not yet averaged over processes."""

    lr: float
    grad_norm: torch.Tensor  # before clipping
    tokens: int  # token positions this process trained on
    stats: torch.Tensor | None  # loss, masked top-1 / top-5 accuracy, masked fraction (when asked for)


def train_step(accelerator, model: torch.nn.Module, opt: torch.optim.Optimizer, ema: torch.nn.Module,
               tokens: torch.Tensor, labels: torch.Tensor, step: int, recipe: Recipe, *, first: int | None = None,
               with_stats: bool = False, explain: Callable[[], str] | None = None) -> StepResult:
    """One optimisation step on global batch ``step``, from this process's rows of it (on the CPU).

    ``tokens`` [n, L] and ``labels`` [n] are rows ``first .. first + n - 1``
    of the global batch of ``train.batch_size`` rows; with ``first=None`` they
    are the whole global batch (its size is ``len(tokens)``) and this process
    takes its share, ``world`` equal slices in rank order.

    Each row is masked from its own streams (:func:`mask_rows`), so the
    masks are those of the whole batch masked at once. The loss is the
    label-smoothed cross-entropy summed over the masked positions of this
    process's rows, divided by the masked positions of the *global* batch
    (known to every process from the count streams alone) and multiplied by
    ``world`` (the data-parallel all-reduce averages): the gradient is that
    of the global batch's mean loss, whatever the number of processes. The
    rows are split into ``train.grad_accum_steps`` micro-batches whose
    gradients add up (all-reduced once, after the last), so accumulation
    gives the update of the large batch. Then: the step's learning rate
    (:func:`learning_rate`), dropout noise seeded by (seed, step, rank,
    micro-batch) (the one draw that depends on how the batch is split),
    a finiteness check (an error naming ``explain()``), gradient clipping to
    ``optim.grad_clip`` (none when it is None: the norm is still measured),
    the optimizer step, the gradients freed at once, and the EMA update with
    the decay :func:`ema_decay_at`. ``model`` and ``opt`` are the ones
    ``accelerator.prepare`` returned.
    """
    seed, rank, world = recipe.train.seed, accelerator.process_index, accelerator.num_processes
    accum = recipe.train.grad_accum_steps
    if first is None:
        global_batch, per_rank = len(labels), len(labels) // world
        first = rank * per_rank
        tokens, labels = tokens[first: first + per_rank], labels[first: first + per_rank]
    else:
        global_batch = recipe.train.batch_size
    model.train()
    key, length = step_key(seed, step), tokens.shape[1]
    masked_total = int(mask_counts(key, 0, global_batch, length, recipe.masking).sum())
    null = recipe.model.null_class
    if isinstance(labels, TextCondition):
        null = accelerator.unwrap_model(model).null_condition(labels[:1]).to("cpu")
    batch = mask_rows(tokens, labels, first, key, recipe.masking, recipe.model.mask_id, null)
    lr = learning_rate(step, recipe.optim)
    for group in opt.param_groups:
        group["lr"] = lr
    device, scale = accelerator.device, world / masked_total
    sums = torch.zeros(3)  # loss, top-1 and top-5 hits, each over the global masked count (times world)
    for k, rows in enumerate(np.array_split(np.arange(len(labels)), accum)):
        rows = slice(int(rows[0]), int(rows[-1]) + 1) if len(rows) else slice(0, 0)
        inputs, mask = batch.inputs[rows].to(device), batch.mask[rows].to(device)
        targets, kept = tokens[rows].to(device), batch.labels[rows].to(device)
        last = k == accum - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(model):
            torch.manual_seed(int(step_generator(seed, step, 1 + rank * accum + k).initial_seed()))  # dropout
            logits = model(inputs, kept)
            loss = masked_cross_entropy(logits, targets, mask, recipe.masking.label_smoothing, "sum") * scale
            if not torch.isfinite(loss):
                where = f"{explain()}; " if explain else ""
                raise AutonatError(f"loss became {loss.item()} at step {step}; stopped. {where}"
                                   "lower optim.lr, or use mixed_precision=no")
            if with_stats:
                sums += _hit_sums(loss, logits, targets, mask, scale)
            del logits  # the [b, L, V] logits are not needed past the loss: free them before backward (peak memory)
            accelerator.backward(loss)
    clip = recipe.optim.grad_clip
    grad_norm = accelerator.clip_grad_norm_(model.parameters(), math.inf if clip is None else clip)  # inf: x1.0
    opt.step()
    opt.zero_grad(set_to_none=True)  # free the gradients now, not during the next forward (peak memory)
    update_ema(ema, accelerator.unwrap_model(model), ema_decay_at(step, recipe.train.ema_decay,
                                                                  recipe.train.ema_warmup))
    stats = torch.cat([sums, torch.tensor([masked_total / (global_batch * length)])]).to(device) \
        if with_stats else None
    return StepResult(lr=lr, grad_norm=grad_norm, tokens=int(batch.mask.numel()), stats=stats)


# --------------------------------------------------------------------------- the loop
def train(recipe: Recipe, raw: dict | None = None, force: bool = False) -> Path | None:
    """Train the generator; returns the final checkpoint directory (on the main process).

    The main process holds ``train.out_dir``'s lock for the whole run, so a
    second run into it is refused (:func:`autonat.io.lock.run_lock`).
    ``force`` trains on a cache whose tokenizer was replaced since the cache
    was made (:func:`autonat.data.tokenization.verify_cache_tokenizer`).
    """
    from accelerate import PartialState

    main = PartialState(cpu=not torch.cuda.is_available()).is_main_process  # the Accelerator's own state
    with run_lock(recipe.train.out_dir, enabled=main):
        return _train(recipe, raw, force)


def _train(recipe: Recipe, raw: dict | None, force: bool) -> Path | None:
    """The training run of :func:`train`, inside the output directory's lock."""
    from accelerate import Accelerator

    cfg = recipe.train
    # Without CUDA, processes started by `accelerate launch --multi_gpu` join a gloo (CPU) group.
    accelerator = Accelerator(mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
                              cpu=not torch.cuda.is_available())
    world, accum = accelerator.num_processes, cfg.grad_accum_steps
    if cfg.batch_size % (world * accum):
        raise AutonatError(f"train.batch_size {cfg.batch_size} must divide evenly over {world} process(es) x "
                           f"train.grad_accum_steps {accum}; change one of them")
    cache = read_token_cache(recipe.cache)  # memory-mapped: each step reads its own rows only
    run = RunDir(cfg.out_dir)
    _check_cache(cache, recipe.model)
    _check_text_encoder(cache, recipe, accelerator.device)
    verify_cache_tokenizer(cache, force)
    _check_same_cache(run, cache, resuming=cfg.resume and run.latest_state() is not None,
                      record=accelerator.is_main_process)

    torch.manual_seed(cfg.seed)
    model = UViT(recipe.model)
    if cfg.init is not None and not (cfg.resume and run.latest_state() is not None):
        accelerator.print(f"initialised from {cfg.init}: {warm_start(model, cfg.init).summary()}")
    if cache.is_text:
        model.set_empty_caption(cache.captions.empty())
    accelerator.print(training_summary(recipe, len(cache), sum(p.numel() for p in model.parameters()),
                                       world, accelerator.device))
    ema = copy.deepcopy(model).requires_grad_(False)
    # fused: the whole update in one kernel instead of a dozen per parameter (same maths; ~2% of an
    # AutoNAT-S step on CPU, see docs/benchmarks.md)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.optim.lr, betas=tuple(recipe.optim.betas),
                            weight_decay=recipe.optim.weight_decay, fused=True)
    model, opt = accelerator.prepare(model, opt)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)

    if accelerator.is_main_process:
        run.clean_partial()
    accelerator.wait_for_everyone()
    start = 0
    latest = run.latest_state() if cfg.resume else None
    if latest is not None:
        start, path = latest
        _load_state(accelerator, path)
        accelerator.print(f"resumed from {path} at step {start}")
    if accelerator.is_main_process:
        run.root.mkdir(parents=True, exist_ok=True)
        (run.root / "recipe.json").write_text(json.dumps(to_plain(raw or recipe), indent=2))
        _truncate_log(run.log, start)
    tokenizer_ref = cache.tokenizer_record()

    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train",
               disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    t0, tokens_seen = time.time(), 0
    per_rank = cfg.batch_size // world
    mine = slice(accelerator.process_index * per_rank, (accelerator.process_index + 1) * per_rank)
    with StopRequest() as stop:
        for step in bar:
            idx = batch_indices(step, cfg.batch_size, len(cache), cfg.seed, mine)
            tokens, labels = read_rows(cache, recipe.model, idx)
            done = step + 1
            logs = done % cfg.log_every == 0 or done == cfg.steps
            positions = step * cfg.batch_size + np.arange(mine.start, mine.stop)
            cond = batch_conditions(positions, idx, cfg.seed, labels, cache.captions)
            result = train_step(accelerator, model, opt, ema, tokens, cond, step, recipe, first=mine.start,
                                with_stats=logs, explain=functools.partial(_last_good, run))
            tokens_seen += result.tokens
            if logs:
                row = _log_row(accelerator, done, result.stats, result.lr, result.grad_norm, t0, tokens_seen)
                if accelerator.is_main_process:
                    _append_log(run.log, row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['acc1']:.3f}", lr=f"{result.lr:.2e}",
                                masked=f"{row['masked_frac']:.2f}")
            stopping = _any_process(accelerator, stop.signal is not None)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps or stopping:
                _save(accelerator, run, done, ema, recipe, tokenizer_ref, cfg.keep_checkpoints,
                      class_names=cache.meta.get("class_names"), text_encoder=cache.meta.get("text_encoder"))
            if stopping:
                accelerator.print(f"stopped by {stop.name} at step {done}: state saved in "
                                  f"{run.state / f'step_{done}'}; run the same command again to resume")
                raise SystemExit(128 + (stop.signal or signal.SIGTERM))
    bar.close()
    final = run.checkpoints / f"step_{cfg.steps}"
    if accelerator.is_main_process:
        _write_health_plot(run)
    accelerator.wait_for_everyone()
    return final if accelerator.is_main_process else None


def _last_good(run: RunDir) -> str:
    """Where the newest complete checkpoint and resumable state are, in words."""
    latest = run.latest_state()
    if latest is None:
        return "No checkpoint had been written yet"
    step, state = latest
    return f"The last good checkpoint is kept: {run.checkpoints / f'step_{step}'} (state {state})"


def _any_process(accelerator, flag: bool) -> bool:
    """True on every process if ``flag`` is true on any (a signal may reach only some ranks)."""
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() > 0)


def _load_state(accelerator, path: Path) -> None:
    """``accelerator.load_state`` with a one-line error for a damaged or foreign state directory."""
    try:
        accelerator.load_state(str(path))
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AutonatError(f"cannot resume from {path}: {type(exc).__name__}: {reason}; move that directory "
                           "away to resume from an earlier state, or set train.resume=false") from exc


def _check_cache(cache: TokenCache, config: UViTConfig) -> None:
    """Token ids and labels in range: from the ranges the cache records, else by reading it in chunks.

    (A cache written by ``autonat tokenize`` records them; every batch is
    checked again as it is read, :func:`read_rows`.) A captioned cache has no
    class labels (all -1).
    """
    ranges = cache.value_ranges()
    if ranges["tokens"][1] >= config.codebook_size:
        raise AutonatError(f"token cache holds id {ranges['tokens'][1]} but the codebook has "
                           f"{config.codebook_size} codes")
    if cache.is_text:
        return
    low, high = ranges["labels"]
    if len(cache) and (low < 0 or high >= config.num_classes):
        raise AutonatError(f"token cache labels out of range [0, {config.num_classes})")


def read_rows(cache: TokenCache, config: UViTConfig, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` of the memory-mapped cache as int64 tensors (tokens [b, L], labels [b]), range-checked."""
    tokens = torch.from_numpy(np.asarray(cache.tokens[idx], dtype=np.int64))
    labels = torch.from_numpy(np.asarray(cache.labels[idx], dtype=np.int64))
    bad_label = not cache.is_text and len(idx) and (int(labels.min()) < 0 or int(labels.max()) >= config.num_classes)
    if len(idx) and (int(tokens.max()) >= config.codebook_size or bad_label):
        raise AutonatError(f"token cache {cache.path} holds a token id or label out of range in its rows "
                           f"{idx[:4].tolist()}...; write it again with `autonat tokenize`")
    return tokens, labels


def _check_text_encoder(cache: TokenCache, recipe: Recipe, device) -> None:
    """A recipe naming a text encoder must be given a cache made by that encoder (and only a captioned one)."""
    if recipe.text is None:
        return
    if not cache.is_text:
        raise AutonatError(f"the recipe names text encoder {recipe.text.encoder} but token cache {cache.path} has "
                           "no captions; tokenize a captioned dataset (data.captions), or remove the text section")
    encoder = open_text_encoder(recipe.text.encoder, device=device)
    check_same_encoder(cache.captions.encoder, encoder, f"token cache {cache.path}",
                       fix=f"encode the data again with `autonat tokenize` and text.encoder={recipe.text.encoder}, "
                           "or name the encoder the cache records")


CACHE_RECORD = "cache.json"


def _check_same_cache(run: RunDir, cache: TokenCache, resuming: bool, record: bool) -> None:
    """A run records the cache it trains on (path, tokenizer, size, grid); a resumed run must use the same one."""
    inputs = {"cache": os.path.abspath(cache.path), "num_items": len(cache), "grid": list(cache.grid),
              "tokenizer_fingerprint": cache.meta.get("tokenizer", {}).get("fingerprint")}
    if cache.is_text:
        inputs["text_encoder"] = cache.captions.encoder.get("name")
    file = run.root / CACHE_RECORD
    if resuming:
        check_identity(file, inputs, f"training run {run.root}", record=record,
                       fix="give a new train.out_dir, or set train.resume=false to start this run over")
    elif record:
        record_identity(file, inputs)


def _hit_sums(loss, logits, targets, mask, scale: float) -> torch.Tensor:
    """A micro-batch's share of the step's loss and masked top-1 / top-5 accuracy (hits times ``scale``).

    Summed over the micro-batches and averaged over the processes they give
    the global batch's loss and accuracies over its masked positions.
    """
    with torch.no_grad():
        hits = mask.sum().float() * scale
        return torch.stack([loss.detach().float(), masked_accuracy(logits, targets, mask, 1) * hits,
                            masked_accuracy(logits, targets, mask, 5) * hits]).cpu()


def _log_row(accelerator, step, stats, lr, grad_norm, t0, tokens_seen) -> dict:
    with torch.no_grad():
        stats = accelerator.reduce(stats, reduction="mean")
    elapsed = time.time() - t0
    return {"step": step, "loss": float(stats[0]), "acc1": float(stats[1]), "acc5": float(stats[2]),
            "masked_frac": float(stats[3]), "lr": lr, "grad_norm": float(grad_norm),
            "tokens_per_s": tokens_seen * accelerator.num_processes / max(elapsed, 1e-9),
            "elapsed_s": round(elapsed, 2)}


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists()
    with explain_disk_full(path, kept="earlier log rows and checkpoints are intact"), \
            open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def _complete_row(row: dict, step: int) -> bool:
    """A log row written in full (a kill mid-append leaves a short last line) and not after ``step``."""
    if any(v is None or v == "" for v in row.values()) or None in row:
        return False
    try:
        return int(row["step"]) <= step
    except ValueError:
        return False


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows after ``step`` (and a half-written last row) so a resumed run's log has no duplicates."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    kept = [r for r in rows if _complete_row(r, step)]
    from autonat.io.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)


def _save(accelerator, run: RunDir, step: int, ema, recipe: Recipe, tokenizer_ref: dict, keep: int,
          class_names: list[str] | None = None, text_encoder: dict | None = None) -> None:
    """Inference checkpoint (EMA), then resumable state, each written atomically.

    The state is written to ``state/.step_N.tmp`` and renamed to ``state/step_N``
    only once complete (``trainer.json`` last), and only after
    ``checkpoints/step_N`` exists, so a resumable state always has its
    checkpoint and a kill at any point leaves the previous state loadable.
    """
    tmp = run.state / f".step_{step}.tmp"
    kept = "the earlier checkpoints and states are intact"
    if accelerator.is_main_process:
        save_generator(run.checkpoints / f"step_{step}", ema, recipe.model, tokenizer_ref,
                       meta={"class_names": class_names, **({"text_encoder": text_encoder} if text_encoder else {}),
                             "training": {"step": step, "masking": recipe.masking, "cache": recipe.cache,
                                           "num_processes": accelerator.num_processes}})
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        with explain_disk_full(tmp, kept=kept):
            accelerator.save_state(str(tmp))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # frees the space a full disk needs back
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with explain_disk_full(tmp, kept=kept):
            (tmp / "trainer.json").write_text(json.dumps({"step": step}))
        final = run.state / f"step_{step}"
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        run.prune(keep)
    accelerator.wait_for_everyone()


def _write_health_plot(run: RunDir) -> None:
    """Loss and masked-token accuracy curves of the run as ``curves.png``."""
    if not run.log.exists():
        return
    from autonat.plots import plot_training_curves

    plot_training_curves(run.log, run.root / "curves.png")
