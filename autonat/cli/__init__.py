"""The ``autonat`` command: argument parsing and wiring only (nothing here imports torch at start-up)."""
from autonat.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
