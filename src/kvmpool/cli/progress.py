"""A progress line (bytes, rate, ETA) on a terminal; nothing at all in scripts."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from kvmpool.units import pretty


class Meter:
    """Call with the bytes just done; ``close()`` ends the line. Redraws at most 5 times/s."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.2:
            self.last = now
            self.draw(now)

    def draw(self, now: float) -> None:
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        line = f"{self.label}: {pretty(self.done)}"
        if self.total:
            pct = 100 * self.done / self.total
            line += f" of {pretty(self.total)} ({pct:3.0f}%)"
        line += f", {pretty(int(rate))}/s"
        if self.total and rate > 0 and self.done < self.total:
            eta = int((self.total - self.done) / rate)
            line += f", ETA {eta // 60}:{eta % 60:02d}"
        self.stream.write("\r" + line + "\033[K")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def meter(label: str, total: int, quiet: bool) -> Meter | None:
    """A meter when stderr is a terminal and the user did not ask for quiet."""
    if quiet or not sys.stderr.isatty():
        return None
    return Meter(label, total)
