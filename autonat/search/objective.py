"""The search objective: FID of a generator's samples under a strategy."""
from __future__ import annotations

# --------------------------------------------------------------------------- objective
_EVALUATORS: dict = {}


class FIDObjective:
    """``objective(strategy, seed) -> FID`` for one generator checkpoint.

    ``tokenizer``, ``tokenizer_config`` and ``precision`` load the pipeline as
    ``autonat sample`` does; ``options`` (decoding order, CFG batching) apply to every sample.
    """

    def __init__(self, checkpoint, reference: str, n_eval: int, feature_extractor: str = "auto",
                 weights: str | None = None, device: str = "cpu", batch_size: int = 100,
                 tokenizer: str | None = None, tokenizer_config: str | None = None, precision: str = "auto",
                 options=None) -> None:
        from autonat.evaluation.features import (
            default_extractor_name,
            load_feature_extractor,
            resolve_name,
        )
        from autonat.evaluation.metrics import Evaluator
        from autonat.evaluation.reference import load_reference
        from autonat.sampling.pipeline import Pipeline, balanced_labels

        name = default_extractor_name(reference) if feature_extractor == "auto" else resolve_name(feature_extractor)
        key = (str(reference), name, str(weights), str(device), batch_size)
        if key not in _EVALUATORS:  # trials of a training search share one reference
            extractor = load_feature_extractor(name, weights, device)
            ref = load_reference(reference, extractor, batch_size, progress=False)
            _EVALUATORS[key] = Evaluator(extractor, ref, ("fid",), batch_size)
        self.evaluator = _EVALUATORS[key]
        self.pipeline = Pipeline.load(checkpoint, tokenizer, tokenizer_config, device=device, precision=precision)
        self.options = options
        self.labels = balanced_labels(n_eval, self.pipeline.num_classes)
        self.n_eval = n_eval

    def __call__(self, strategy, seed: int) -> float:
        from autonat.evaluation.images import GeneratedImages

        images = GeneratedImages(self.pipeline, strategy, self.labels, seed, self.options)
        return float(self.evaluator.score(images, progress=False)["fid"])
