"""Scoring two-digit images (the captioned demo): prompt accuracy and FID, both read by the digit classifier.

An image ``[3, 32, 64]`` is cut into its left and right 32x32 halves, and the
demo digit classifier (:mod:`autonat.evaluation.digit_classifier`) reads each
half (channel mean as grey, as its FID extractor does).

* **Prompt accuracy** of samples made for prompts naming ``(a, b)``: the share
  of samples whose left half is read as ``a`` *and* right half as ``b``.
  Its ceiling is the same share on real two-digit images (classifier errors).
* **FID** in the space of pair features: the classifier's penultimate features
  of the left half followed by those of the right half (``2 x 128`` = 256
  dimensions), Fréchet distance between the Gaussians fitted to the samples'
  and the reference images' features (torch-fidelity's statistics and metric).
"""
from __future__ import annotations

from pathlib import Path

import torch

from autonat.errors import AutonatError
from autonat.evaluation.digit_classifier import INPUT_SIZE, load_digit_classifier
from autonat.evaluation.metrics import compute_metrics
from autonat.evaluation.reference import reference_from_array

PAIR_FEATURES = "autonat-digit-pairs"  # the feature space's name in records


def halves(images: torch.Tensor) -> torch.Tensor:
    """``[B, C, 32, 64]`` images (uint8 or float in [0, 1]) -> grey halves ``[B, 2, 1, 32, 32]`` in [0, 1]."""
    if images.dim() != 4 or tuple(images.shape[-2:]) != (INPUT_SIZE, 2 * INPUT_SIZE):
        raise AutonatError(f"two-digit images are [B, C, {INPUT_SIZE}, {2 * INPUT_SIZE}], got "
                           f"{tuple(images.shape)}; generate with the captioned demo model")
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    grey = x.mean(1, keepdim=True)
    return torch.stack([grey[..., :INPUT_SIZE], grey[..., INPUT_SIZE:]], dim=1)


@torch.no_grad()
def read_pairs(images: torch.Tensor, classifier=None, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """``(digits LongTensor[B, 2], pair features [B, 256])`` of two-digit images, left half first."""
    net = classifier if classifier is not None else load_digit_classifier()
    digits, features = [], []
    for chunk in images.split(batch_size):
        h = halves(chunk)
        f, logits = net(h.flatten(0, 1))
        digits.append(logits.argmax(1).view(len(h), 2))
        features.append(f.float().reshape(len(h), -1))
    return torch.cat(digits), torch.cat(features)


def prompt_accuracy(read: torch.Tensor, asked: torch.Tensor) -> float:
    """Share of rows where both digits read (``[B, 2]``) equal those asked for (``[B, 2]``)."""
    if read.shape != asked.shape or read.dim() != 2 or read.shape[1] != 2:
        raise AutonatError(f"compare [B, 2] digit pairs, got {tuple(read.shape)} and {tuple(asked.shape)}")
    if len(read) == 0:
        raise AutonatError("no samples to score; generate at least one")
    return int((read == asked).all(1).sum()) / len(read)


def pair_fid(features: torch.Tensor, reference_features: torch.Tensor, source: str = "two-digit reference") -> float:
    """FID between pair features of samples and of reference images (module notes)."""
    reference = reference_from_array(reference_features, PAIR_FEATURES, source)
    return compute_metrics({"pair": features}, reference, {"fid": "pair"}, ("fid",))["fid"]


# --------------------------------------------------------------------------- the captioned demo's scores
def sample_prompts(pipeline, strategy, rows: list[tuple[str, tuple[int, int]]], seed: int, batch_size: int = 50,
                   progress: bool = False) -> torch.Tensor:
    """One sample per ``(caption, pair)`` row, sample ``i`` seeded from ``(seed, i)``; uint8 ``[N, 3, 32, 64]``."""
    captions = [c for c, _ in rows]
    images = [x for x, _ in pipeline.batches(strategy, captions, seed, batch_size, progress=progress)]
    return torch.cat(images).mul(255).round().clamp(0, 255).to(torch.uint8)


def evaluate_text_demo(pipeline, strategy, data_dir: str | Path, n: int = 100, seed: int = 0,
                       batch_size: int = 50, progress: bool = False) -> dict:
    """Prompt accuracy on the first ``n`` prompts of each prompt set of ``data_dir`` (one sample a prompt), and
    the FID of the ``seen`` set's samples against the reference images of the seen pairs (held-out digits).

    Also the two ceilings at the same sizes: the classifier's accuracy on the reference images (real pairs of
    held-out digits), and the FID of ``n`` real training images of seen pairs against the same reference.
    """
    from autonat.data.demo_text import PROMPT_SETS, SEEN_PAIRS, read_prompt_set

    root = Path(data_dir)
    net = load_digit_classifier()
    out: dict = {"n": n, "seed": seed, "steps": strategy.steps}
    for name in PROMPT_SETS:
        rows = read_prompt_set(root / f"prompts_{name}.jsonl")[:n]
        images = sample_prompts(pipeline, strategy, rows, seed, batch_size, progress)
        read, feats = read_pairs(images, net)
        out[f"accuracy_{name}"] = prompt_accuracy(read, torch.tensor([p for _, p in rows]))
        if name == "seen":
            generated = feats
    seen = set(SEEN_PAIRS)
    ref_images, ref_pairs = _listed_images(root / "reference.jsonl", root)
    ref_read, ref_feats = read_pairs(ref_images, net)
    keep = torch.tensor([tuple(p) in seen for p in ref_pairs.tolist()])
    out["fid_seen"] = pair_fid(generated, ref_feats[keep], f"{root / 'reference'} (seen pairs)")
    out["reference_images"] = int(keep.sum())
    out["ceiling_accuracy"], out["ceiling_images"] = prompt_accuracy(ref_read, ref_pairs), len(ref_pairs)
    train_images, _ = _listed_images(root / "train.jsonl", root)
    pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(seed))[:n]
    out["fid_real_floor"] = pair_fid(read_pairs(train_images[pick], net)[1], ref_feats[keep])
    return out


def _listed_images(jsonl: Path, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct images of a demo-text JSONL (uint8 ``[N, 3, 32, 64]``) and their pairs ``[N, 2]``."""
    import json

    import numpy as np
    from PIL import Image

    seen: dict[str, list[int]] = {}
    for line in jsonl.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            seen.setdefault(row["image"], row["digits"])
    grey = np.stack([np.asarray(Image.open(root / name).convert("L")) for name in seen])
    return torch.from_numpy(grey)[:, None].expand(-1, 3, -1, -1), torch.tensor(list(seen.values()))
