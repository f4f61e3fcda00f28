"""Full-jitter exponential backoff, with the server's ``Retry-After`` taking precedence.

Why full jitter: when thousands of polls fail together (a vendor outage), fixed or "equal jitter"
delays make them come back together; drawing uniformly from ``[0, min(cap, base * 2**attempt)]``
spreads them out best (AWS Architecture Blog, "Exponential Backoff And Jitter").

Why Retry-After wins: the server knows when it will accept us again, and Symplify/Cordial send it
with 429. We never come back *earlier* than it says, we add a little jitter *after* it so the
herd that got the same header does not return in the same millisecond, and we cap it so a
hostile or buggy header cannot park an export for a day.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

#: Retry-After values above this are treated as this (seconds).
DEFAULT_RETRY_AFTER_CAP = 300.0
#: The shortest delay ever returned: a ``Retry-After: 0`` or a tiny jitter draw must not spin.
DEFAULT_MIN_DELAY = 0.05


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: attempt ``n`` waits ``uniform(0, min(cap, base * 2**n))``.

    ``attempt`` counts from 0 (the delay before the first retry). Defaults follow DESIGN.md:
    base 2 s, cap 60 s.
    """

    base: float = 2.0
    cap: float = 60.0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap <= 0:
            raise ValueError("backoff base and cap must be positive")

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` may draw (computed without overflow)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # 2**attempt overflows a float near attempt 1024; past the cap it no longer matters.
        if attempt >= 64:
            return self.cap
        return min(self.cap, self.base * 2.0**attempt)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """A delay drawn uniformly from ``[0, ceiling(attempt)]``."""
        return rng.uniform(0.0, self.ceiling(attempt))


def next_delay(
    backoff: Backoff,
    attempt: int,
    rng: random.Random,
    retry_after: float | None,
    *,
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
    min_delay: float = DEFAULT_MIN_DELAY,
) -> float:
    """How long to wait before retry number ``attempt`` (0-based).

    * No ``retry_after``: the full-jitter draw, raised to at least ``min_delay``.
    * ``retry_after`` given: ``r = min(max(retry_after, 0), retry_after_cap)``; the delay is
      ``max(r, min_delay) + uniform(0, min_delay + 0.1 * r)``. So it is never shorter than the
      server asked (unless capped), ``Retry-After: 0`` still waits between ``min_delay`` and
      ``2 * min_delay`` instead of spinning, and clients told the same value spread over up to
      10% of it.
    """
    if retry_after is None or math.isnan(retry_after):
        return max(min_delay, backoff.delay(attempt, rng))
    wanted = min(max(retry_after, 0.0), retry_after_cap)
    return max(wanted, min_delay) + rng.uniform(0.0, min_delay + 0.1 * wanted)


__all__ = ["DEFAULT_MIN_DELAY", "DEFAULT_RETRY_AFTER_CAP", "Backoff", "next_delay"]
