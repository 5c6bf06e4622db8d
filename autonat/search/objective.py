"""The search objective: FID (or KID) of a generator's samples under a strategy."""
from __future__ import annotations

from pathlib import Path

from autonat.errors import AutonatError

# --------------------------------------------------------------------------- objective
_EVALUATORS: dict = {}


def reference_identity(reference: str | Path) -> str:
    """How a search records its FID reference: the absolute path of a file or folder, else the name (``demo:train``)."""
    return str(Path(reference).resolve()) if Path(reference).exists() else str(reference)


def objective_inputs(checkpoint: str | Path, reference: str | Path, captions: str | Path | None = None) -> dict:
    """What an FID objective is made from: the checkpoint (path and weights' fingerprint), the reference, and
    for a text-conditional generator the caption file it samples captions from (path and content hash)."""
    from autonat.generator.checkpoint import WEIGHTS_FILE, read_generator_config
    from autonat.io.diffusers_folder import amused_weights, is_amused_folder
    from autonat.tokenizers.base import fingerprint

    if is_amused_folder(checkpoint):
        weights = amused_weights(checkpoint)
    else:
        read_generator_config(checkpoint)  # a mistyped checkpoint is named before a search compares its inputs
        weights = Path(checkpoint) / WEIGHTS_FILE  # missing: loading the checkpoint says so in one line
    inputs = {"checkpoint": str(Path(checkpoint).resolve()),
              "checkpoint_fingerprint": fingerprint(weights) if weights.is_file() else None,
              "reference": reference_identity(reference)}
    if captions is not None:
        from autonat.io.identity import file_sha256

        found = Path(captions)
        inputs["captions"] = {"path": str(found.resolve()),
                              "sha256": file_sha256(found)[:16] if found.is_file() else None}
    return inputs


OBJECTIVE_METRICS = ("fid", "kid")


class FIDObjective:
    """``objective(strategy, seed) -> FID`` (or KID) for one generator checkpoint.

    ``tokenizer``, ``tokenizer_config`` and ``precision`` load the pipeline as
    ``autonat sample`` does; ``options`` (decoding order, CFG batching) apply to every sample.
    ``metric="kid"`` scores the unbiased kernel inception distance (mean over
    torch-fidelity's subsets) instead: FID is biased upwards at small N, by an
    amount that depends on the strategy's sample diversity, KID is not.
    A text-conditional generator samples ``n_eval`` captions of the caption
    file ``captions`` once (:meth:`~autonat.sampling.pipeline.Pipeline.eval_labels`):
    every strategy is scored on the same captions, as on the same classes.
    """

    def __init__(self, checkpoint, reference: str, n_eval: int, feature_extractor: str = "auto",
                 weights: str | None = None, device: str = "cpu", batch_size: int = 100,
                 tokenizer: str | None = None, tokenizer_config: str | None = None, precision: str = "auto",
                 options=None, force: bool = False, metric: str = "fid", captions: str | None = None,
                 text_encoder: str | None = None) -> None:
        from autonat.evaluation.domain import is_demo_model
        from autonat.evaluation.features import DIGITS, load_feature_extractor
        from autonat.evaluation.metrics import Evaluator
        from autonat.evaluation.reference import choose_extractor, load_reference
        from autonat.sampling.pipeline import Pipeline

        if n_eval < 2:
            raise AutonatError(f"--n-eval must be at least 2 (FID needs 2 images), got {n_eval}")
        if metric not in OBJECTIVE_METRICS:
            raise AutonatError(f"unknown search metric {metric!r}; choose {' or '.join(OBJECTIVE_METRICS)}")
        # the checkpoint first: a wrong path fails before the feature extractor and reference load
        self.pipeline = Pipeline.load(checkpoint, tokenizer, tokenizer_config, device=device, precision=precision,
                                      force=force, text_encoder=text_encoder)
        name = choose_extractor(feature_extractor, reference)
        key = (str(reference), name, str(weights), str(device), batch_size, metric)
        if key not in _EVALUATORS:  # trials of a training search share one reference
            extractor = load_feature_extractor(name, weights, device)
            ref = load_reference(reference, extractor, batch_size, progress=False)
            _EVALUATORS[key] = Evaluator(extractor, ref, (metric,), batch_size)
        self.evaluator = _EVALUATORS[key]
        if name == DIGITS and not is_demo_model(checkpoint):
            self.evaluator.extractor.warn_off_domain(f"samples of {checkpoint}, which was not trained on the "
                                                     "demo digits")
        self.options = options
        self.labels = self.pipeline.eval_labels(n_eval, captions)
        self.n_eval, self.metric = n_eval, metric

    def __call__(self, strategy, seed: int) -> float:
        from autonat.evaluation.images import GeneratedImages

        images = GeneratedImages(self.pipeline, strategy, self.labels, seed, self.options)
        scores = self.evaluator.score(images, progress=False)
        return float(scores["kid_mean"] if self.metric == "kid" else scores["fid"])
