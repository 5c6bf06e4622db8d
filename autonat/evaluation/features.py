"""Feature extractors for FID / IS / KID / precision-recall, all through torch-fidelity.

Two extractors are offered, both created by torch-fidelity's own factory:

* ``inception-v3-compat``: torch-fidelity's TF-compatible Inception-v3, the
  network the papers' FID and IS use. Its weights never come from the network
  here: pass ``--inception-weights PATH`` (or keep the file in the torch hub
  cache, where torch-fidelity would have put it).
* ``autonat-digits``: the demo's digit classifier (:mod:`autonat.evaluation.digit_classifier`),
  registered with torch-fidelity as a feature extractor: penultimate features
  for FID, KID and precision/recall, logits for IS.

Extractors take uint8 images ``[B, 3, H, W]``, as torch-fidelity's do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import (
    FEATURE_EXTRACTORS_REGISTRY,
    register_feature_extractor,
)

from autonat.errors import AutonatError
from autonat.evaluation.domain import digit_domain_problem, warn_digit_features
from autonat.evaluation.names import ALIASES, DIGITS, INCEPTION, METRICS

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_FILE_FIDELITY = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's copy, same layout
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
INCEPTION_URL_FIDELITY = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                          f"{INCEPTION_FILE_FIDELITY}")


# --------------------------------------------------------------------------- the digit extractor
class DigitFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper of the demo digit classifier.

    Images are turned grey (channel mean) and resized to 32x32 when they are
    not already, then fed to the classifier. ``feature_extractor_weights_path``
    selects other weights than the shipped ones.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        from autonat.evaluation.digit_classifier import load_digit_classifier

        self.net = load_digit_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        from autonat.evaluation.digit_classifier import INPUT_SIZE

        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
        grey = x.float().div(255.0).mean(1, keepdim=True)
        if grey.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            grey = F.interpolate(grey, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                                 align_corners=False)
        penultimate, logits = self.net(grey)
        out = {"penultimate": penultimate.float(), "logits": logits.float()}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "penultimate", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "penultimate", "kid": "penultimate", "prc": "penultimate"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)


if DIGITS not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(DIGITS, DigitFeatureExtractor)


# --------------------------------------------------------------------------- Inception weights
def inception_candidates() -> list[Path]:
    """Where a previously downloaded copy may already sit: the torch hub checkpoint cache."""
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / INCEPTION_FILE, hub / INCEPTION_FILE_FIDELITY]


def find_inception_weights(path: str | Path | None) -> Path:
    """The local Inception weights file to use, or a clear error naming the file and its source."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise AutonatError(f"Inception weights not found at {path}: expected the file {INCEPTION_FILE}, "
                               f"published at {INCEPTION_URL}")
        return path
    for candidate in inception_candidates():
        if candidate.is_file():
            return candidate
    raise AutonatError(f"FID/IS with Inception need its weights, and nothing is downloaded at run time: get "
                       f"{INCEPTION_FILE} from {INCEPTION_URL} (torch-fidelity's {INCEPTION_FILE_FIDELITY}, "
                       f"from {INCEPTION_URL_FIDELITY}, works too) and pass --inception-weights PATH")


def check_inception_weights(path: Path) -> None:
    """Read the file as plain tensors first (``weights_only=True``), so no pickled code can run.

    torch-fidelity then loads it itself (with ``weights_only=False``), which is
    only safe once this check has passed.
    """
    from autonat.io.weights import read_state_dict

    state = read_state_dict(path)
    if not isinstance(state, dict) or "fc.weight" not in state or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise AutonatError(f"{path} is not an Inception-v3 state dict of torch-fidelity/pytorch-fid layout "
                           f"(expected {INCEPTION_FILE} from {INCEPTION_URL})")


def random_inception_state_dict() -> dict[str, torch.Tensor]:
    """Random-weight Inception-v3 of the layout torch-fidelity loads: for tests and timing only."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # keep the random init
            return None

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return _Unloaded("inception", ["2048"], feature_extractor_weights_path=str(empty)).state_dict()


# --------------------------------------------------------------------------- the extractor in use
@dataclass
class FeatureExtractor:
    """A torch-fidelity feature extractor and the layer each metric reads."""

    name: str
    module: FeatureExtractorBase
    layers: dict[str, str]  # metric ("fid", "isc", "kid", "prc") -> feature layer
    weights: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    warned: bool = field(default=False, repr=False)  # the digit-features warning is given once per extractor

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 ``[B, 3, H, W]`` -> ``{layer: float32 [B, D]}`` on the CPU."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise AutonatError(f"feature extractors take uint8 [B, 3, H, W] images, got {images.dtype} "
                               f"{tuple(images.shape)}")
        if self.name == DIGITS and not self.warned:
            self.warn_off_domain(digit_domain_problem(images))
        out = self.module(images.to(self.device))
        return {k: v.float().cpu() for k, v in self.module.convert_features_tuple_to_dict(out).items()}

    def warn_off_domain(self, reason: str | None) -> None:
        """Warn (once) that digit-classifier features of what ``reason`` names mean nothing; None: no warning."""
        if reason is not None and self.name == DIGITS and not self.warned:
            self.warned = True
            warn_digit_features(reason)

    def feature_dim(self, metric: str = "fid") -> int:
        """Width of the features ``metric`` reads (found by embedding one blank image)."""
        return self.embed(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))[self.layers[metric]].shape[1]

    def describe(self) -> dict:
        """What a results record says about the extractor; ``off_domain`` once the digit-features warning was given
        (the score then means nothing, and the record keeps saying so after the terminal is gone)."""
        off_domain = {"off_domain": True} if self.warned else {}
        return {"name": self.name, "weights": self.weights, "layers": dict(self.layers), **off_domain}


def resolve_name(name: str) -> str:
    """Canonical extractor name from a name or alias (``inception``, ``digits``)."""
    name = ALIASES.get(name, name)
    if name not in (INCEPTION, DIGITS):
        raise AutonatError(f"unknown feature extractor {name!r}; choose {INCEPTION} (alias inception) or "
                           f"{DIGITS} (alias digits, the demo's digit classifier)")
    return name


def load_feature_extractor(name: str, weights: str | Path | None = None,
                           device: str | torch.device = "cpu") -> FeatureExtractor:
    """Create ``name`` through torch-fidelity, from local weights only."""
    from torch_fidelity.utils import create_feature_extractor

    name = resolve_name(name)
    if name == INCEPTION:
        weights = find_inception_weights(weights)
        check_inception_weights(weights)
    cls = FEATURE_EXTRACTORS_REGISTRY[name]
    layers = {m: cls.get_default_feature_layer_for_metric(m) for m in METRICS}
    try:
        module = create_feature_extractor(name, sorted(set(layers.values())), cuda=False, verbose=False,
                                          feature_extractor_weights_path=None if weights is None else str(weights))
    except RuntimeError as exc:  # load_state_dict: missing/unexpected keys, wrong shapes
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])[:400]
        raise AutonatError(f"{weights} does not fit {name}: {detail}") from exc
    device = torch.device(device)
    label = str(weights) if weights is not None else "shipped (autonat/assets/digit_classifier)"
    return FeatureExtractor(name=name, module=module.to(device), layers=layers, weights=label, device=device)


def default_extractor_name(reference: str) -> str:
    """``auto``: the digit classifier for the built-in demo references, Inception otherwise."""
    from autonat.data.demo import is_demo_reference

    return DIGITS if is_demo_reference(reference) else INCEPTION
