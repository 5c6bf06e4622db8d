"""Encoding a dataset once with the frozen tokenizer into a token cache."""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from autonat.data.captions import (
    CaptionImageDataset,
    open_text_encoder,
    read_captions,
    write_caption_features,
)
from autonat.data.images import (
    READ,
    TOO_LARGE,
    UNREADABLE,
    CheckedImages,
    header_size,
    open_dataset,
    too_large,
)
from autonat.data.shards import (
    SHARD_KEYS,
    ShardPlan,
    open_work_folder,
    read_shard,
    remove_work_folder,
    shard_file,
    work_folder,
    write_shard,
)
from autonat.data.sources import is_demo_source, source_image_size
from autonat.data.token_cache import TokenCache, check_cache_output, token_dtype, write_token_cache_blocks
from autonat.errors import AutonatError
from autonat.tokenizers.base import fingerprint
from autonat.tokenizers.loader import load_tokenizer


def tokenizer_identity(path: str | Path, tokenizer, config: str | Path | None = None) -> dict:
    """What a cache or checkpoint records about its tokenizer."""
    ident = {"path": str(path), "fingerprint": fingerprint(path), "kind": getattr(tokenizer, "kind", "unknown"),
             "codebook_size": int(tokenizer.codebook_size), "grid": list(tokenizer.grid),
             "image_size": int(tokenizer.image_size)}
    if config is not None:
        ident["config"] = str(config)
    return ident


def verify_tokenizer(recorded: dict, path: str | Path, user: str, fix: str, force: bool = False) -> None:
    """Check that the tokenizer at ``path`` is the one ``user`` (a checkpoint, a cache) recorded.

    The check compares content fingerprints, so a tokenizer replaced or
    retrained in place is caught. A record without a fingerprint (released
    weights converted without their tokenizer) passes. A mismatch is a
    one-line :class:`AutonatError` naming ``fix``; with ``force`` it is a
    warning on stderr and the work goes on.
    """
    expected = recorded.get("fingerprint")
    if not expected:
        return
    try:
        actual = fingerprint(path)
    except OSError:  # a format without one weights file: nothing to compare
        return
    if actual == expected:
        return
    problem = (f"tokenizer {path} has fingerprint {actual} but {user} was made with fingerprint {expected} "
               f"(recorded path {recorded.get('path')})")
    if not force:
        raise AutonatError(f"{problem}; {fix}, or pass --force (force=True) to use it anyway")
    print(f"autonat: warning: {problem}; going on because of --force", file=sys.stderr, flush=True)


def verify_cache_tokenizer(cache: TokenCache, force: bool = False) -> None:
    """The tokenizer a cache was made with must not have been replaced or retrained since.

    See :func:`verify_tokenizer`; a cache whose tokenizer is no longer where
    it records is not checked.
    """
    path = cache.tokenizer_path()
    if path is not None:
        verify_tokenizer(cache.meta.get("tokenizer", {}), path, f"token cache {cache.path}",
                         fix="encode the data again with `autonat tokenize`", force=force)


