"""FID, IS, KID and precision/recall of an image set against a reference, through torch-fidelity.

The metric math is torch-fidelity's (``fid_features_to_statistics``,
``fid_statistics_to_metric``, ``isc_features_to_metric``,
``kid_features_to_metric``, ``prc_features_to_metric``); this module supplies
what it does not: image sets that are produced on demand (a generator with a
strategy, an image folder, an ``.npz`` batch, the demo digits), embedding them
in shares across processes, reference statistics in the ``mu``/``sigma``
``.npz`` layout of the ADM and AutoNAT evaluations, and results records.

Distributed runs split an image set into batches of consecutive indices and
give batch ``k`` to process ``k mod K``. Every sample is generated from its
own seed and embedded in the same batch as in a one-process run, so the
gathered features, and hence every figure, equal the one-process ones.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .atomic import append_line, atomic_path
from .errors import AutonatError
from .features import FeatureExtractor

ALL_METRICS = ("fid", "isc", "kid", "prc")
METRIC_ALIASES = {"is": "isc", "pr": "prc", "precision-recall": "prc"}
DEMO_SPLITS = ("train", "heldout", "all")


# --------------------------------------------------------------------------- image sets
class ImageSet(Protocol):
    """Images addressed by index, produced a batch at a time as uint8 ``[B, 3, H, W]``."""

    def __len__(self) -> int: ...

    def batch(self, indices: Sequence[int]) -> torch.Tensor: ...


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] ``[B, 3, H, W]`` -> uint8 (the rounding of ``outputs.save_npz``)."""
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


@dataclass
class ArrayImages:
    """An in-memory uint8 array ``[N, H, W, C]`` (C = 1 or 3), e.g. an ``.npz`` batch's ``arr_0``."""

    array: np.ndarray

    def __len__(self) -> int:
        return len(self.array)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(self.array[list(indices)])).permute(0, 3, 1, 2)
        return x.expand(-1, 3, -1, -1).contiguous() if x.shape[1] == 1 else x.contiguous()


@dataclass
class FolderImages:
    """Image files (searched recursively, sorted), read as RGB at their own size."""

    files: list[Path]

    def __len__(self) -> int:
        return len(self.files)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        images = [self._read(self.files[i]) for i in indices]
        sizes = {tuple(x.shape) for x in images}
        if len(sizes) > 1:
            raise AutonatError(f"images under {self.files[0].parent} differ in size ({sorted(sizes)[:3]}); "
                               "resize them to one size first")
        return torch.stack(images)

    @staticmethod
    def _read(file: Path) -> torch.Tensor:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        from .image_folder import to_rgb

        try:
            with Image.open(file) as img:
                return pil_to_tensor(to_rgb(img))
        except OSError as exc:
            raise AutonatError(f"unreadable image {file}: {exc}") from exc


@dataclass
class GeneratedImages:
    """Samples of a :class:`~autonat.generate.Pipeline`; sample ``i`` is seeded from ``(seed, i)``."""

    pipeline: Any
    strategy: Any
    labels: list[int]
    seed: int
    options: Any = None

    def __post_init__(self) -> None:
        self.pipeline.check_labels(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        from .sampler import sample_seeds

        labels = [self.labels[i] for i in indices]
        return to_uint8(self.pipeline.images(self.strategy, labels, sample_seeds(self.seed, list(indices)),
                                             self.options))


def is_demo(source: str | Path) -> bool:
    """``demo`` or ``demo:<split>`` names the built-in digits (a path never contains the colon form)."""
    return str(source) == "demo" or str(source).startswith("demo:")


def demo_images(split: str) -> ArrayImages:
    """The built-in MNIST demo digits of ``split`` as uint8 32x32 RGB."""
    from .data import DemoDigits

    x = DemoDigits(split).images
    return ArrayImages(to_uint8(x).permute(0, 2, 3, 1).numpy())


def folder_images(root: Path) -> FolderImages:
    from .image_folder import IMAGE_SUFFIXES

    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < 2:
        raise AutonatError(f"{root} holds {len(files)} image(s); FID needs at least 2 "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))}, searched recursively)")
    return FolderImages(files)


