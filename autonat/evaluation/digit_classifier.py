"""The demo's digit classifier: a small CNN that stands in for Inception on MNIST digits.

Inception-v3 features say little about 32x32 grey digits and cost seconds per
batch on a CPU, so the demo measures FID and IS in the feature space of this
classifier instead (its penultimate layer for FID/KID/precision-recall, its
logits for IS; see :mod:`autonat.evaluation.features`). It is trained on the demo's
``train`` split only, with light affine augmentation; the ``heldout`` split is
used solely to report its accuracy, never to train or select it.

Its weights ship with the package as ``assets/digit_classifier/model.safetensors``
with ``info.json`` (architecture, training recipe, held-out accuracy). Rebuild
them with ``autonat train-digit-classifier``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from autonat import ASSETS
from autonat.errors import AutonatError
from autonat.io.atomic import atomic_dir
from autonat.io.weights import load_strict, read_state_dict, save_safetensors

ASSET_DIR = ASSETS / "digit_classifier"
WEIGHTS_FILE = "model.safetensors"
INFO_FILE = "info.json"
INPUT_SIZE = 32  # the demo digits: 28x28 MNIST zero-padded to 32x32


@dataclass
class DigitNetConfig:
    """Architecture: three conv stages (``width``, 2x, 4x channels) and a ``feature_dim`` embedding."""

    width: int = 16
    feature_dim: int = 128
    num_classes: int = 10


@dataclass
class DigitTrainConfig:
    """Recipe for training the classifier on the demo ``train`` split."""

    net: DigitNetConfig = field(default_factory=DigitNetConfig)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    dropout: float = 0.3
    rotate_degrees: float = 12.0  # augmentation: random rotation, scale and shift
    scale: float = 0.1
    shift: float = 0.1  # fraction of the half-width (0.1 -> 1.6 px at 32 px)
    seed: int = 0


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitNet(nn.Module):
    """Grey 32x32 images in [0, 1] ``[B, 1, 32, 32]`` -> (features ``[B, feature_dim]``, logits).

    The returned features are the penultimate activations times ``feature_scale``,
    a constant fixed after training so that their root-mean-square over the
    training digits is 1: KID's polynomial kernel ``(x.y / D + 1)^3`` assumes
    features of order one, as Inception's are.
    """

    def __init__(self, config: DigitNetConfig | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = config or DigitNetConfig()
        w = self.config.width
        self.body = nn.Sequential(
            _conv(1, w), _conv(w, w), nn.MaxPool2d(2),              # 16 x 16
            _conv(w, 2 * w), _conv(2 * w, 2 * w), nn.MaxPool2d(2),  # 8 x 8
            _conv(2 * w, 4 * w), nn.MaxPool2d(2), nn.Flatten(),     # 4 x 4
        )
        self.embed = nn.Sequential(nn.Linear(4 * w * 16, self.config.feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.config.feature_dim, self.config.num_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.embed(self.body((x - 0.5) / 0.5))
        return features * self.feature_scale, self.head(self.dropout(features))

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 500) -> None:
        """Set ``feature_scale`` so the features of ``images`` have unit root-mean-square."""
        self.eval()
        self.feature_scale.fill_(1.0)
        sq = sum(float(self(x)[0].pow(2).sum()) for x in images.split(batch_size))
        self.feature_scale.fill_((sq / (len(images) * self.config.feature_dim)) ** -0.5)


# --------------------------------------------------------------------------- data
def _grey(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A :class:`~autonat.data.demo.DemoDigits` split as ``([N, 1, 32, 32] in [0, 1], labels [N])``."""
    return dataset.images[:, :1].contiguous(), torch.as_tensor(dataset.labels, dtype=torch.long)


def augment(x: torch.Tensor, config: DigitTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random rotation, scale and shift of a batch (so generated digits, slightly off-centre, still read)."""
    b = len(x)
    u = lambda: torch.rand(b, generator=gen) * 2 - 1  # noqa: E731 - uniform in [-1, 1]
    angle = u() * math.radians(config.rotate_degrees)
    scale = 1 + u() * config.scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, u() * config.shift], 1),
                         torch.stack([sin, cos, u() * config.shift], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------- training
@torch.no_grad()
def accuracy(model: DigitNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` ([N, 1, 32, 32] in [0, 1]) classified as ``labels``."""
    model.eval()
    hits = sum(int((model(x)[1].argmax(1) == y).sum()) for x, y in zip(images.split(batch_size),
                                                                       labels.split(batch_size)))
    return hits / len(labels)


def train_digit_classifier(config: DigitTrainConfig) -> tuple[DigitNet, dict]:
    """Train on ``DemoDigits("train")``; report accuracy on ``DemoDigits("heldout")`` (never trained on)."""
    from autonat.data.demo import DemoDigits

    torch.manual_seed(config.seed)
    x, y = _grey(DemoDigits("train"))
    model = DigitNet(config.net, dropout=config.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(x) / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=steps)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.time()
    bar = tqdm(total=steps, desc="digit classifier", dynamic_ncols=True)
    for _ in range(config.epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(config.batch_size):
            loss = F.cross_entropy(model(augment(x[idx], config, gen))[1], y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.calibrate(x)
    hx, hy = _grey(DemoDigits("heldout"))
    report = {"heldout_accuracy": accuracy(model, hx, hy), "train_accuracy": accuracy(model, x, y),
              "heldout_images": len(hy), "train_images": len(y), "train_seconds": round(time.time() - t0, 1),
              "feature_scale": float(model.feature_scale)}
    return model.eval(), report


# --------------------------------------------------------------------------- files
KIND = "digit-classifier"


def is_digit_classifier_dir(path: str | Path) -> bool:
    """True if ``path`` holds digit-classifier weights (also ones written before output markers)."""
    try:
        return json.loads((Path(path) / INFO_FILE).read_text()).get("format") == "autonat-digit-classifier"
    except (OSError, ValueError, AttributeError):
        return False


def save_digit_classifier(model: DigitNet, out_dir: str | Path, config: DigitTrainConfig, report: dict) -> None:
    """Write ``model.safetensors`` and ``info.json`` atomically into ``out_dir``."""
    info = {"format": "autonat-digit-classifier", "version": 1, "net": asdict(model.config),
            "train": {**asdict(config), "split": "demo train"}, "report": report}
    with atomic_dir(out_dir, KIND, is_digit_classifier_dir) as tmp:
        save_safetensors(model.state_dict(), tmp / WEIGHTS_FILE, atomic=False)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")


def load_digit_classifier(path: str | Path | None = None) -> DigitNet:
    """Load the classifier from a directory (default: the shipped one) or a ``.safetensors`` file."""
    path = Path(path) if path is not None else ASSET_DIR
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.exists():
        raise AutonatError(f"digit classifier weights not found at {weights}; rebuild them with "
                           f"`autonat train-digit-classifier --out {path}`")
    info_file = weights.parent / INFO_FILE
    net = DigitNetConfig(**json.loads(info_file.read_text())["net"]) if info_file.exists() else DigitNetConfig()
    model = DigitNet(net)
    load_strict(model, read_state_dict(weights), what=f"digit classifier {weights}")
    return model.eval().requires_grad_(False)


def digit_classifier_info(path: str | Path | None = None) -> dict:
    """The ``info.json`` written beside the weights (empty when there is none)."""
    path = Path(path) if path is not None else ASSET_DIR
    info = (path if path.is_dir() else path.parent) / INFO_FILE
    return json.loads(info.read_text()) if info.exists() else {}
