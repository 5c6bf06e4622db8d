"""Image-caption datasets, and the caption features a token cache keeps beside the image tokens.

Two listing formats, both giving images in a fixed order, each with one or
more captions:

* COCO captions: a ``captions_*.json`` (``images``: ``id``, ``file_name``;
  ``annotations``: ``image_id``, ``caption``); images in the order of
  ``images``, those without a caption left out (and counted);
* JSONL: one ``{"image": path, "caption": text}`` object a line; lines may
  share an image, whose captions keep the file's order; images in the order
  they first appear.

Image paths (``file_name``, ``image``) are relative to the image folder
(``data.source``); absolute paths stay as they are. What ``eval`` and the
search generate from may also be a ``.txt`` file, one caption a line
(:func:`read_caption_groups`).

Caption features (written once by ``autonat tokenize``, read memory-mapped):
caption ``j`` of the whole cache has hidden states ``captions.npy[j]``
(float16 ``[C, n, d]``) and mask ``caption_mask.npy[j]`` (bool ``[C, n]``);
the captions of image ``i`` are rows ``offsets[i] .. offsets[i + 1] - 1``
(``caption_offsets.npy``, int64 ``[N + 1]``); the encoded empty caption is
``empty_caption.npy`` / ``empty_caption_mask.npy`` (one row, the null
condition); ``captions.json`` holds the texts per image. ``meta.json``
records the encoder (``text_encoder``: its ``spec`` as given, its ``name``
with the weights' fingerprint, ``width``, ``max_length``). A pooled
embedding, when the encoder gives one, is not kept: the generator reads the
per-token states only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import functional as TF

from autonat.data.images import check_resize, open_image, resize_centre_crop, to_rgb
from autonat.errors import AutonatError
from autonat.generator.condition import TextCondition

CAPTION_SUFFIXES = (".json", ".jsonl")
FEATURE_FILES = ("captions.npy", "caption_mask.npy", "caption_offsets.npy", "empty_caption.npy",
                 "empty_caption_mask.npy", "captions.json")
FP16_MAX = float(np.finfo(np.float16).max)


# --------------------------------------------------------------------------- listings
@dataclass(frozen=True)
class CaptionListing:
    """Images (in order) and the captions of each; ``uncaptioned`` counts COCO images left out."""

    images: tuple[Path, ...]
    captions: tuple[tuple[str, ...], ...]
    uncaptioned: int = 0

    def __len__(self) -> int:
        return len(self.images)



def _grouped(file: Path, formats: tuple[str, ...]) -> tuple[dict[str, list[str]], int]:
    """The captions of ``file`` grouped by image name, and the count of COCO images without one."""
    suffix = file.suffix.lower()
    if not file.is_file():
        raise AutonatError(f"caption file not found: {file}; give a COCO captions_*.json or a .jsonl of "
                           "{\"image\": ..., \"caption\": ...} lines" + (", or a .txt of one caption a line"
                                                                          if ".txt" in formats else ""))
    if suffix not in formats:
        raise AutonatError(f"caption file {file} is not one of {', '.join(formats)} (COCO captions .json, "
                           ".jsonl" + (", .txt one caption a line)" if ".txt" in formats else ")"))
    if suffix == ".txt":
        lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
        grouped, uncaptioned = {str(i): [line] for i, line in enumerate(x for x in lines if x)}, 0
    else:
        grouped, uncaptioned = _read_jsonl(file) if suffix == ".jsonl" else _read_coco(file)
    if not grouped:
        raise AutonatError(f"caption file {file} holds no caption; add captions to it")
    return grouped, uncaptioned


def read_captions(file: str | Path, image_root: str | Path) -> CaptionListing:
    """The listing of a COCO ``captions_*.json`` or a JSONL caption file (see the module notes)."""
    file, root = Path(file), Path(image_root)
    grouped, uncaptioned = _grouped(file, CAPTION_SUFFIXES)
    images = tuple(p if Path(p).is_absolute() else root / p for p in grouped)
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        raise AutonatError(f"{len(missing)} image(s) of {file} not found, e.g. {missing[0]}; image paths are "
                           f"relative to data.source ({root}): point data.source at the image folder")
    return CaptionListing(images, tuple(tuple(c) for c in grouped.values()), uncaptioned)


def read_caption_groups(file: str | Path) -> list[list[str]]:
    """The captions of a caption file grouped by image, images not read: COCO ``.json``, ``.jsonl``, or
    ``.txt`` (one caption a line, each its own group; blank lines skipped)."""
    grouped, _ = _grouped(Path(file), (*CAPTION_SUFFIXES, ".txt"))
    return list(grouped.values())


EVAL_CAPTION_SEED = 0xC0C0


def draw_eval_captions(groups: list[list[str]], n: int, seed: int = 0) -> list[str]:
    """``n`` captions to generate from, the MS-COCO 30k protocol at small N: ``n`` distinct images drawn at
    random (all of them, in a new random order each pass, when ``n`` exceeds their count) and one of each
    image's captions, drawn uniformly; a function of ``(seed, n, groups)`` only."""
    rng = np.random.default_rng([seed, EVAL_CAPTION_SEED])
    passes = -(-n // len(groups))
    images = np.concatenate([rng.permutation(len(groups)) for _ in range(passes)])[:n]
    return [groups[i][int(rng.integers(len(groups[i])))] for i in images]


def _read_jsonl(file: Path) -> tuple[dict[str, list[str]], int]:
    grouped: dict[str, list[str]] = {}
    with open(file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                image, caption = row["image"], row["caption"]
            except (json.JSONDecodeError, TypeError, KeyError) as exc:
                raise AutonatError(f"{file}:{number}: not a {{\"image\": path, \"caption\": text}} object "
                                   f"({type(exc).__name__}: {exc}); fix that line") from exc
            if not isinstance(image, str) or not isinstance(caption, str):
                raise AutonatError(f"{file}:{number}: image and caption must be strings; fix that line")
            grouped.setdefault(image, []).append(caption)
    return grouped, 0


def _read_coco(file: Path) -> tuple[dict[str, list[str]], int]:
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
        names = {int(im["id"]): str(im["file_name"]) for im in info["images"]}
        pairs = [(int(a["image_id"]), str(a["caption"])) for a in info["annotations"]]
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
        raise AutonatError(f"{file} is not a COCO captions file (images: id, file_name; annotations: "
                           f"image_id, caption): {type(exc).__name__}: {exc}") from exc
    by_id: dict[int, list[str]] = {}
    for image_id, caption in pairs:
        if image_id not in names:
            raise AutonatError(f"{file}: a caption refers to image id {image_id}, which is not in `images`; "
                               "fix the file")
        by_id.setdefault(image_id, []).append(caption.strip())
    grouped = {names[i]: by_id[i] for i in names if i in by_id}
    return grouped, len(names) - len(grouped)


class CaptionImageDataset(Dataset):
    """The images of a :class:`CaptionListing` as ``(image [3, H, W] in [0, 1], index)``.

    ``crop`` (the default): each image resized so its shorter side is
    ``image_size`` and centre-cropped to a square, by ``resize``
    (:func:`autonat.data.images.resize_centre_crop`, as image folders).
    ``crop=False``: resized the same way (antialiased bilinear) and kept
    whole; every image must then come out the same size (e.g. 32 x 64
    two-digit images).
    """

    def __init__(self, listing: CaptionListing, image_size: int, crop: bool = True, resize: str = "bilinear") -> None:
        self.listing, self.image_size, self.crop, self.resize = listing, image_size, crop, check_resize(resize)
        if not crop and resize != "bilinear":
            raise AutonatError(f"data.resize {resize} centre-crops; images kept whole (data.crop false) are resized "
                               "bilinear: remove data.resize or set data.crop true")
        self.classes: list[str] = []
        self.num_classes = 0

    def __len__(self) -> int:
        return len(self.listing)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        file = self.listing.images[i]
        try:
            with open_image(file) as img:
                img = to_rgb(img)
                if self.crop:
                    img = resize_centre_crop(img, self.image_size, self.resize)
                else:
                    img = TF.resize(img, self.image_size, antialias=True)
        except OSError as exc:
            raise AutonatError(f"unreadable image {file} ({exc}); replace it or remove its captions") from exc
        return TF.to_tensor(img), i


# --------------------------------------------------------------------------- features
def encoder_record(encoder, spec: str) -> dict:
    """What a cache or checkpoint records about the text encoder that made its caption features."""
    return {"spec": str(spec), "name": str(encoder.name), "width": int(encoder.width),
            "max_length": int(encoder.max_length)}


def _as_fp16(hidden: torch.Tensor, what: str) -> np.ndarray:
    """float16 copy of ``hidden``; values past the float16 range are an error, not inf."""
    arr = hidden.detach().float().cpu().numpy()
    if not np.isfinite(arr).all() or np.abs(arr).max(initial=0.0) > FP16_MAX:
        raise AutonatError(f"the text encoder's hidden states for {what} are not finite or exceed float16's range "
                           f"({FP16_MAX}); use another encoder")
    return arr.astype(np.float16)


@torch.inference_mode()
def write_caption_features(out: Path, encoder, spec: str, captions: tuple[tuple[str, ...], ...],
                           batch_size: int = 256, progress=None) -> dict:
    """Encode every caption (and the empty one) into ``out`` (see the module notes); returns meta entries."""
    flat = [c for group in captions for c in group]
    offsets = np.concatenate([[0], np.cumsum([len(g) for g in captions])]).astype(np.int64)
    n, d = int(encoder.max_length), int(encoder.width)
    hidden = np.lib.format.open_memmap(out / "captions.npy", mode="w+", dtype=np.float16, shape=(len(flat), n, d))
    mask = np.lib.format.open_memmap(out / "caption_mask.npy", mode="w+", dtype=np.bool_, shape=(len(flat), n))
    starts = range(0, len(flat), batch_size)
    for start in (progress(starts) if progress else starts):
        cond = _encode(encoder, flat[start:start + batch_size], n, d)
        hidden[start:start + len(cond)] = _as_fp16(cond.hidden, f"captions {start}..{start + len(cond) - 1}")
        mask[start:start + len(cond)] = cond.mask.cpu().numpy()
    hidden.flush()
    mask.flush()
    del hidden, mask
    empty = _encode(encoder, [""], n, d)
    np.save(out / "empty_caption.npy", _as_fp16(empty.hidden, "the empty caption"))
    np.save(out / "empty_caption_mask.npy", empty.mask.cpu().numpy().astype(np.bool_))
    np.save(out / "caption_offsets.npy", offsets)
    (out / "captions.json").write_text(json.dumps([list(g) for g in captions], ensure_ascii=False))
    return {"text_encoder": encoder_record(encoder, spec), "num_captions": len(flat)}


def _encode(encoder, captions: list[str], n: int, d: int) -> TextCondition:
    cond = encoder.encode(list(captions))
    if tuple(cond.hidden.shape) != (len(captions), n, d):
        raise AutonatError(f"text encoder {encoder.name} returned hidden states {tuple(cond.hidden.shape)} for "
                           f"{len(captions)} captions, expected {(len(captions), n, d)} (max_length x width)")
    return cond


@dataclass
class CaptionFeatures:
    """A token cache's caption features (memory-mapped; see the module notes)."""

    hidden: np.ndarray  # [C, n, d] float16
    mask: np.ndarray  # [C, n] bool
    offsets: np.ndarray  # [N + 1] int64
    empty_hidden: np.ndarray  # [1, n, d] float16
    empty_mask: np.ndarray  # [1, n] bool
    encoder: dict  # the meta's text_encoder record
    path: Path

    @property
    def counts(self) -> np.ndarray:
        """Captions per image ``[N]``."""
        return np.diff(self.offsets)

    def texts(self) -> list[list[str]]:
        """The captions of every image (read from ``captions.json`` on each call)."""
        return json.loads((self.path / "captions.json").read_text(encoding="utf-8"))

    def choose(self, items: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Caption rows for ``items``: ``offsets[i] + floor(u * count_i)`` (one uniform ``u`` in [0, 1) each)."""
        items = np.asarray(items, dtype=np.int64)
        counts = self.counts[items]
        pick = np.minimum((np.asarray(uniforms) * counts).astype(np.int64), counts - 1)
        return self.offsets[items] + pick

    def condition(self, rows: np.ndarray) -> TextCondition:
        """Caption rows ``rows`` as a float32 :class:`TextCondition` (float16 values, widened exactly)."""
        rows = np.asarray(rows, dtype=np.int64)
        return TextCondition(torch.from_numpy(np.asarray(self.hidden[rows], dtype=np.float32)),
                             torch.from_numpy(np.asarray(self.mask[rows], dtype=np.bool_)))

    def empty(self) -> TextCondition:
        """The encoded empty caption (one row): the null condition."""
        return TextCondition(torch.from_numpy(self.empty_hidden.astype(np.float32)),
                             torch.from_numpy(self.empty_mask.astype(np.bool_)))


def read_caption_features(path: Path, meta: dict, num_items: int) -> CaptionFeatures:
    """Open the caption features of the cache at ``path``; a missing or inconsistent file is an error."""
    for name in FEATURE_FILES:
        if not (path / name).is_file():
            raise AutonatError(f"token cache {path} records a text encoder but {name} is missing; "
                               "write it again with `autonat tokenize`")
    try:
        features = CaptionFeatures(
            hidden=np.load(path / "captions.npy", mmap_mode="r"),
            mask=np.load(path / "caption_mask.npy", mmap_mode="r"),
            offsets=np.load(path / "caption_offsets.npy"), empty_hidden=np.load(path / "empty_caption.npy"),
            empty_mask=np.load(path / "empty_caption_mask.npy"), encoder=dict(meta["text_encoder"]), path=path)
    except (OSError, ValueError, KeyError) as exc:
        raise AutonatError(f"caption features of token cache {path} are corrupt ({str(exc).splitlines()[0]}); "
                           "write it again with `autonat tokenize`") from exc
    c, n, d = features.hidden.shape
    enc = features.encoder
    if (len(features.offsets) != num_items + 1 or features.offsets[-1] != c or features.mask.shape != (c, n)
            or features.empty_hidden.shape != (1, n, d) or (n, d) != (enc.get("max_length"), enc.get("width"))
            or (np.diff(features.offsets) < 1).any()):
        raise AutonatError(f"caption features of token cache {path} are inconsistent (hidden {features.hidden.shape}, "
                           f"offsets {features.offsets.shape}, {num_items} images); write it again with "
                           "`autonat tokenize`")
    return features


def check_same_encoder(recorded: dict, encoder, user: str, fix: str) -> None:
    """``encoder`` must be the one ``user`` (a cache, a checkpoint) recorded: same name (incl. weights
    fingerprint), width and length; else a one-line error naming ``fix``."""
    mine = (str(encoder.name), int(encoder.width), int(encoder.max_length))
    theirs = (recorded.get("name"), recorded.get("width"), recorded.get("max_length"))
    if mine != theirs:
        raise AutonatError(f"{user} was made with text encoder {theirs[0]} ({theirs[2]} x {theirs[1]}) but "
                           f"{mine[0]} ({mine[2]} x {mine[1]}) was given; {fix}")


def open_text_encoder(spec: str, device: str | torch.device = "cpu"):
    """The text encoder named by ``spec`` (:func:`autonat.text.load_text_encoder`)."""
    from autonat.text import load_text_encoder

    return load_text_encoder(spec, device=device)
