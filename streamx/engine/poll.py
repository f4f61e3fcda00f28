"""Waiting for a vendor job: cheap, patient polling that never outlives the export's deadline.

Polling costs one small request, so the engine polls every export concurrently, with no
semaphore: what must stay cheap is the *rate*. The interval therefore starts short (a small
export is often ready in seconds) and grows geometrically to a cap (a big one may take hours),
with ±10% jitter so thousands of exports started together do not poll in lockstep. A poll that
fails transiently is retried through :func:`~streamx.engine.retry.call_with_retries`, which
honours ``Retry-After`` and spends the shared retry budget. The deadline is absolute (on the
injected clock): the last sleep is shortened to end at it, one final poll is made, and then the
wait fails with :class:`~streamx.engine.errors.DeadlineExceededError` naming the last status.
(A vendor that answers the deadline poll with an error gets no retry: time is up.)
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from streamx.engine.clock import Clock
from streamx.engine.errors import DeadlineExceededError
from streamx.engine.retry import OnRetry, RetryPolicy, call_with_retries
from streamx.exceptions import TransientError
from streamx.vendors.base import JobStatus

#: Called with every status seen (progress display, logs).
OnStatus = Callable[[JobStatus], None]


@dataclass(frozen=True)
class PollSchedule:
    """Poll ``n`` (0-based) waits ``min(cap, initial * factor**n)`` seconds, ±``jitter``."""

    initial: float = 1.0
    factor: float = 1.5
    cap: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial or self.factor < 1:
            raise ValueError("poll schedule needs 0 < initial <= cap and factor >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("poll jitter must be in [0, 1)")

    def delay(self, poll: int, rng: random.Random) -> float:
        """The wait after poll number ``poll``."""
        exponent = min(poll, 200)  # factor**n would overflow long after reaching the cap
        base = min(self.cap, self.initial * self.factor**exponent)
        return base * (1.0 + rng.uniform(-self.jitter, self.jitter))


async def wait_for_job(
    poll: Callable[[], Awaitable[JobStatus]],
    *,
    schedule: PollSchedule,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    subject: str,
    ids: dict[str, str | None],
    on_status: OnStatus | None = None,
    on_retry: OnRetry | None = None,
) -> JobStatus:
    """Poll until the job is done or failed; returns that last status.

    Raises :class:`DeadlineExceededError` (permanent) when ``policy.deadline`` passes first, and
    whatever :func:`call_with_retries` raises when polling itself keeps failing.
    """
    polls, final = 0, False
    while True:
        try:
            status = await call_with_retries(
                poll,
                policy=_last_try(policy) if final else policy,
                clock=clock,
                rng=rng,
                on_retry=on_retry,
            )
        except TransientError as exc:
            if not final:
                raise
            raise _late(subject, polls, None, ids) from exc
        polls += 1
        if on_status is not None:
            on_status(status)
        if status.done or status.failed:
            return status
        if final:
            raise _late(subject, polls, status, ids)
        wait = schedule.delay(polls - 1, rng)
        if policy.deadline is not None and policy.deadline - clock.now() <= wait:
            # Sleep up to the deadline, then poll one last time without retries.
            wait, final = max(0.0, policy.deadline - clock.now()), True
        await clock.sleep(wait)


def _last_try(policy: RetryPolicy) -> RetryPolicy:
    return replace(policy, deadline=None, max_attempts=1)


def _late(
    subject: str, polls: int, status: JobStatus | None, ids: dict[str, str | None]
) -> DeadlineExceededError:
    last = f"last status {status.state}{_progress(status)}" if status else "the last poll failed"
    return DeadlineExceededError(
        f"{subject}: not finished by its deadline after {polls} poll(s); {last}", **ids
    )


def _progress(status: JobStatus) -> str:
    return f" ({status.progress:.0%} done)" if status.progress is not None else ""


__all__ = ["OnStatus", "PollSchedule", "wait_for_job"]