@torch.inference_mode()
def tokenize_dataset(source: str, tokenizer_path: str | Path, out: str | Path, image_size: int | None = None,
                     hflip: bool = False, tokenizer_config: str | Path | None = None, device: str = "cpu",
                     batch_size: int = 256, split: str | None = None, strict_images: bool = False,
                     captions: str | Path | None = None, text_encoder: str | None = None, crop: bool = True,
                     encoder=None, resize: str = "bilinear", workers: int = 0, shard_size: int = 4096,
                     state=None) -> int:
    """Encode every image of ``source`` (and its mirror image if ``hflip``); returns the item count.

    The work is done in shards (:mod:`autonat.data.shards`): each of the
    processes of ``state`` (accelerate's process state; None: this process
    alone) encodes its shards, ``workers`` DataLoader processes decode the
    images, every finished shard is written at once, and a rerun after a
    crash or a kill skips the finished shards. The main process then merges
    them into the cache. Images are resized and centre-cropped by
    ``resize`` (:func:`~autonat.data.images.resize_centre_crop`); the cache's
    ``meta.json`` records it under ``preprocess``.

    With ``captions`` (a COCO ``captions_*.json`` or a JSONL file, image
    paths relative to ``source``, see :mod:`autonat.data.captions`) the
    images are the captioned ones, and every caption plus the empty one is
    encoded once by the text encoder ``text_encoder`` (a spec for
    :func:`autonat.text.load_text_encoder`; ``encoder`` passes one already
    loaded). The images' mirror copies share their captions. ``crop=False``
    keeps each resized image whole (non-square images; the token grid is
    then the tokenizer's output for that shape).

    ``split`` defaults to what a generator trains on (see
    :func:`~autonat.data.images.open_dataset`). The cache's ``meta.json``
    records the class names (``class_names``, position = class id), class
    folders without readable images (``empty_classes``: their ids are kept), and the
    images skipped as unreadable (``skipped_images``, ``skipped_files``) or
    too large (``too_large_images``, ``too_large_files``); with
    ``strict_images`` either is an error instead.
    """
    check_cache_output(out)
    main, rank, world = (True, 0, 1) if state is None else (state.is_main_process, state.process_index,
                                                           state.num_processes)
    if captions is not None and text_encoder is None and encoder is None:
        raise AutonatError("a captioned dataset needs a text encoder: set text.encoder in the recipe "
                           "(or pass --text-encoder)")
    listing = read_captions(captions, source) if captions is not None else None
    tokenizer = load_tokenizer(tokenizer_path, tokenizer_config, device=device)
    size = image_size or tokenizer.image_size
    check_image_size(source, size, tokenizer, tokenizer_path)
    if listing is not None:
        dataset = CaptionImageDataset(listing, size, crop=crop, resize=resize)
    else:
        dataset = open_dataset(source, size, split=split, strict=strict_images, probe=False, resize=resize)
    plan = ShardPlan(len(dataset), shard_size)
    work = work_folder(out)
    manifest = {"source": str(source), "items": _listing_digest(dataset), "tokenizer": fingerprint(tokenizer_path),
                "image_size": size, "resize": resize, "crop": crop, "hflip": hflip, "shard_size": shard_size,
                "split": split, "captions": str(captions) if captions is not None else None}
    if main:
        found = open_work_folder(work, manifest)
        if found:
            print(f"tokenize: resuming, {found} of {plan.num_shards} shard(s) already in {work}", flush=True)
    _barrier(state)
    _encode_shards(dataset, tokenizer, plan, work, rank, world, hflip, device, batch_size, workers, strict_images,
                   show=state is None or state.is_local_main_process)
    _barrier(state)
    count = 0
    if main:
        if listing is not None and encoder is None:
            encoder = open_text_encoder(text_encoder, device=device)
        count = _merge_shards(dataset, tokenizer, plan, work, out, source, hflip, size, resize, crop,
                              identity=tokenizer_identity(tokenizer_path, tokenizer, tokenizer_config),
                              listing=listing, captions=captions, encoder=encoder, text_encoder=text_encoder,
                              batch_size=batch_size)
        remove_work_folder(work)
    _barrier(state)
    return count


def _barrier(state) -> None:
    if state is not None and state.num_processes > 1:
        state.wait_for_everyone()


def _listing_digest(dataset) -> str:
    """A short hash of the images the dataset lists (files and labels), so shards of two listings never mix."""
    if hasattr(dataset, "items"):  # an image folder
        text = "\n".join(f"{f}\t{y}" for f, y in dataset.items)
    elif hasattr(dataset, "listing"):  # captioned images
        text = "\n".join(str(f) for f in dataset.listing.images)
    else:  # the demo digits
        text = f"{type(dataset).__name__}:{len(dataset)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode_shards(dataset, tokenizer, plan: ShardPlan, work: Path, rank: int, world: int, hflip: bool, device,
                   batch_size: int, workers: int, strict: bool, show: bool) -> None:
    """Encode this process's unfinished shards, one DataLoader over all of them, writing each as it completes.

    Batches never cross a shard boundary, so a shard is complete when its
    last batch is encoded.
    """
    mine = plan.shards_of(rank, world)
    todo = [k for k in mine if not shard_file(work, k).exists()]
    batches = [list(plan.items(k)[i: i + batch_size]) for k in todo for i in range(0, len(plan.items(k)),
                                                                                    batch_size)]
    total = sum(len(plan.items(k)) for k in mine)
    loader = DataLoader(CheckedImages(dataset), batch_sampler=batches,
                        num_workers=workers, persistent_workers=False)
    desc = "tokenize" if world == 1 else f"tokenize (process {rank + 1} of {world}, its share)"
    dtype = token_dtype(tokenizer.codebook_size)
    parts: dict[str, list] = {key: [] for key in SHARD_KEYS}
    shard, grid, done_in_shard = None, list(tokenizer.grid), 0
    with tqdm(total=total, initial=total - sum(len(plan.items(k)) for k in todo), desc=desc, unit="img",
              dynamic_ncols=True, disable=not show, smoothing=0.05) as bar:
        for (images, labels, status, upscaled), batch in zip(loader, batches):
            shard = batch[0] // plan.shard_size
            ok = status == READ
            if strict and not ok.all():
                _refuse(dataset, batch[int((~ok).nonzero()[0, 0])], int(status[~ok][0]))
            images, labels = images[ok].to(device), labels[ok]
            for view in ([images, images.flip(-1)] if hflip else [images]):
                if len(view):
                    encoded = tokenizer.encode(view)
                    grid = list(encoded.shape[1:])
                    parts["tokens"].append(encoded.flatten(1).cpu().numpy().astype(dtype))
                    parts["labels"].append(labels.numpy())  # captioned data: the image's position in the listing
            parts["status"].append(status.numpy().astype(np.int8))
            parts["upscaled"].append(upscaled.numpy())
            done_in_shard += len(batch)
            bar.update(len(batch))
            if done_in_shard == len(plan.items(shard)):
                write_shard(work, shard, _shard_arrays(parts, grid, tokenizer))
                parts, done_in_shard = {key: [] for key in SHARD_KEYS}, 0


