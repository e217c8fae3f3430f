"""Progress lines for long work (downloads, the load), logged about every few seconds.

Each line starts with PREFIX, so a console that shows only a summary (the demo's) can still pass them on.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PREFIX = "progress:"
INTERVAL_SECONDS = 5.0


class Progress:
    """Logs `line(*values, seconds_elapsed)` when at least `interval` seconds passed since the last line."""

    def __init__(self, log: Callable[[str], None], interval: float = INTERVAL_SECONDS):
        self.log, self.interval = log, interval
        self.started = self.last = time.monotonic()

    def tick(self, line: Callable[..., str], *values) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.log(f"{PREFIX} {line(*values, max(now - self.started, 1e-9))}")


@contextmanager
def step(log: Callable[[str], None], what: str) -> Iterator[None]:
    """Log `what` and its seconds once it is done (the load's steps after COPY take minutes at 29M rows)."""
    started = time.monotonic()
    yield
    log(f"{what} in {_duration(time.monotonic() - started, decimals=1)}")


def download_line(name: str, done: int, total: int | None, seconds: float) -> str:
    rate = done / seconds
    line = f"{name}: {_megabytes(done)}"
    if total:
        line += (
            f" of {_megabytes(total)} ({done / total:.0%}), {_megabytes(rate)}/s, {_eta(done, total, rate)}"
        )
    else:
        line += f" (size not announced), {_megabytes(rate)}/s"
    return line


def load_line(read: int, loaded: int, rejected: int, done: int, total: int | None, seconds: float) -> str:
    """Rows so far and their rate; how much of the (uncompressed) file is read, and the time left at the
    rate bytes were read so far (rows vary in length: bytes, not rows, say how far the load has come)."""
    line = (
        f"covid.cases load: {read:,} rows read, {loaded:,} loaded, {rejected:,} rejected, "
        f"{read / seconds:,.0f} rows/s"
    )
    if total:
        line += f"; {_megabytes(done)} of {_megabytes(total)} ({done / total:.0%}), {_eta(done, total, done / seconds)}"
    return line


def _eta(done: int, total: int, rate: float) -> str:
    return f"ETA {_duration(max(total - done, 0) / rate)}" if rate else "ETA unknown"


def _megabytes(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def _duration(seconds: float, decimals: int = 0) -> str:
    if seconds < 60:
        return f"{seconds:.{decimals}f} s"
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s"