# --------------------------------------------------------------------------- .npz files
def open_npz(path: Path):
    """Open an ``.npz`` without unpickling anything, or say why it cannot be read."""
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:  # missing, truncated, not a zip, pickled objects
        raise AutonatError(f"cannot read {path} as an .npz file: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise AutonatError(f"{path} is a single .npy array, not an .npz with arr_0 (images) or mu/sigma (statistics)")
    return z


def npz_kind(z, path: Path) -> str:
    """``"statistics"`` (``mu`` and ``sigma``) or ``"images"`` (``arr_0``), else a clear error."""
    keys = set(z.files)
    if keys & {"mu", "sigma"}:
        missing = {"mu", "sigma"} - keys
        if missing:
            raise AutonatError(f"{path} has {' and '.join(sorted(keys & {'mu', 'sigma'}))} but no "
                               f"{' and '.join(sorted(missing))}: FID statistics need both mu (D) and sigma (D x D)")
        return "statistics"
    if "arr_0" in keys:
        return "images"
    raise AutonatError(f"{path} has neither mu/sigma (precomputed statistics) nor arr_0 (uint8 N x H x W x 3 images); "
                       f"its keys are {sorted(keys) or 'none'}")


def images_from_array(arr: np.ndarray, where: str) -> ArrayImages:
    """Check an ``arr_0`` batch: uint8, ``N x H x W x 3`` (or grey ``N x H x W [x 1]``), N >= 2."""
    if arr.dtype != np.uint8:
        raise AutonatError(f"{where}: arr_0 must be uint8 (0..255), found {arr.dtype}; convert float images in "
                           "[0, 1] with (x * 255).round().astype(np.uint8)")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise AutonatError(f"{where}: arr_0 must be N x H x W x 3, found shape {arr.shape}")
    if len(arr) < 2:
        raise AutonatError(f"{where}: arr_0 holds {len(arr)} image(s); FID needs at least 2")
    return ArrayImages(arr)


def open_images(source: str | Path) -> ArrayImages | FolderImages:
    """An image folder, an ``.npz`` batch (``arr_0``), or ``demo:<split>``."""
    source = str(source)
    if is_demo(source):
        split = source.partition(":")[2]
        if split not in DEMO_SPLITS:
            raise AutonatError(f"say which demo digits: {', '.join('demo:' + s for s in DEMO_SPLITS)}")
        return demo_images(split)
    path = Path(source)
    if path.is_dir():
        return folder_images(path)
    if not path.exists():
        raise AutonatError(f"no such image folder or .npz file: {path}")
    with open_npz(path) as z:
        if npz_kind(z, path) != "images":
            raise AutonatError(f"{path} holds precomputed statistics (mu/sigma), not images; it can only be a "
                               "reference")
        return images_from_array(z["arr_0"], str(path))


# --------------------------------------------------------------------------- embedding in shares
def shard(n: int, batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """Process ``rank``'s batches: consecutive index ranges of ``batch_size``, dealt round-robin."""
    if batch_size < 1:
        raise AutonatError(f"batch size must be at least 1, got {batch_size}")
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    return batches[rank::world]


def embed(images: ImageSet, extractor: FeatureExtractor, batch_size: int = 100, state=None,
          progress: bool = True, desc: str = "embed") -> dict[str, torch.Tensor]:
    """Features ``{layer: [N, D]}`` of the whole set, in index order, on every process.

    ``state`` is an accelerate ``PartialState``; each process embeds its share
    and the shares are gathered (a collective: every process must call this).
    """
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    mine = shard(len(images), batch_size, rank, world)
    label = desc if world == 1 else f"{desc} (share of process 0 of {world})"
    bar = tqdm(total=sum(map(len, mine)), desc=label, unit="img", dynamic_ncols=True,
               disable=not progress or rank != 0)
    parts = []
    for idx in mine:
        feats = extractor.embed(images.batch(idx))
        parts.append((idx, {k: v.numpy() for k, v in feats.items()}))
        bar.update(len(idx))
    bar.close()
    if world > 1:
        from accelerate.utils import gather_object

        parts = gather_object(parts)
    return _assemble(parts, len(images))


def _assemble(parts: list, n: int) -> dict[str, torch.Tensor]:
    parts = sorted(parts, key=lambda p: p[0][0])
    if [i for idx, _ in parts for i in idx] != list(range(n)):
        raise RuntimeError("gathered features do not cover every sample exactly once")
    return {k: torch.from_numpy(np.concatenate([f[k] for _, f in parts])) for k in parts[0][1]}


# --------------------------------------------------------------------------- reference statistics
@dataclass
class Reference:
    """FID statistics of a reference set, and its features when known (KID and precision/recall need them)."""

    mu: np.ndarray  # float64 [D]
    sigma: np.ndarray  # float64 [D, D]
    source: str
    kind: str  # "images" or "statistics"
    extractor: str | None
    num_images: int | None = None
    features: torch.Tensor | None = field(default=None, repr=False)

    def describe(self) -> dict:
        return {"source": self.source, "kind": self.kind, "num_images": self.num_images, "extractor": self.extractor}


def reference_from_features(features: dict[str, torch.Tensor], extractor: FeatureExtractor, source: str) -> Reference:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    f = features[extractor.layers["fid"]]
    stats = fid_features_to_statistics(f.double())
    return Reference(mu=stats["mu"], sigma=stats["sigma"], source=source, kind="images", extractor=extractor.name,
                     num_images=len(f), features=f)


def statistics_from_npz(z, path: Path, extractor: FeatureExtractor) -> Reference:
    """Validate ``mu``/``sigma`` against the extractor in use and wrap them."""
    mu, sigma = np.asarray(z["mu"]), np.asarray(z["sigma"])
    if mu.ndim != 1 or mu.size < 1:
        raise AutonatError(f"{path}: mu must be a vector of D feature means, found shape {mu.shape}")
    if sigma.shape != (len(mu), len(mu)):
        raise AutonatError(f"{path}: sigma must be D x D = {len(mu)} x {len(mu)} to match mu, found {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise AutonatError(f"{path}: mu or sigma contains NaN or infinity")
    recorded = str(z["feature_extractor"]) if "feature_extractor" in z.files else None
    if recorded is not None and recorded != extractor.name:
        raise AutonatError(f"{path} holds {recorded} statistics but the evaluation uses {extractor.name}; "
                           f"pass --feature-extractor {recorded} or recompute them with `autonat fid-stats`")
    dim = extractor.feature_dim("fid")
    if len(mu) != dim:
        raise AutonatError(f"{path}: statistics are {len(mu)}-dimensional but {extractor.name} features are "
                           f"{dim}-dimensional; they were computed with another feature extractor")
    n = int(z["num_images"]) if "num_images" in z.files else None
    return Reference(mu=mu.astype(np.float64), sigma=sigma.astype(np.float64), source=str(path), kind="statistics",
                     extractor=recorded, num_images=n)


def load_reference(source: str | Path, extractor: FeatureExtractor, batch_size: int = 100, state=None,
                   progress: bool = True) -> Reference:
    """Reference statistics from a statistics ``.npz``, an images ``.npz``, a folder, or ``demo:<split>``."""
    path = Path(str(source))
    if not is_demo(source) and path.is_file():
        with open_npz(path) as z:
            if npz_kind(z, path) == "statistics":
                return statistics_from_npz(z, path, extractor)
    images = open_images(source)
    feats = embed(images, extractor, batch_size, state, progress, desc="reference")
    return reference_from_features(feats, extractor, str(source))


def save_statistics(path: str | Path, reference: Reference, extractor: FeatureExtractor) -> None:
    """Write ``mu``, ``sigma`` (the ADM/AutoNAT reference layout) and what they were computed with."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=reference.mu, sigma=reference.sigma, num_images=np.int64(reference.num_images or 0),
                 feature_extractor=np.str_(extractor.name), feature_layer=np.str_(extractor.layers["fid"]),
                 source=np.str_(reference.source))


# --------------------------------------------------------------------------- metrics
def parse_metrics(requested: str | Sequence[str] | None, reference: Reference) -> tuple[str, ...]:
    """Metric names to compute: all the reference allows by default (KID and PR need reference features)."""
    if requested is None:
        return ALL_METRICS if reference.features is not None else ("fid", "isc")
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [METRIC_ALIASES.get(m.strip().lower(), m.strip().lower()) for m in names if m.strip()]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise AutonatError(f"unknown metric(s) {unknown}; choose from fid, is, kid, pr")
    need_features = [m for m in names if m in ("kid", "prc")]
    if need_features and reference.features is None:
        raise AutonatError(f"{', '.join(need_features)} need the reference images, but {reference.source} holds "
                           "only statistics; give a folder or an .npz of images as the reference")
    return tuple(dict.fromkeys(names))


def compute_metrics(features: dict[str, torch.Tensor], reference: Reference, layers: dict[str, str],
                    metrics: Sequence[str] = ALL_METRICS, rng_seed: int = 2020) -> dict[str, float]:
    """torch-fidelity's metrics of ``features`` against ``reference``."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    out: dict[str, float] = {}
    gen = features[layers["fid"]]
    if len(gen) < 2:
        raise AutonatError(f"need at least 2 images to compute metrics, got {len(gen)}")
    if "fid" in metrics:
        stats = fid_features_to_statistics(gen.double())
        ref = {"mu": reference.mu, "sigma": reference.sigma}
        out["fid"] = fid_statistics_to_metric(stats, ref, verbose=False)[KEY_METRIC_FID]
    if "isc" in metrics:
        r = isc_features_to_metric(features[layers["isc"]], splits=min(10, len(gen)), rng_seed=rng_seed)
        out["is_mean"], out["is_std"] = r["inception_score_mean"], r["inception_score_std"]
    if "kid" in metrics:
        size = min(1000, len(gen), len(reference.features))
        r = kid_features_to_metric(features[layers["kid"]], reference.features, kid_subset_size=size,
                                   rng_seed=rng_seed, verbose=False)
        out["kid_mean"], out["kid_std"], out["kid_subset_size"] = (r["kernel_inception_distance_mean"],
                                                                   r["kernel_inception_distance_std"], size)
    if "prc" in metrics:
        r = prc_features_to_metric(features[layers["prc"]], reference.features, save_cpu_ram=True, verbose=False)
        out.update(precision=r["precision"], recall=r["recall"], f_score=r["f_score"])
    return out


# --------------------------------------------------------------------------- evaluation and records
@dataclass
class Evaluator:
    """Scores image sets against one reference in one feature space (reuse it across many sets)."""

    extractor: FeatureExtractor
    reference: Reference
    metrics: tuple[str, ...] = ("fid", "isc")
    batch_size: int = 100

    def __post_init__(self) -> None:
        used = {self.extractor.layers[m] for m in ("kid", "prc") if m in self.metrics}
        if used - {self.extractor.layers["fid"]}:
            raise AutonatError("KID and precision/recall must read the same features as FID")

    def score(self, images: ImageSet, state=None, progress: bool = True) -> dict[str, float]:
        """Metrics of ``images`` (on every process; the work is shared when ``state`` spans several)."""
        feats = embed(images, self.extractor, self.batch_size, state, progress, desc="evaluate")
        return compute_metrics(feats, self.reference, self.extractor.layers, self.metrics)


def make_record(metrics: dict, n: int, extractor: FeatureExtractor, reference: Reference, **extra) -> dict:
    """One results record: metrics, N, the feature extractor, the reference, and what made the images."""
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "metrics": metrics, "n": n, **extra,
            "feature_extractor": extractor.describe(), "reference": reference.describe()}


def append_record(path: str | Path, record: dict) -> None:
    """Append ``record`` as one JSON line (the file is rewritten atomically)."""
    append_line(path, json.dumps(record))


def evaluate_demo(pipeline, strategy, n: int = 1000, seed: int = 0, batch_size: int = 100,
                  metrics: Sequence[str] = ("fid", "isc"), progress: bool = True) -> dict[str, float]:
    """FID and IS of ``n`` class-balanced demo samples against the held-out digits, in the digit classifier's
    feature space. For ``autonat demo``: ``evaluate_demo(pipe, maskgit_cosine(8), 1000, 0)["fid"]``."""
    from .features import DIGITS, load_feature_extractor
    from .generate import balanced_labels

    extractor = load_feature_extractor(DIGITS, device=pipeline.device)
    reference = load_reference("demo:heldout", extractor, batch_size, progress=False)
    images = GeneratedImages(pipeline, strategy, balanced_labels(n, pipeline.num_classes), seed)
    return Evaluator(extractor, reference, tuple(metrics), batch_size).score(images, progress=progress)
