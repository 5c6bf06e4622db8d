"""The typed recipe: every section of the recipe YAML as a frozen, validated dataclass.

A recipe is read once, by :func:`load_recipe` (a YAML file plus ``a.b=value``
overrides) or :func:`parse_recipe` (a mapping), into a :class:`RecipeFile`.
Every section present is checked before any work starts, whichever command
reads it: unknown sections and keys, value types, and ranges are one-line
errors naming the key (see :func:`autonat.io.config.build`). This module and
the section types it reads import no torch, so the commands check a recipe
before torch loads (a mistyped key fails in a fraction of a second).

Each command needs only some sections::

    train-tokenizer   data (source required), tokenizer (out_dir, or --out)
    tokenize          data (source required), tokenizer.out_dir (or --tokenizer), cache (or --out);
                      text.encoder (or --text-encoder) when data.captions is set
    train             cache, model, masking, optim, train (data and tokenizer are not read)
    search training   as train

``data.source`` has no default: ``source: demo`` names the built-in 32 px
digits, anything else an image folder with one subfolder per class, or,
with ``data.captions`` (a COCO ``captions_*.json`` or a JSONL caption
file), the folder the captions' image paths are relative to. A captioned
dataset is encoded with the text encoder ``text.encoder``, and the model
trained on its cache is text-conditional (its text width and length come
from the cache). A
missing optional section takes its defaults (``model``, ``masking``,
``optim``, ``train``, ``tokenizer``); ``data`` and ``cache`` must be written
out by the commands that read them.

The ``model`` section gives the generator's size only (a named size from
:data:`~autonat.generator.uvit.NAMED_SIZES` and/or ``width``, ``depth``,
``num_heads``, ``mlp_ratio``, ``dropout``); its codebook, token grid and
class count come from the token cache at train time
(:meth:`RecipeFile.training`), which gives the :class:`Recipe` the training
loop runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from autonat.data.sources import RESIZES, is_demo_source, source_image_size
from autonat.errors import AutonatError
from autonat.generator.config import NAMED_SIZES, UViTConfig
from autonat.io.atomic import check_output_dir
from autonat.io.config import (
    FieldError,
    apply_overrides,
    build,
    load_yaml,
    require_counts,
    require_fractions,
    require_nonnegative,
    require_positive,
)
from autonat.io.lock import LOCK_FILE
from autonat.runtime import warn_bf16_cpu
from autonat.tokenizers.config import TokenizerTrainConfig

if TYPE_CHECKING:
    from autonat.data.token_cache import TokenCache

MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")


# --------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class DataSection:
    """The images: ``demo`` (the built-in 32 px digits) or a folder ``source/<class>/<image>``."""

    source: str = field(metadata={"missing": "write `source: demo` for the built-in digits, or the path of an "
                                             "image folder with one subfolder per class"})
    image_size: int | None = None  # side in px after resize + centre crop; default: the tokenizer's resolution
    hflip: bool = False  # also encode the mirror image of every image (tokenize)
    captions: str | None = None  # a COCO captions_*.json or a JSONL of {"image", "caption"} (tokenize)
    crop: bool = True  # centre-crop to a square; false keeps non-square images whole (captioned data)
    resize: str = "bilinear"  # "bilinear" (antialiased), or "adm": box halving + bicubic, as the official ImageNet code

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise FieldError("source", "is empty; write `demo` or the path of an image folder")
        if self.captions is not None and (not self.captions.strip() or is_demo_source(self.source)):
            raise FieldError("captions", "needs an image folder as data.source and the path of a caption file "
                                         "(.json COCO captions or .jsonl)")
        if not self.crop and self.captions is None:
            raise FieldError("crop", "false is for captioned data (data.captions); class folders are cropped")
        require_counts(self, "image_size")
        if self.resize not in RESIZES:
            raise FieldError("resize", f"unknown policy {self.resize!r}; choose one of {', '.join(RESIZES)}")
        size = source_image_size(self.source, self.image_size)
        if self.image_size is not None and self.image_size != size:
            raise FieldError("image_size", f"the demo digits are {size} px, got {self.image_size}; "
                                           f"remove image_size or set it to {size}")

    @property
    def is_demo(self) -> bool:
        return is_demo_source(self.source)


@dataclass(frozen=True)
class TokenizerSection(TokenizerTrainConfig):
    """``tokenizer:``: where the tokenizer lives (``out_dir``) and how ``train-tokenizer`` trains it."""

    out_dir: str | None = None

    def train_config(self) -> TokenizerTrainConfig:
        """The training settings alone (what the tokenizer records about its training)."""
        return TokenizerTrainConfig(**{f.name: getattr(self, f.name) for f in fields(TokenizerTrainConfig)})


@dataclass(frozen=True)
class ModelSection:
    """``model:``: the generator's size; defaults, then the named ``size``, then the fields given."""

    size: str | None = None  # one of NAMED_SIZES (case-insensitive)
    width: int | None = None
    depth: int | None = None  # blocks of the two halves; depth + 1 blocks in all
    num_heads: int | None = None
    mlp_ratio: float | None = None
    dropout: float | None = None

    def __post_init__(self) -> None:
        if self.size is not None and self.size.lower() not in NAMED_SIZES:
            raise FieldError("size", f"unknown size {self.size!r}; choose one of {', '.join(sorted(NAMED_SIZES))}")
        require_counts(self, "width", "depth", "num_heads")
        require_positive(self, "mlp_ratio")
        require_fractions(self, "dropout")
        arch = self.architecture()
        if arch["depth"] % 2:
            raise FieldError("depth", f"must be even (two halves around a middle block), got {arch['depth']}")
        if arch["width"] % arch["num_heads"]:
            raise FieldError("width", f"{arch['width']} is not divisible by num_heads {arch['num_heads']}")

    def architecture(self) -> dict:
        """The :class:`UViTConfig` fields this section sets (all but the cache's codebook, grid and classes)."""
        defaults = {f.name: f.default for f in fields(UViTConfig)}
        named = NAMED_SIZES[self.size.lower()] if self.size is not None else {}
        given = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "size"}
        arch = {**defaults, **named, **{k: v for k, v in given.items() if v is not None}}
        return {k: arch[k] for k in given}

    def config(self, cache: TokenCache) -> UViTConfig:
        """The full architecture: this section plus the token cache's codebook, grid and class count
        (or, for a captioned cache, its text encoder's width and length)."""
        if cache.is_text:
            enc = cache.captions.encoder
            text = dict(num_classes=0, text_width=int(enc["width"]), text_length=int(enc["max_length"]))
        else:
            text = dict(num_classes=cache.num_classes)
        return UViTConfig(**self.architecture(), codebook_size=cache.codebook_size, grid=tuple(cache.grid), **text)


