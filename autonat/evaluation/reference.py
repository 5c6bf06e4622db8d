"""Reference statistics: the real images FID, KID and precision-recall compare against."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from autonat.data.demo import is_demo_reference
from autonat.errors import AutonatError
from autonat.evaluation.embed import embed
from autonat.evaluation.features import (
    FeatureExtractor,
    default_extractor_name,
    resolve_name,
)
from autonat.evaluation.images import check_source_exists, npz_kind, open_images, open_npz
from autonat.io.atomic import atomic_path


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
    return reference_from_array(features[extractor.layers["fid"]], extractor.name, source)


def reference_from_array(f: torch.Tensor, extractor: str, source: str) -> Reference:
    """The reference of images whose FID features ``[N, D]`` are ``f`` (in the feature space named ``extractor``)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    stats = fid_features_to_statistics(f.double())
    return Reference(mu=stats["mu"], sigma=stats["sigma"], source=source, kind="images", extractor=extractor,
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


def recorded_extractor(source: str | Path) -> str | None:
    """The feature extractor a statistics ``.npz`` records (:func:`save_statistics`); None for other sources."""
    path = Path(str(source))
    if is_demo_reference(source) or not path.is_file():
        return None
    with open_npz(path) as z:
        if npz_kind(z, path) != "statistics" or "feature_extractor" not in z.files:
            return None
        return resolve_name(str(z["feature_extractor"]))


def choose_extractor(requested: str, reference: str | Path) -> str:
    """The extractor to score against ``reference`` with: ``auto`` takes the one its statistics record.

    Without a record, ``auto`` means the digit classifier for ``demo:<split>`` and
    Inception otherwise. An explicit extractor other than the recorded one is an
    error: features of two extractors cannot be compared.
    """
    check_source_exists(reference)  # a missing file is named before any talk of extractors and their weights
    recorded = recorded_extractor(reference)
    if requested == "auto":
        return recorded or default_extractor_name(reference)
    name = resolve_name(requested)
    if recorded is not None and recorded != name:
        raise AutonatError(f"{reference} holds {recorded} statistics but --feature-extractor is {name}, and features "
                           f"of two extractors cannot be compared; use --feature-extractor auto, or recompute the "
                           f"statistics with `autonat fid-stats --feature-extractor {name}`")
    return name


def load_reference(source: str | Path, extractor: FeatureExtractor, batch_size: int = 100, state=None,
                   progress: bool = True) -> Reference:
    """Reference statistics from a statistics ``.npz``, an images ``.npz``, a folder, or ``demo:<split>``."""
    path = Path(str(source))
    if not is_demo_reference(source) and path.is_file():
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