def _shard_arrays(parts: dict[str, list], grid: list[int], tokenizer) -> dict[str, np.ndarray]:
    length = int(np.prod(grid))
    dtype = token_dtype(tokenizer.codebook_size)
    return {"tokens": np.concatenate(parts["tokens"]) if parts["tokens"] else np.zeros((0, length), dtype),
            "labels": np.concatenate(parts["labels"]) if parts["labels"] else np.zeros(0, np.int64),
            "grid": np.asarray(grid, np.int64), "status": np.concatenate(parts["status"]),
            "upscaled": np.concatenate(parts["upscaled"])}


def _refuse(dataset, item: int, status: int) -> None:
    """The ``--strict-images`` error for dataset item ``item``."""
    file = dataset.items[item][0]
    if status == TOO_LARGE:
        raise AutonatError(f"image {file} is {too_large(header_size(file))} (downscale it, or drop --strict-images "
                           "to skip it)")
    raise AutonatError(f"unreadable image {file} (remove it, or drop --strict-images to skip it)")


def _merge_shards(dataset, tokenizer, plan: ShardPlan, work: Path, out, source: str, hflip: bool, size: int,
                  resize: str, crop: bool, identity: dict, listing, captions, encoder, text_encoder,
                  batch_size: int) -> int:
    """Merge the finished shards, in order, into the token cache ``out``; returns its item count."""
    labels, status, upscaled, grids = [], [], [], set()
    for k in range(plan.num_shards):
        shard = read_shard(work, k)
        labels.append(shard["labels"])
        status.append(shard["status"])
        upscaled.append(shard["upscaled"])
        if len(shard["labels"]):
            grids.add(tuple(int(g) for g in shard["grid"]))
    labels_np, status_np = np.concatenate(labels).astype(np.int64), np.concatenate(status)
    files = [str(f) for f, _ in getattr(dataset, "items", [])]
    skipped = [files[i] for i in np.flatnonzero(status_np == UNREADABLE)]
    large = [files[i] for i in np.flatnonzero(status_np == TOO_LARGE)]
    large = [f"{f} ({' x '.join(map(str, header_size(f)))})" for f in large[:100]] + large[100:]
    if not len(labels_np):
        unreadable = f" ({len(skipped) + len(large)} unreadable or too large files skipped)" if files else ""
        raise AutonatError(f"no readable images under {source}{unreadable} (expected {source}/<class>/*.png|jpg)")
    if len(grids) > 1:
        raise AutonatError(f"the images of {source} give token grids of different shapes {sorted(grids)}; "
                           "crop them to one shape (data.crop: true)")
    grid = list(grids.pop()) if grids else list(tokenizer.grid)
    counts = np.bincount(labels_np, minlength=dataset.num_classes) if dataset.num_classes else np.zeros(0)
    meta = {
        "tokenizer": identity,
        "grid": grid,
        "codebook_size": int(tokenizer.codebook_size),
        "num_classes": int(dataset.num_classes),
        "augmentation": "hflip" if hflip else "none",
        "preprocess": {"image_size": size, "resize": resize, "crop": "centre" if crop else "none",
                       "mirror": hflip},
        "source": str(source),
        "skipped_images": len(skipped),
        "skipped_files": skipped[:100],
        "upscaled_images": int(np.concatenate(upscaled).sum()),
        "too_large_images": len(large),
        "too_large_files": large[:100],
        "class_names": list(dataset.classes),
        "empty_classes": [name for name, n in zip(dataset.classes, counts) if n == 0],
        "loose_images": len(getattr(dataset, "loose", [])),
    }
    extra = None
    if listing is not None:
        meta.update(captions_file=str(captions), uncaptioned_images=listing.uncaptioned)
        groups = tuple(listing.captions[i] for i in labels_np)  # a mirror copy shares its image's captions
        labels_np = np.full(len(labels_np), -1)

        def extra(folder: Path) -> dict:
            return write_caption_features(folder, encoder, text_encoder or encoder.name, groups,
                                          batch_size=batch_size,
                                          progress=lambda it: tqdm(it, desc="captions", dynamic_ncols=True))

    def blocks():
        return (read_shard(work, k)["tokens"] for k in range(plan.num_shards))

    write_token_cache_blocks(out, blocks, labels_np, int(np.prod(grid)), meta, extra=extra)
    return len(labels_np)


def check_image_size(source: str, image_size: int, tokenizer, tokenizer_path: str | Path) -> None:
    """One line naming both sizes when ``source``'s images do not have the tokenizer's input size."""
    size, wanted = source_image_size(source, image_size), tokenizer.image_size
    if size == wanted:
        return
    retrain = f"use a tokenizer trained at resolution {size}"
    if is_demo_source(source):
        raise AutonatError(f"the demo digits are {size}px but the tokenizer {tokenizer_path} takes {wanted}px "
                           f"images; {retrain}")
    raise AutonatError(f"data.image_size is {size}px but the tokenizer {tokenizer_path} takes {wanted}px images; "
                       f"set data.image_size: {wanted}, or {retrain}")
