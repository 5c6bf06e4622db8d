"""A training run's directory: recipe, log, inference checkpoints and resumable states."""
from __future__ import annotations

import shutil
from pathlib import Path


# --------------------------------------------------------------------------- run layout
class RunDir:
    """``out_dir``: ``recipe.yaml``, ``log.csv``, ``checkpoints/step_N`` (inference), ``state/step_N`` (resume)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.state = self.root / "state"
        self.log = self.root / "log.csv"

    @staticmethod
    def _steps(folder: Path, marker: str) -> list[tuple[int, Path]]:
        """``(N, folder/step_N)`` for the complete entries (holding ``marker``), by step."""
        found = []
        for p in folder.glob("step_*") if folder.is_dir() else []:
            number = p.name.split("_", 1)[1]
            if number.isdigit() and (p / marker).exists():
                found.append((int(number), p))
        return sorted(found)

    def latest_state(self) -> tuple[int, Path] | None:
        """The newest complete resumable state; partial ones (no ``trainer.json``) are ignored."""
        done = self._steps(self.state, "trainer.json")
        return done[-1] if done else None

    def clean_partial(self) -> list[Path]:
        """Delete what a save killed half-way left: ``.step_N.tmp`` siblings and incomplete ``step_N``."""
        from autonat.io.atomic import recover_dir

        for p in self.checkpoints.glob("step_*") if self.checkpoints.is_dir() else []:
            recover_dir(p)
        leftovers = [*self.state.glob(".step_*"), *self.checkpoints.glob(".step_*")]
        leftovers += [p for p in self.state.glob("step_*")
                      if p.name[5:].isdigit() and not (p / "trainer.json").exists()]
        for p in leftovers:
            shutil.rmtree(p, ignore_errors=True)
        return leftovers

    def prune(self, keep: int) -> None:
        for folder, marker in ((self.checkpoints, "config.json"), (self.state, "trainer.json")):
            for _, old in self._steps(folder, marker)[:-keep] if keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
