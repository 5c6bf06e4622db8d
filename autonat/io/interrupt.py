"""Stopping a long run cleanly: a signal becomes a flag the run checks between steps."""
from __future__ import annotations

import signal
import sys
from typing import Self


class StopRequest:
    """Turns SIGTERM / SIGINT into a flag checked at step boundaries.

    The first signal asks for a checkpoint at the next step boundary; a second
    one aborts at once (KeyboardInterrupt) without saving, for a user who
    cannot wait. What is on disk stays consistent either way: every write is
    atomic.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old = {}

    def __enter__(self) -> Self:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print(f"autonat: {signal.Signals(signum).name} received; stopping at the next step boundary "
              "(send it again to abort without saving)", file=sys.stderr, flush=True)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else "no signal"

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
