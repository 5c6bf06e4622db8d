"""Training a small VQGAN tokenizer from scratch (``autonat train-tokenizer``).

Reconstruction (MSE + L1) plus codebook and commitment losses with a
straight-through quantiser. Two measures keep the codebook alive, without
which small codebooks collapse to a handful of codes: the codebook starts as
a random draw of encoder outputs, and codes unused for ``restart_every``
steps are restarted at random encoder outputs of the current batch.

Training can stop and resume: the full state is saved every
``checkpoint_every`` steps and on Ctrl-C / SIGTERM to ``<out_dir>.state``
beside the output (never inside it), and the same command resumes from it
with the weights an uninterrupted run would reach.
"""
from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from autonat.errors import AutonatError
from autonat.io.atomic import atomic_dir, check_output_dir
from autonat.io.interrupt import StopRequest
from autonat.io.lock import run_lock
from autonat.io.weights import save_safetensors
from autonat.tokenizers.base import TOKENIZER_FILE, WEIGHTS_FILE
from autonat.tokenizers.config import TokenizerTrainConfig, VQGANConfig
from autonat.tokenizers.taming import VQGAN


@dataclass
class TokenizerReport:
    """Reconstruction quality and codebook health on a set of images."""

    psnr: float
    perplexity: float
    codes_used: float  # fraction of the codebook used at least once
    num_images: int


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


@torch.no_grad()
def evaluate_tokenizer(model, images: torch.Tensor, batch_size: int = 256) -> TokenizerReport:
    """PSNR of encode-decode reconstructions and codebook usage over ``images``."""
    model.eval()
    scores, counts = [], torch.zeros(model.codebook_size)
    for x in images.split(batch_size):
        ids = model.encode(x)
        scores.append(psnr(model.decode(ids), x))
        counts += torch.bincount(ids.flatten().cpu(), minlength=model.codebook_size).float()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    return TokenizerReport(psnr=float(torch.cat(scores).mean()), perplexity=float(entropy.exp()),
                           codes_used=float((counts > 0).float().mean()), num_images=len(images))


def _stack(dataset: Dataset) -> torch.Tensor:
    images = getattr(dataset, "images", None)
    if isinstance(images, torch.Tensor):
        return images
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


