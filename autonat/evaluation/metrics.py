"""FID / IS / KID / precision-recall from features, through torch-fidelity."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from autonat.errors import AutonatError, misspellings
from autonat.evaluation.embed import embed
from autonat.evaluation.features import FeatureExtractor
from autonat.evaluation.images import GeneratedImages, ImageSet
from autonat.evaluation.names import METRIC_ALIASES, METRICS
from autonat.evaluation.reference import Reference, load_reference
from autonat.io.atomic import append_line

KID_SUBSET = 1000  # torch-fidelity's default kid_subset_size


# --------------------------------------------------------------------------- metrics
OFFERED = ("fid", "is", "kid", "pr")  # the names --metrics offers (``is`` and ``pr`` are aliases of isc and prc)


def parse_metrics(requested: str | Sequence[str] | None, reference: Reference) -> tuple[str, ...]:
    """Metric names to compute: all the reference allows by default (KID and PR need reference features)."""
    if requested is None:
        return METRICS if reference.features is not None else ("fid", "isc")
    names = requested.split(",") if isinstance(requested, str) else list(requested)
    names = [METRIC_ALIASES.get(m.strip().lower(), m.strip().lower()) for m in names if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    offered = ", ".join(OFFERED)
    if not names:
        raise AutonatError(f"--metrics names no metric; choose from {offered} (or leave it out for all)")
    if unknown:
        guesses = [f"{m} -> {meant}" for m, meant in misspellings(unknown, OFFERED)]
        guess = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        raise AutonatError(f"unknown metric(s) {unknown}{guess}; choose from {offered}")
    need_features = [m for m in names if m in ("kid", "prc")]
    if need_features and reference.features is None:
        raise AutonatError(f"{', '.join(need_features)} need the reference images, but {reference.source} holds "
                           "only statistics; give a folder or an .npz of images as the reference")
    return tuple(dict.fromkeys(names))


def compute_metrics(features: dict[str, torch.Tensor], reference: Reference, layers: dict[str, str],
                    metrics: Sequence[str] = METRICS, rng_seed: int = 2020) -> dict[str, float]:
    """torch-fidelity's metrics of ``features`` against ``reference``."""
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )
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
        size = kid_subset_size(len(gen), len(reference.features))
        r = kid_features_to_metric(features[layers["kid"]], reference.features, kid_subset_size=size,
                                   rng_seed=rng_seed, verbose=False)
        out["kid_mean"], out["kid_std"], out["kid_subset_size"] = (r["kernel_inception_distance_mean"],
                                                                   r["kernel_inception_distance_std"], size)
    if "prc" in metrics:
        r = prc_features_to_metric(features[layers["prc"]], reference.features, save_cpu_ram=True, verbose=False)
        out.update(precision=r["precision"], recall=r["recall"], f_score=r["f_score"])
    return out


def kid_subset_size(generated: int, reference: int, standard: int = KID_SUBSET) -> int:
    """KID's subset size: the standard 1000, or fewer with a note naming the number used (KIDs of
    different subset sizes are not comparable, so the lowering is never silent)."""
    size = min(standard, generated, reference)
    if size < standard:
        print(f"autonat: note: KID uses subsets of {size} images, not {standard} ({generated} evaluated, {reference} "
              f"reference images); compare it only with KIDs of subsets of {size}", file=sys.stderr, flush=True)
    return size


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
    from autonat.evaluation.features import DIGITS, load_feature_extractor
    from autonat.sampling.pipeline import balanced_labels

    extractor = load_feature_extractor(DIGITS, device=pipeline.device)
    reference = load_reference("demo:heldout", extractor, batch_size, progress=False)
    images = GeneratedImages(pipeline, strategy, balanced_labels(n, pipeline.num_classes), seed)
    return Evaluator(extractor, reference, tuple(metrics), batch_size).score(images, progress=progress)