@dataclass(frozen=True)
class TextSection:
    """``text:``: the text encoder of a captioned dataset (a spec for :func:`autonat.text.load_text_encoder`).

    ``tokenize`` encodes the captions with it; ``train`` checks that the
    cache was made by it (name with weights fingerprint, width, length).
    """

    encoder: str = field(metadata={"missing": "name the text encoder, e.g. `encoder: minilm` or the folder of a "
                                              "CLIP text model"})

    def __post_init__(self) -> None:
        if not self.encoder.strip():
            raise FieldError("encoder", "is empty; name the text encoder")


@dataclass(frozen=True)
class MaskingConfig:
    """``masking:``: the mask-ratio distribution Beta(``alpha``, ``beta``) and the loss settings (the training
    strategy, applied by :mod:`autonat.training.masking`)."""

    alpha: float = 12.0
    beta: float = 3.0
    label_smoothing: float = 0.1
    p_uncond: float = 0.15

    def __post_init__(self) -> None:
        require_positive(self, "alpha", "beta")  # the Beta distribution's parameters
        require_fractions(self, "label_smoothing")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise FieldError("p_uncond", f"must be in [0, 1], got {self.p_uncond}")

    @property
    def mean_ratio(self) -> float:
        return self.alpha / (self.alpha + self.beta)


WARMUPS = ("ours", "official")
"""Learning-rate warm-up formulas (:func:`autonat.training.loop.learning_rate`)."""


