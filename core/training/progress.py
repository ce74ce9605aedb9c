"""Progress of long runs (encoding a collection, a training epoch): a bar on a terminal, else a line now and then.

Without a terminal (stderr a file or a pipe) a bar would be noise, and nothing at all would leave a log
silent for the hours a first encoding can take; so a line with the rate and the ETA comes every few seconds.
"""

from __future__ import annotations

import sys
import time

LINE_SECONDS = 30  # without a terminal, the longest silence of a long run (encoding, an epoch)


def duration(seconds: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"2 h 10 min"``: for progress lines."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class _Progress:
    """Files done, files/s and ETA: a bar on a terminal, else a line every ``every`` seconds (none if ``every`` is None)."""

    def __init__(self, label: str, total: int, progress: bool | None, every: float | None) -> None:
        from tqdm import tqdm

        self.label, self.total, self.every = label, total, every
        self.bar = tqdm(total=total, desc=f"encoding {label}", unit="file", leave=False,
                        disable=None if progress is None else not progress)
        self.lines = every is not None and self.bar.disable and progress is not False
        self.started = self.last = time.monotonic()
        self.done = 0

    def update(self, count: int) -> None:
        self.done += count
        self.bar.update(count)
        now = time.monotonic()
        if self.every is not None and self.lines and now - self.last >= self.every and self.done < self.total:
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            print(f"encoding {self.label}: {self.done}/{self.total} files, {rate:.1f} files/s, "
                  f"ETA {duration((self.total - self.done) / rate)}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()
