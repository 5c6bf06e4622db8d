"""Where the demo's yardsticks mean something: the ``demo:train`` reference and digit-classifier features.

Both describe the demo's MNIST digits only. FID against ``demo:train`` of a
model trained on other images, or digit-classifier features of colour photos,
is a number without meaning, so neither is used without a word:

* a generator is *the demo's kind of model* when it was trained on the demo
  digits: the token cache recorded in its checkpoint says ``source: demo``.
  When that cache is not on this machine (the shipped demo model), the
  checkpoint must use the shipped demo tokenizer (same content fingerprint)
  and have the demo's 10 classes. A cache that names another source decides
  "no" even with the demo tokenizer.
* images *look like the demo digits* when they are 32x32 and grey: the mean
  spread between their colour channels is at most :data:`GREY_SPREAD` levels
  of 255 (the demo model's decoded digits spread about 2.4).
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import torch

from autonat.data.demo import DEMO_TOKENIZER, DemoDigits
from autonat.data.sources import DEMO_IMAGE_SIZE, is_demo_source
from autonat.errors import AutonatError

DEMO_REFERENCE = "demo:train"
GREY_SPREAD = 8.0


# --------------------------------------------------------------------------- models
def cache_is_demo(cache: str | Path) -> bool | None:
    """True/False from a token cache's recorded ``source``; None when the cache or its record is missing."""
    try:
        source = json.loads((Path(cache) / "meta.json").read_text()).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return None if source is None else is_demo_source(source)


@functools.cache
def demo_tokenizer_fingerprint() -> str | None:
    from autonat.tokenizers.base import fingerprint

    try:
        return fingerprint(DEMO_TOKENIZER)
    except OSError:
        return None


def is_demo_model(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` is a generator of the demo digits (the rule in the module docstring)."""
    from autonat.generator.checkpoint import read_generator_config
    from autonat.io.diffusers_folder import is_amused_folder

    if is_amused_folder(checkpoint):
        return False  # aMUSEd: text-to-image on web photos
    info = read_generator_config(checkpoint)
    cache = (info.get("training") or {}).get("cache")
    verdict = cache_is_demo(cache) if cache else None
    if verdict is not None:
        return verdict
    recorded = (info.get("tokenizer") or {}).get("fingerprint")
    classes = (info.get("model") or {}).get("num_classes")
    return recorded is not None and recorded == demo_tokenizer_fingerprint() and classes == DemoDigits.num_classes


def recipe_is_demo(recipe: dict) -> bool:
    """Whether a training recipe trains on the demo digits: its token cache's source, else ``data.source``."""
    verdict = cache_is_demo(recipe["cache"]) if recipe.get("cache") else None
    if verdict is not None:
        return verdict
    data = recipe.get("data")
    return isinstance(data, dict) and is_demo_source(data.get("source"))


def choose_reference(reference: str | None, demo_model: bool, model: str) -> str:
    """``reference`` when given; :data:`DEMO_REFERENCE` by default only for the demo's kind of model."""
    if reference is not None:
        return reference
    if demo_model:
        return DEMO_REFERENCE
    raise AutonatError(f"{model} was not trained on the demo digits, so {DEMO_REFERENCE} is no reference for it; "
                       "pass --reference (statistics .npz, images .npz or a folder of the real images)")


# --------------------------------------------------------------------------- images
def digit_domain_problem(images: torch.Tensor) -> str | None:
    """Why uint8 ``[B, 3, H, W]`` images are not like the demo digits, or None when they are."""
    h, w = images.shape[-2:]
    if (h, w) != (DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE):
        return f"{h}x{w} images"
    channels = images.to(torch.int16)
    spread = (channels.amax(1) - channels.amin(1)).float().mean().item()
    if spread > GREY_SPREAD:
        return f"colour images (mean channel spread {spread:.0f} of 255)"
    return None


def warn_digit_features(reason: str) -> None:
    """The one-line warning that a digit-classifier FID means nothing for these images."""
    print(f"autonat: warning: digit-classifier features on {reason}: they describe the demo's 32x32 grey digits "
          "only, so this FID means nothing here; use --feature-extractor inception --inception-weights PATH",
          file=sys.stderr, flush=True)
