"""Progress of a batch job, counted on the driver as result batches come back.

In a terminal (stderr is a TTY) a tqdm bar shows inputs done/total, audio-hours
and the ETA. Elsewhere (CI, ``ray job submit`` logs, cron) the job logs one line
at most every ``every_seconds``::

    denoise: 120/300 inputs, 0.41 audio-h, 14.2x real time, ETA 2m10s

Ray Data's own bars (``Total Progress: 0/?``) count blocks of operators, not
inputs; :func:`quiet_ray_data` turns them off where this reporter runs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``2.7s``, ``42s``, ``2m10s``, ``3h05m``: a duration a person reads at a glance (an ETA, a run's wall
    time, its hours of audio; never ``0.008 h``). Tenths only below 10 s, where they matter."""
    if 0 < seconds < 9.95:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def quiet_ray_data() -> None:
    """Ray Data's per-operator progress bars off for this driver (this module reports progress instead)."""
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False


class Progress:
    """Counts inputs and audio-seconds done out of ``total`` inputs; reports by bar or by rate-limited line.

    ``tty``: None asks ``sys.stderr.isatty()``. ``clock``: seconds, monotonic (a test passes a fake one).
    """

    def __init__(
        self,
        label: str,
        total: int,
        every_seconds: float = 30.0,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.every_seconds, self.clock = label, total, every_seconds, clock
        self.done, self.audio_seconds = 0, 0.0
        self.started = self.last_line = clock()
        self.bar = None
        if (sys.stderr.isatty() if tty is None else tty) and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="input", file=sys.stderr, dynamic_ncols=True)

    def line(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        return (
            f"{self.label}: {self.done}/{self.total} inputs, {self.audio_seconds / 3600:.2f} audio-h, "
            f"{self.audio_seconds / elapsed:.1f}x real time, ETA {eta}"
        )

    def update(self, inputs: int, audio_seconds: float) -> None:
        """``inputs`` more done, holding ``audio_seconds`` of input audio."""
        self.done += inputs
        self.audio_seconds += audio_seconds
        if self.bar is not None:
            self.bar.update(inputs)
            self.bar.set_postfix_str(f"{self.audio_seconds / 3600:.2f} audio-h", refresh=False)
        elif self.clock() - self.last_line >= self.every_seconds:
            self.last_line = self.clock()
            log.info("%s", self.line())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