def _restart_dead_codes(model: VQGAN, feats: torch.Tensor, usage: torch.Tensor) -> int:
    """Move codes with zero usage onto random encoder outputs; return how many moved."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    flat = feats.detach().permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    pick = torch.randint(0, len(flat), (len(dead),), device=flat.device)
    model.quantize.embedding.weight.data[dead] = flat[pick]
    return len(dead)


class _TokenizerRun:
    """Everything a training step changes: weights, optimiser, schedule, code usage and random streams.

    The learning rate follows a cosine from ``lr`` to 0 over ``steps``;
    batches are drawn with replacement by a generator seeded from ``seed``,
    and dead-code restarts draw from torch's global generator.
    """

    def __init__(self, config: TokenizerTrainConfig, device: str) -> None:
        self.config = config
        self.model = VQGAN(config.vqgan).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(0.5, 0.9))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, config.steps) / config.steps)))
        self.usage = torch.zeros(config.vqgan.n_embed, device=device)
        self.batches = torch.Generator().manual_seed(config.seed)

    def step(self, images: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One update on a random batch; returns the reconstruction and VQ losses."""
        cfg, model = self.config, self.model
        model.train()
        x = images[torch.randint(0, len(images), (cfg.batch_size,), generator=self.batches)]
        feats = model.features(x)
        zq, vq_loss, idx = model.quantize(feats)
        recon = model.decode_codes(zq)
        target = 2 * x - 1
        rec_loss = F.mse_loss(recon, target) + cfg.l1_weight * F.l1_loss(recon, target)
        self.opt.zero_grad(set_to_none=True)
        (rec_loss + vq_loss).backward()
        self.opt.step()
        self.sched.step()
        self.usage += torch.bincount(idx.flatten(), minlength=cfg.vqgan.n_embed)
        if (step + 1) % cfg.restart_every == 0 and step + 1 < cfg.steps * 0.9:
            _restart_dead_codes(model, feats, self.usage)
            self.usage.zero_()
        return rec_loss, vq_loss

    def state_dict(self) -> dict:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "usage": self.usage, "batches": self.batches.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": cuda}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.usage.copy_(state["usage"])
        self.batches.set_state(state["batches"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def train_tokenizer(config: TokenizerTrainConfig, train: Dataset, out_dir: str | Path,
                    heldout: Dataset | None = None, device: str = "cpu") -> TokenizerReport:
    """Train a VQGAN on ``train`` and save it to ``out_dir``; report on ``heldout`` (else on training images).

    Every ``checkpoint_every`` steps, and at a first SIGINT / SIGTERM (then
    the process exits with 128 + the signal), the whole training state is
    written atomically to :func:`state_dir` ``(out_dir)``; the same call again
    resumes from it and ends with the same weights as an uninterrupted run.
    A state saved with another config or other images is refused. The state
    folder is removed once the tokenizer is written. ``tokenizer.json``
    records the config (``train``), the report, and the training log (``log``:
    one row ``{step, rec_loss, vq_loss, lr}`` every ``log_every`` steps and at
    the last; ``step`` counts the steps done, ``lr`` is the rate that step used). A second run for the
    same ``out_dir`` is refused while one runs (a lock file beside it, see
    :func:`autonat.io.lock.run_lock`).
    """
    with run_lock(out_dir, beside=True):
        return _train_tokenizer(config, train, out_dir, heldout, device)


def _train_tokenizer(config: TokenizerTrainConfig, train: Dataset, out_dir: str | Path,
                     heldout: Dataset | None, device: str) -> TokenizerReport:
    """The training of :func:`train_tokenizer`, inside the output's lock."""
    check_tokenizer_output(out_dir)
    state = check_output_dir(state_dir(out_dir), STATE_KIND, is_tokenizer_state)
    cpu_images = _stack(train)
    identity = _run_identity(config, cpu_images)
    images = cpu_images.to(device)
    torch.manual_seed(config.seed)
    run = _TokenizerRun(config, device)
    start, elapsed, log = 0, 0.0, []
    if is_tokenizer_state(state):
        start, elapsed, log = _load_state(state, identity, run, device)
        print(f"resumed from {state} at step {start}", flush=True)
    else:
        with torch.no_grad():  # codebook starts on encoder outputs
            _restart_dead_codes(run.model, run.model.features(images[: config.batch_size * 4]),
                                torch.zeros(config.vqgan.n_embed))
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="tokenizer", dynamic_ncols=True)
    t0 = time.time()
    with StopRequest() as stop:
        for step in bar:
            lr = run.opt.param_groups[0]["lr"]
            rec_loss, vq_loss = run.step(images, step)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                log.append({"step": done, "rec_loss": rec_loss.item(), "vq_loss": vq_loss.item(), "lr": lr})
                bar.set_postfix(rec=f"{log[-1]['rec_loss']:.4f}", vq=f"{log[-1]['vq_loss']:.4f}", lr=f"{lr:.2e}")
            if stop.signal is not None or (done % config.checkpoint_every == 0 and done < config.steps):
                _save_state(state, identity, run, done, elapsed + time.time() - t0, log)
            if stop.signal is not None:
                print(f"stopped by {stop.name} at step {done}: state saved in {state}; run the same command "
                      "again to resume", flush=True)
                raise SystemExit(128 + stop.signal)
    bar.close()
    held = _stack(heldout).to(device) if heldout is not None and len(heldout) else images[:1000]
    report = evaluate_tokenizer(run.model, held)
    save_tokenizer(run.model, out_dir, extra={"train": _json_ready(asdict(config)), "report": asdict(report),
                                              "train_seconds": round(elapsed + time.time() - t0, 1), "log": log})
    shutil.rmtree(state, ignore_errors=True)
    return report


# --------------------------------------------------------------------------- resumable state
STATE_KIND = "tokenizer-state"
STATE_FILE = "state.pt"
STATE_INFO = "state.json"
#: Config fields that do not change the trained weights: a resumed run may change them.
_FREE_FIELDS = ("checkpoint_every", "log_every")


def state_dir(out_dir: str | Path) -> Path:
    """Where an unfinished ``train-tokenizer`` keeps its state: ``<out_dir>.state``, beside the output."""
    out = Path(out_dir)
    return out.with_name(out.name + ".state")


def is_tokenizer_state(path: str | Path) -> bool:
    """True if ``path`` holds a resumable tokenizer-training state."""
    return (Path(path) / STATE_FILE).is_file() and (Path(path) / STATE_INFO).is_file()


def _run_identity(config: TokenizerTrainConfig, images: torch.Tensor) -> dict:
    """What must match for a resumed run to give the uninterrupted run's weights: config and images."""
    recipe = {k: v for k, v in asdict(config).items() if k not in _FREE_FIELDS}
    digest = hashlib.sha256(images.contiguous().numpy()).hexdigest()[:16]
    return json.loads(json.dumps({"tokenizer": recipe, "images": {"count": len(images), "sha256": digest}}))


def _save_state(path: Path, identity: dict, run: _TokenizerRun, step: int, elapsed: float, log: list[dict]) -> None:
    with atomic_dir(path, STATE_KIND, is_tokenizer_state) as tmp:
        torch.save({"step": step, **run.state_dict()}, tmp / STATE_FILE)
        (tmp / STATE_INFO).write_text(json.dumps({**identity, "step": step, "train_seconds": elapsed, "log": log},
                                                 indent=2))


def _load_state(path: Path, identity: dict, run: _TokenizerRun, device: str) -> tuple[int, float, list[dict]]:
    """Restore ``run`` from ``path``; returns (step, seconds trained so far, the log's rows so far).
    One-line errors."""
    try:
        info = json.loads((path / STATE_INFO).read_text())
        diff = _first_difference({k: info.get(k) for k in identity}, identity)
        if diff is None:
            run.load_state_dict(torch.load(path / STATE_FILE, map_location=device, weights_only=True))
    except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise AutonatError(f"cannot resume from {path}: {reason}; delete it to start over") from exc
    if diff is not None:
        raise AutonatError(f"{path} holds an unfinished training with another setup ({diff}); run the same "
                           f"config on the same images to resume it, or delete {path} to start over")
    return int(info["step"]), float(info.get("train_seconds", 0.0)), list(info.get("log", []))


def _first_difference(saved, now, prefix: str = "") -> str | None:
    """The first key where two nested mappings differ, as ``"key: A saved, B now"``."""
    if isinstance(saved, dict) and isinstance(now, dict):
        for key in sorted(set(saved) | set(now)):
            found = _first_difference(saved.get(key), now.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if saved == now else f"{prefix.rstrip('.')}: {saved} saved, {now} now"


KIND = "tokenizer"


def is_tokenizer_dir(path: str | Path) -> bool:
    """True if ``path`` holds a tokenizer written by this toolkit (also one written before output markers)."""
    return (Path(path) / TOKENIZER_FILE).is_file() and (Path(path) / WEIGHTS_FILE).is_file()


def check_tokenizer_output(path: str | Path) -> Path:
    """Refuse, before any work, an ``--out`` where writing a tokenizer would lose a user's files."""
    return check_output_dir(path, KIND, is_tokenizer_dir)


def save_tokenizer(model: VQGAN, out_dir: str | Path, extra: dict | None = None) -> None:
    """Write ``tokenizer.json`` and ``model.safetensors`` atomically into ``out_dir``."""
    meta = {"kind": model.kind, "config": _json_ready(model.config.to_dict()), **(extra or {})}
    with atomic_dir(out_dir, KIND, is_tokenizer_dir) as tmp:
        save_safetensors(model.state_dict(), tmp / WEIGHTS_FILE, atomic=False)
        (tmp / TOKENIZER_FILE).write_text(json.dumps(meta, indent=2))


def save_random_tokenizer(out_dir: str | Path, config: VQGANConfig, seed: int = 0) -> Path:
    """A VQGAN of ``config`` with random weights (seeded), saved as a tokenizer: for tests and timing only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VQGAN(config)
    save_tokenizer(model, out_dir)
    return Path(out_dir)


def _json_ready(d):
    if isinstance(d, dict):
        return {k: _json_ready(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_json_ready(v) for v in d]
    return d
