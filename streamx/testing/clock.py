"""Injectable time for the simulators.

The fakes' state machines (Symplify batches, Cordial jobs) and the object store's URL expiry are
driven by time. Injecting it lets a test jump a job to ``Done`` or a URL past its ``Expires``
without sleeping, while the demo and the CLI simply use :class:`SystemClock`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Two views of time: monotonic for durations, wall (epoch seconds) for timestamps."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (drives the state machines)."""
        ...

    def wall(self) -> float:
        """Epoch seconds (job timestamps, URL ``Expires``)."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; both views advance together.

    The wall clock starts at the real current time so presigned ``Expires`` values stay
    plausible to a client that compares them with its own clock.
    """

    def __init__(self, wall_start: float | None = None) -> None:
        self._wall_start = time.time() if wall_start is None else wall_start
        self._offset = 0.0

    def advance(self, seconds: float) -> None:
        """Move time forward (never backwards: a monotonic clock cannot)."""
        if seconds < 0:
            raise ValueError("a ManualClock cannot go backwards")
        self._offset += seconds

    def monotonic(self) -> float:
        return self._offset

    def wall(self) -> float:
        return self._wall_start + self._offset


__all__ = ["Clock", "ManualClock", "SystemClock"]