@dataclass(frozen=True)
class OptimConfig:
    """``optim:``: AdamW with linear warm-up to ``lr`` then a constant rate, and gradient clipping.

    ``warmup``: ``ours`` (the default) trains step ``s`` (from 0) at
    ``lr * min(1, (s + 1) / warmup_steps)``, so no step is wasted at rate 0;
    ``official`` is the official train.py's schedule exactly,
    ``lr * min(1, max(s - 1, 0) / warmup_steps)`` (its LambdaLR is stepped
    with the step just taken, after the update, so steps 0 and 1 run at 0).
    ``grad_clip``: the largest global gradient norm (gradients are scaled
    down to it); ``null`` clips none, as the official recipe.
    """

    lr: float = 4e-4
    betas: tuple[float, float] = (0.99, 0.99)
    weight_decay: float = 0.03
    warmup_steps: int = 5000
    warmup: str = "ours"
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        require_positive(self, "lr", "grad_clip")
        require_nonnegative(self, "weight_decay", "warmup_steps")
        require_fractions(self, "betas")
        if self.warmup not in WARMUPS:
            raise FieldError("warmup", f"unknown formula {self.warmup!r}; choose one of {', '.join(WARMUPS)}")


@dataclass(frozen=True)
class TrainConfig:
    """``train:``: the run's length, batch, EMA, checkpoints, log and output folder.

    ``ema_warmup``: the EMA decay at step ``s`` is ``min(ema_decay, (1 + s) / (10 + s))``
    (the default, so the first weights do not linger in the average), or,
    ``false``, the constant ``ema_decay`` of the official recipe
    (:func:`autonat.training.loop.ema_decay_at`).
    """

    out_dir: str = "runs/generator"
    steps: int = 10000
    batch_size: int = 256  # global batch, split across processes (the loop checks it divides evenly)
    grad_accum_steps: int = 1  # micro-batches per process per step; their gradients add up to the global batch's
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2  # 0 keeps them all
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA with bf16 support, else "no"), "no", "bf16", "fp16"
    resume: bool = True
    init: str | None = None  # a generator checkpoint to start from (autonat.generator.warm_start); resuming wins

    def __post_init__(self) -> None:
        if not self.out_dir.strip():
            raise FieldError("out_dir", "is empty; name the folder the run writes")
        require_counts(self, "steps", "batch_size", "grad_accum_steps", "checkpoint_every", "log_every")
        require_nonnegative(self, "keep_checkpoints", "seed")
        require_fractions(self, "ema_decay")
        if self.init is not None and not self.init.strip():
            raise FieldError("init", "is empty; name a generator checkpoint folder, or leave init out")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise FieldError("mixed_precision", f"unknown value {self.mixed_precision!r}; choose one of "
                                                f"{', '.join(MIXED_PRECISIONS)}")


# --------------------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class Recipe:
    """Everything :func:`autonat.training.loop.train` needs: the model shape completed from the cache."""

    cache: str
    model: UViTConfig
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    text: TextSection | None = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_NEEDED = {
    "data": "`data: {source: demo}` for the built-in digits, or `source:` an image folder",
    "cache": "`cache:` the folder of a token cache written by `autonat tokenize`",
}


@dataclass(frozen=True)
class RecipeFile:
    """A whole recipe file, every section parsed and checked (see the module docstring for who reads what)."""

    data: DataSection | None = None
    text: TextSection | None = None
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    cache: str | None = None  # the token cache: written by `tokenize`, read by `train`
    model: ModelSection = field(default_factory=ModelSection)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def need(self, section: str, command: str):
        """The value of ``section``, or an error saying that ``autonat command`` needs it."""
        value = getattr(self, section)
        if value is None:
            raise AutonatError(f"`autonat {command}` needs {section} in the recipe: {_NEEDED[section]}")
        return value

    def tokenizer_image_size(self) -> int:
        """The image side ``train-tokenizer`` uses: the data's, which must be ``tokenizer.vqgan.resolution``."""
        data, resolution = self.need("data", "train-tokenizer"), self.tokenizer.vqgan.resolution
        size = source_image_size(data.source, data.image_size) or resolution
        if size != resolution:
            key = "the demo digits are" if data.is_demo else "data.image_size is"
            raise AutonatError(f"{key} {size} px but tokenizer.vqgan.resolution is {resolution}: "
                               f"make them equal (the tokenizer encodes {resolution} px images)")
        return size

    def training(self) -> Recipe:
        """The generator-training :class:`Recipe`: reads the token cache and checks ``train.out_dir``."""
        from autonat.data.token_cache import read_token_cache

        cache = self.need("cache", "train")
        check_run_output(self.train.out_dir)
        model = self.model.config(read_token_cache(cache))
        return Recipe(cache=cache, model=model, masking=self.masking, text=self.text, optim=self.optim,
                      train=self.train)


