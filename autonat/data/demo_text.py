"""The captioned demo: two demo digits side by side, captioned in many phrasings.

An image is ``[3, 32, 64]``: the demo digit of class ``a`` (left) and one of
class ``b`` (right), each the 32x32 zero-padded MNIST digit of
:func:`~autonat.data.demo.digits_to_images`. Its captions name both digits in
order, in one of the phrasings below, with numerals or words ("a 3 next to a
7", "three, then seven", "the digits 3 and 7", ...). What is held out of
training, by fixed rules:

* pairs: :data:`HELDOUT_PAIRS`, the 10 ordered pairs ``(d, d + 3 mod 10)``:
  every digit is the left of one and the right of another, and each reverse
  pair (``(3, 0)`` for ``(0, 3)``) is still seen;
* phrasings: :data:`HELDOUT_PHRASINGS`, 3 of 13;
* digits: every image of a training pair is made of ``train``-split digits;
  the FID reference is made of ``heldout``-split digits only (50 per class,
  never trained on), 10 images per pair for all 100 pairs.

:func:`write_demo_text` writes the dataset (``autonat data demo-text --out
DIR``): ``images/`` and ``train.jsonl`` (``{"image", "caption", "digits"}``
lines, ``CAPTIONS_PER_IMAGE`` distinct seen phrasings per image), the FID
reference ``reference/`` with ``reference.jsonl``, and the three prompt sets
of :data:`PROMPT_SETS` (``prompts_<name>.jsonl``, ``{"caption", "digits"}``
lines in a fixed shuffled order). Digit choices come from one seeded
generator, so the same seed writes the same files.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from autonat import ASSETS
from autonat.data.demo import demo_digits, digits_to_images
from autonat.errors import AutonatError
from autonat.io.atomic import atomic_dir

KIND = "demo-text dataset"
DEMO_TEXT_ASSETS = ASSETS / "demo_text"  # the shipped captioned demo model (README "Text-to-image")
DEMO_TEXT_CHECKPOINT = DEMO_TEXT_ASSETS / "generator"  # its tokenizer is the class demo's (DEMO_TOKENIZER)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Phrasings seen in training. ``{a}``/``{b}``: numerals; ``{A}``/``{B}``: words; ``{ia}`` etc.: with "a"/"an".
PHRASINGS = (
    "{ia} next to {ib}",
    "{A}, then {B}",
    "the digits {a} and {b}",
    "{a} and {b}",
    "{iA} followed by {iB}",
    "{a} on the left, {b} on the right",
    "{A} and {B}",
    "handwritten {a} beside {b}",
    "left {a}, right {b}",
    "{a} then {b}",
)
HELDOUT_PHRASINGS = (
    "the digit {A} next to the digit {B}",
    "first {ia}, then {ib}",
    "{iA} beside {iB}",
)
HELDOUT_PAIRS = tuple((d, (d + 3) % 10) for d in range(10))
SEEN_PAIRS = tuple((a, b) for a in range(10) for b in range(10) if (a, b) not in HELDOUT_PAIRS)
#: The prompt sets prompt accuracy is reported on: name -> (pairs, phrasings).
PROMPT_SETS = {
    "seen": (SEEN_PAIRS, PHRASINGS),                          # (a) seen pairs, seen phrasings
    "heldout_phrasings": (SEEN_PAIRS, HELDOUT_PHRASINGS),     # (b) seen pairs, held-out phrasings
    "heldout_pairs": (HELDOUT_PAIRS, PHRASINGS),              # (c) held-out pairs (seen phrasings)
}
CAPTIONS_PER_IMAGE = 3
PAIR_HEIGHT, PAIR_WIDTH = 32, 64
REFERENCE_PER_PAIR = 10


def caption(template: str, a: int, b: int) -> str:
    """``template`` filled in for the pair ``(a, b)`` (see :data:`PHRASINGS`)."""
    def article(word: str) -> str:
        return f"an {word}" if word in ("8", "eight") else f"a {word}"

    A, B = DIGIT_WORDS[a], DIGIT_WORDS[b]
    return template.format(a=a, b=b, A=A, B=B, ia=article(str(a)), ib=article(str(b)), iA=article(A), iB=article(B))


def prompts(name: str, seed: int = 0) -> list[tuple[str, tuple[int, int]]]:
    """Every ``(caption, (a, b))`` of the prompt set ``name``, in a fixed order shuffled by ``seed``."""
    if name not in PROMPT_SETS:
        raise AutonatError(f"unknown prompt set {name!r}; choose {', '.join(PROMPT_SETS)}")
    pairs, phrasings = PROMPT_SETS[name]
    rows = [(caption(t, a, b), (a, b)) for (a, b) in pairs for t in phrasings]
    order = np.random.default_rng(seed).permutation(len(rows))
    return [rows[i] for i in order]


def pair_images(digits: np.ndarray, labels: np.ndarray, pairs: list[tuple[int, int]],
                rng: np.random.Generator) -> torch.Tensor:
    """One image ``[3, 32, 64]`` in [0, 1] per pair: a random digit of class ``a``, then one of class ``b``."""
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    left = [rng.choice(by_class[a]) for a, _ in pairs]
    right = [rng.choice(by_class[b]) for _, b in pairs]
    return torch.cat([digits_to_images(digits[left]), digits_to_images(digits[right])], dim=-1)


def _save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    grey = image[0].mul(255).round().clamp(0, 255).to(torch.uint8).numpy()
    Image.fromarray(grey, mode="L").save(path)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_demo_text(out: str | Path, per_pair: int = 50, seed: int = 0,
                    reference_per_pair: int = REFERENCE_PER_PAIR) -> dict:
    """Write the captioned demo dataset to ``out`` (module notes); returns counts of what was written."""
    if min(per_pair, reference_per_pair) < 1:
        raise AutonatError(f"--per-pair must be at least 1, got {per_pair}")
    rng = np.random.default_rng(seed)
    train_digits, train_labels = demo_digits("train")
    held_digits, held_labels = demo_digits("heldout")
    train_pairs = [p for p in SEEN_PAIRS for _ in range(per_pair)]
    reference_pairs = [p for p in sorted(SEEN_PAIRS + HELDOUT_PAIRS) for _ in range(reference_per_pair)]
    with atomic_dir(out, KIND) as tmp:
        (tmp / "images").mkdir()
        (tmp / "reference").mkdir()
        rows = []
        for i, ((a, b), image) in enumerate(zip(train_pairs, pair_images(train_digits, train_labels, train_pairs,
                                                                           rng))):
            name = f"images/{i:05d}_{a}{b}.png"
            _save_png(image, tmp / name)
            for t in rng.choice(len(PHRASINGS), CAPTIONS_PER_IMAGE, replace=False):
                rows.append({"image": name, "caption": caption(PHRASINGS[t], a, b), "digits": [a, b]})
        _write_jsonl(tmp / "train.jsonl", rows)
        reference = []
        for i, ((a, b), image) in enumerate(zip(reference_pairs, pair_images(held_digits, held_labels,
                                                                               reference_pairs, rng))):
            name = f"reference/{i:04d}_{a}{b}.png"
            _save_png(image, tmp / name)
            reference.append({"image": name, "caption": caption(PHRASINGS[0], a, b), "digits": [a, b]})
        _write_jsonl(tmp / "reference.jsonl", reference)
        for set_name in PROMPT_SETS:
            _write_jsonl(tmp / f"prompts_{set_name}.jsonl",
                         [{"caption": c, "digits": list(p)} for c, p in prompts(set_name, seed)])
    return {"train_images": len(train_pairs), "train_captions": len(rows), "reference_images": len(reference_pairs)}


def read_prompt_set(path: str | Path) -> list[tuple[str, tuple[int, int]]]:
    """``(caption, (a, b))`` of a ``prompts_<name>.jsonl`` (or any JSONL with ``caption`` and ``digits``)."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            a, b = (int(d) for d in row["digits"])
            rows.append((str(row["caption"]), (a, b)))
        except (ValueError, TypeError, KeyError) as exc:
            raise AutonatError(f"{path}:{number}: not a {{\"caption\": text, \"digits\": [a, b]}} line "
                               f"({type(exc).__name__}); rewrite it with `autonat data demo-text`") from exc
    return rows
