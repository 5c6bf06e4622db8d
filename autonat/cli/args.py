"""Argument groups shared by several subcommands, defined once."""
from __future__ import annotations

import argparse


def add_recipe_arguments(p: argparse.ArgumentParser) -> None:
    """``--config recipe.yaml`` and ``key.sub=value`` overrides."""
    p.add_argument("--config", required=True, help="recipe YAML, e.g. configs/demo_mnist.yaml")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides of the recipe")


def read_recipe(args) -> dict:
    """The recipe named by ``--config`` with the overrides applied."""
    from autonat.io.config import apply_overrides, load_yaml

    return apply_overrides(load_yaml(args.config), args.overrides)


def add_force_argument(p: argparse.ArgumentParser) -> None:
    """``--force``: go on (with a warning) when a tokenizer's fingerprint differs from the recorded one."""
    p.add_argument("--force", action="store_true",
                   help="use a tokenizer whose content fingerprint differs from the one the checkpoint or token "
                        "cache records (replaced or retrained since); a warning instead of an error")
