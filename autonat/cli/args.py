"""Argument groups shared by several subcommands, defined once.

``sample``, ``eval`` and ``search generation`` take the same generator,
strategy, sampling and device flags (same names, choices and defaults); every
command that scores images takes the same feature-extractor flags. Choices
come from the library's own torch-free definitions, so building the parser
loads neither torch nor torchvision.
"""
from __future__ import annotations

import argparse
import re
import sys

from autonat.errors import closest, misspellings
from autonat.evaluation.names import ALIASES, DIGITS, INCEPTION
from autonat.runtime import DEVICE_CHOICES
from autonat.sampling.options import CFG_BATCHING, OFFICIAL_TEMPERATURE_FLOOR, ORDERS, PRECISIONS


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``autonat sample: error: ... (see --help)``.

    Each (sub)command's parser records itself as ``args.command_parser`` (the innermost wins), so an
    unknown flag is reported by the command it was given to, with that command's help.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)
        self._given: list[str] = []

    def parse_known_args(self, args=None, namespace=None):
        # kept for error(): a subcommand's parser is called with the words after the subcommand's name
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        """One line. A missing required flag is often a mistyped one (``--checkpiont x``): name the typo first."""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:  # a mistyped subcommand or choice: name the one meant, as for flags
            close = closest(choice[1], [name.strip().strip("'") for name in choice[2].split(",")])
            message += f"; did you mean {close!r}?" if close else ""
        required = "the following arguments are required: "
        if message.startswith(required):
            typos = self._typos([w for w in self._given if w.startswith("--") and w != "--"])
            if typos:
                message = f"{typos} (missing: {message[len(required):]})"
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)

    def _known_flags(self) -> list[str]:
        return [o for action in self._actions for o in action.option_strings if o.startswith("--")]

    def _typos(self, words: list[str]) -> str:
        """``unrecognized arguments: ...; did you mean --a -> --b?`` for the ``--flags`` among ``words`` that this
        parser does not take (a ``--flag=value`` by its name), or "" when it takes them all."""
        known = self._known_flags()

        def taken(flag: str) -> bool:  # argparse also takes a unique abbreviation (--check for --checkpoint)
            return flag in known or (self.allow_abbrev and sum(k.startswith(flag) for k in known) == 1)

        unknown = [w for w in words if not (w.startswith("--") and taken(w.split("=", 1)[0]))]
        flags = [u.split("=", 1)[0] for u in unknown if u.startswith("--")]
        hints = [f"{flag} -> {meant}" for flag, meant in misspellings(flags, known, cutoff=0.75)]
        hint = f"; did you mean {', '.join(hints)}?" if hints else ""
        return f"unrecognized arguments: {' '.join(unknown)}{hint}" if unknown else ""

    def reject_unknown(self, unknown: list[str]):
        """Refuse flags this command does not take, naming the closest flag it does take for each typo."""
        self.error(self._typos(unknown) or f"unrecognized arguments: {' '.join(unknown)}")


def schedule_name(text: str) -> str:
    """argparse type of ``--schedule``: a name of :data:`autonat.strategy.zoo.BUILDERS`.

    A type rather than ``choices``: the zoo needs numpy, and argparse reads
    ``choices`` whenever it formats the help; a type is called only on a value.
    """
    from autonat.strategy.zoo import BUILDERS, name_hint

    if text not in BUILDERS:
        raise argparse.ArgumentTypeError(f"unknown schedule {text!r}{name_hint(text)}")
    return text


def positive_int(text: str) -> int:
    """argparse type of a count (samples, batch sizes, steps, iterations): a whole number >= 1."""
    return _whole_number(text, least=1)


def nonnegative_int(text: str) -> int:
    """argparse type of a count where 0 means none (``--eval-samples``, ``--noise-seeds``): a whole number >= 0."""
    return _whole_number(text, least=0)


