"""The names of the feature extractors and metrics, without loading either.

Nothing here imports torch or torch-fidelity, so the command line can offer
these names as choices; :mod:`autonat.evaluation.features` and
:mod:`autonat.evaluation.metrics` use them.
"""
INCEPTION = "inception-v3-compat"
DIGITS = "autonat-digits"
ALIASES = {"inception": INCEPTION, "digits": DIGITS}
EXTRACTORS = (INCEPTION, DIGITS)

METRICS = ("fid", "isc", "kid", "prc")
"""torch-fidelity's names: Frechet distance, Inception Score, kernel distance, precision-recall."""
METRIC_ALIASES = {"is": "isc", "pr": "prc", "precision-recall": "prc"}