def parse_recipe(d: dict) -> RecipeFile:
    """Every section of a recipe mapping, checked (unknown sections and keys, types, ranges)."""
    return build(RecipeFile, d)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RecipeFile:
    """The recipe YAML at ``path`` with ``a.b=value`` overrides applied, parsed and checked."""
    return parse_recipe(apply_overrides(load_yaml(path), list(overrides)))


def recipe_from_dict(d: dict) -> Recipe:
    """The generator-training :class:`Recipe` of a recipe mapping (``train``, the training-strategy search)."""
    return parse_recipe(d).training()


# --------------------------------------------------------------------------- the run folder
RUN_KIND = "training run"
RUN_FILES = ("recipe.json", "log.csv", "checkpoints", "state", "cache.json", LOCK_FILE)


def is_run_dir(path: str | Path) -> bool:
    """True if ``path`` holds (part of) a training run: its recipe, log, checkpoints or states."""
    return any((Path(path) / name).exists() for name in RUN_FILES)


def check_run_output(path: str | Path) -> Path:
    """Refuse, before any work, a ``train.out_dir`` that is neither new, empty, nor a training run of ours."""
    return check_output_dir(path, RUN_KIND, is_run_dir)


# --------------------------------------------------------------------------- start-of-run summaries
def training_summary(recipe: Recipe, items: int, parameters: int, processes: int, device) -> str:
    """One line saying what ``train`` is about to do."""
    m, t = recipe.model, recipe.train
    return (f"train: data {recipe.cache} ({items} items, {m.grid[0]}x{m.grid[1]} tokens, codebook "
            f"{m.codebook_size}); model {parameters / 1e6:.2f}M parameters (width {m.width}, {m.depth}+1 blocks); "
            f"{processes} process(es) on {device}; {t.steps} steps of global batch {t.batch_size}; "
            f"output {t.out_dir}")


def tokenizer_summary(source: str, images: int, image_size: int, config: TokenizerTrainConfig,
                      out_dir: str | Path) -> str:
    """One line saying what ``train-tokenizer`` is about to do."""
    vq = config.vqgan
    grid = image_size // vq.downsample
    return (f"train-tokenizer: data {source} ({images} images, {image_size} px); codebook {vq.n_embed} codes "
            f"of {vq.embed_dim} dims, {grid}x{grid} tokens per image; {config.steps} steps of batch "
            f"{config.batch_size}; output {out_dir}")


def resolve_mixed_precision(name: str) -> str:
    """accelerate's ``mixed_precision`` for a recipe value.

    ``auto`` is bf16 autocast on CUDA devices that support it (1.6-1.8x the
    fp32 step in benchmarks/bench_training.py) and full precision elsewhere,
    so CPU runs stay exactly reproducible. ``bf16`` on a CPU (training runs
    on the CPU when there is no CUDA) without bf16 instructions is kept but
    warned about: a step there is tens of times slower than in fp32.
    """
    import torch

    if name not in MIXED_PRECISIONS:
        raise AutonatError(f"unknown train.mixed_precision {name!r}; choose one of {', '.join(MIXED_PRECISIONS)}")
    if name == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    if name == "bf16" and not torch.cuda.is_available():
        warn_bf16_cpu("training", "use train.mixed_precision=no (or auto, full precision on a CPU)")
    return name