def nonnegative_float(text: str) -> float:
    """argparse type of a price or weight that cannot be negative: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """``--config recipe.yaml`` and ``key.sub=value`` overrides."""
    p.add_argument("--config", required=True, help="recipe YAML, e.g. configs/demo_mnist.yaml")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the recipe")


def read_recipe(args) -> dict:
    """The recipe named by ``--config`` with the overrides applied."""
    from autonat.io.config import apply_overrides, load_yaml

    return apply_overrides(load_yaml(args.config), args.overrides)


def add_device_argument(p: argparse.ArgumentParser) -> None:
    """``--device``; None asks for CUDA when present, else the CPU (each process's own under accelerate)."""
    p.add_argument("--device", default=None,
                   help=f"{DEVICE_CHOICES} (default: CUDA when present, else the CPU; under accelerate, "
                        "each process's own)")


def add_checkpoint_argument(p, required: bool = True) -> None:
    """``--checkpoint`` (``p`` may be a mutually exclusive group)."""
    p.add_argument("--checkpoint", required=required, help="generator checkpoint directory")


def add_generator_arguments(p: argparse.ArgumentParser) -> None:
    """Where the tokenizer comes from (the generator's ``--checkpoint`` is added by the command)."""
    p.add_argument("--tokenizer", help="tokenizer (default: the one recorded in the checkpoint)")
    p.add_argument("--tokenizer-config", help="YAML/JSON for a taming tokenizer checkpoint")
    p.add_argument("--text-encoder", metavar="SPEC",
                   help="text encoder of a text-conditional checkpoint (default: the one it records; it must be "
                        "the same encoder)")


def add_caption_file_argument(p: argparse.ArgumentParser) -> None:
    """``--captions FILE``: what a text-conditional generator is scored on."""
    p.add_argument("--captions", metavar="FILE",
                   help="text-conditional checkpoints: captions to generate from, one image per caption (COCO "
                        "captions .json, .jsonl, or .txt one a line; N images drawn at random, one caption each)")


def add_strategy_arguments(p: argparse.ArgumentParser, schedule_default: str = "cosine") -> None:
    """``--strategy FILE`` or ``--schedule NAME --steps T``, and ``--cfg`` (see :mod:`autonat.strategy.choice`)."""
    p.add_argument("--strategy", help="strategy YAML (ours or an official AutoNAT file)")
    p.add_argument("--schedule", type=schedule_name, metavar="NAME",
                   help=f"named schedule when no --strategy (default {schedule_default}; the names: "
                        "`autonat strategy list`)")
    p.add_argument("--steps", type=positive_int, help="steps T of a named schedule (default 8; a file's own otherwise)")
    p.add_argument("--cfg", type=float, help="constant CFG scale s overriding the strategy's: logits = cond + "
                   "s (cond - uncond); 0 runs the conditional pass alone, -1 gives the unconditional logits")


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """How samples are drawn: order, arithmetic, CFG batching, seed, batch size."""
    p.add_argument("--order", default="confidence", choices=ORDERS,
                   help="which tokens each step decodes: the most confident (MaskGIT, default), or a fixed "
                        "random or Halton order over the token grid")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="generator arithmetic: auto = bf16 autocast on CUDA, fp32 on CPU (default); bf16 is "
                        "also faster on CPUs with bf16 instructions (avx512_bf16, amx_bf16), with slightly "
                        "different samples, and about 4x slower on CPUs without them (a warning says so)")
    p.add_argument("--cfg-batching", default="auto", choices=CFG_BATCHING,
                   help="guided steps: conditional and unconditional passes as one batch or two passes; "
                        "auto = batched on CUDA, split on CPU (same speed there, less memory)")
    p.add_argument("--temperature-floor", type=nonnegative_float, nargs="?", default=0.0,
                   const=OFFICIAL_TEMPERATURE_FLOOR, metavar="T",
                   help="draw tokens at max(sample temperature, T), so temperature 0 still samples; alone: "
                        f"{OFFICIAL_TEMPERATURE_FLOOR}, the official AutoNAT sampler's (default 0: exact argmax "
                        "at temperature 0; the two differ only where top logits lie within ~1e-2)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="sample i is seeded from (seed, i) (default 0)")
    add_batch_size_argument(p)
    add_reuse_arguments(p)


def add_reuse_arguments(p: argparse.ArgumentParser) -> None:
    """Opt-in reuse of earlier steps' work (the strategy's ``cfg_reuse`` / ``deep_reuse``; docs/benchmarks.md)."""
    p.add_argument("--cfg-reuse", type=nonnegative_int, nargs="*", metavar="STEP",
                   help="steps (0-based) whose guidance residual cond - uncond is taken from the last step that "
                        "computed it: one forward pass instead of two (replaces the strategy's cfg_reuse; "
                        "no value: none)")
    p.add_argument("--deep-reuse", type=nonnegative_int, nargs="*", metavar="STEP",
                   help="steps (0-based) that recompute only --deep-keep blocks at each end of the U-ViT and take "
                        "the deep features from the last full step (replaces the strategy's deep_reuse; "
                        "no value: none)")
    p.add_argument("--deep-keep", type=positive_int, default=1, metavar="K",
                   help="blocks recomputed at each end at a --deep-reuse step (default 1)")


def add_batch_size_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per batch (default 64)")


def add_generation_arguments(p: argparse.ArgumentParser, schedule_default: str = "cosine") -> None:
    """The generator, strategy, sampling and device flags of ``sample``, ``eval`` and ``search generation``."""
    add_generator_arguments(p)
    add_strategy_arguments(p, schedule_default)
    add_sampling_arguments(p)
    add_device_argument(p)


def sampler_options(args):
    """The :class:`~autonat.sampling.options.SamplerOptions` of the sampling flags."""
    from autonat.sampling.options import SamplerOptions

    return SamplerOptions(order=args.order, cfg_batching=args.cfg_batching,
                          temperature_floor=args.temperature_floor, deep_keep=args.deep_keep)


def chosen_strategy(args, default_schedule: str = "cosine"):
    """The strategy of the strategy flags (:func:`autonat.strategy.choice.choose_strategy`)."""
    from autonat.strategy.choice import choose_strategy, with_reuse_steps

    strategy = choose_strategy(args.strategy, args.schedule, args.steps, args.cfg, default_schedule)
    return with_reuse_steps(strategy, getattr(args, "cfg_reuse", None), getattr(args, "deep_reuse", None))


EXTRACTOR_CHOICES = ("auto", INCEPTION, DIGITS, *ALIASES)


def add_feature_arguments(p: argparse.ArgumentParser) -> None:
    """The feature extractor that scores images, and its weights (one spelling in every scoring command)."""
    p.add_argument("--feature-extractor", default="auto", choices=EXTRACTOR_CHOICES, metavar="NAME",
                   help=f"{INCEPTION} (alias inception), {DIGITS} (alias digits), or auto (default): digits "
                        "for demo:<split> references, inception otherwise")
    p.add_argument("--inception-weights", help="local pt_inception-2015-12-05-6726825d.pth (never downloaded)")
    p.add_argument("--digit-weights", help="digit classifier weights (default: the shipped ones)")


def extractor_weights(args, name: str) -> str | None:
    """The weights flag that belongs to the extractor ``name``."""
    return args.digit_weights if name == DIGITS else args.inception_weights


def add_force_argument(p: argparse.ArgumentParser) -> None:
    """``--force``: go on (with a warning) when a tokenizer's fingerprint differs from the recorded one."""
    p.add_argument("--force", action="store_true",
                   help="use a tokenizer whose content fingerprint differs from the one the checkpoint or token "
                        "cache records (replaced or retrained since); a warning instead of an error")
