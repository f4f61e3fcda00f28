"""Retrying transient failures: attempt limit, per-export deadline and a shared retry budget.

Three independent brakes, because each catches what the others miss:

* ``max_attempts`` bounds one operation that keeps failing;
* ``deadline`` (absolute, on the injected clock) bounds the wall time an export may spend; a
  retry whose sleep would cross it is not attempted: we fail *now* with
  :class:`~streamx.engine.errors.DeadlineExceededError` instead of sleeping just to fail later;
* :class:`RetryBudget` is shared by every export of an engine: when a vendor is down, thousands
  of polls fail at once and each would retry 8 times. The budget lets retries through only in
  proportion to recent successes (plus a small floor), like gRPC's and Finagle's retry budgets,
  so an outage costs the vendor roughly the normal request rate instead of a retry storm.

Only :class:`~streamx.exceptions.TransientError` is retried; network-level exceptions from
aiohttp/asyncio are first mapped onto the tree by
:func:`~streamx.engine.errors.classify_exception`. A :class:`~streamx.exceptions.PermanentError`
is raised at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from streamx.engine.backoff import DEFAULT_MIN_DELAY, DEFAULT_RETRY_AFTER_CAP, Backoff, next_delay
from streamx.engine.clock import Clock
from streamx.engine.errors import (
    DeadlineExceededError,
    RetryBudgetExhaustedError,
    classify_exception,
)
from streamx.exceptions import StreamxError, TransientError

T = TypeVar("T")

#: ``on_retry(retry_number, error, delay)``: called before each backoff sleep (1-based number).
OnRetry = Callable[[int, StreamxError, float], None]


class RetryBudget:
    """A token bucket of retries, shared by all exports of one engine.

    Each retry spends one token. Tokens come back two ways: ``ratio`` tokens per successful call
    (10% by default: at most one retry per ten successes in steady state) and a time-based floor
    of ``min_per_second`` so a quiet engine can still retry after an outage ends. The bucket holds
    at most ``capacity`` tokens and starts full. When it is empty, a transient failure becomes a
    :class:`~streamx.engine.errors.RetryBudgetExhaustedError` instead of a retry.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        capacity: float = 50.0,
        ratio: float = 0.1,
        min_per_second: float = 1.0,
    ) -> None:
        if capacity < 1 or ratio < 0 or min_per_second < 0:
            raise ValueError("retry budget needs capacity >= 1 and non-negative rates")
        self._clock = clock
        self._capacity = capacity
        self._ratio = ratio
        self._min_per_second = min_per_second
        self._tokens = capacity
        self._refilled_at = clock.now()

    @property
    def tokens(self) -> float:
        """Tokens available now (after the time-based refill)."""
        self._refill()
        return self._tokens

    def record_success(self) -> None:
        """A call succeeded: earn ``ratio`` of a retry."""
        self._refill()
        self._tokens = min(self._capacity, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        """Take one token for a retry; False (nothing taken) when fewer than one is left."""
        self._refill()
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _refill(self) -> None:
        now = self._clock.now()
        elapsed = max(0.0, now - self._refilled_at)
        self._refilled_at = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._min_per_second)


@dataclass
class RetryPolicy:
    """How one operation retries. ``deadline`` is an absolute time on the injected clock."""

    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int = 8
    deadline: float | None = None
    budget: RetryBudget | None = None
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP
    min_delay: float = DEFAULT_MIN_DELAY

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1 (1 = no retries)")


class Retrier:
    """Retry bookkeeping for one operation; shared by :func:`call_with_retries` and sources.

    A resumable download calls :meth:`reset` whenever it made progress, so ``max_attempts``
    bounds consecutive failures *without progress*, not the drops over a multi-hour transfer.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Clock,
        rng: random.Random,
        on_retry: OnRetry | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng
        self._on_retry = on_retry
        self.failures = 0

    def reset(self) -> None:
        """Progress was made: consecutive failures start again from zero."""
        self.failures = 0

    def record_success(self) -> None:
        """A call succeeded: feed the shared budget."""
        if self.policy.budget is not None:
            self.policy.budget.record_success()

    def check_deadline(self, error: StreamxError | None = None) -> None:
        """Raise :class:`DeadlineExceededError` if the deadline has already passed."""
        deadline = self.policy.deadline
        if deadline is not None and self._clock.now() >= deadline:
            raise self._deadline_error(error, 0.0)

    def count(self, error: TransientError) -> None:
        """Count a failure that needs no wait (e.g. an expired URL); re-raise it when out of
        attempts."""
        self.failures += 1
        if self.failures >= self.policy.max_attempts:
            raise error

    async def backoff(self, error: TransientError) -> None:
        """Count ``error`` and sleep before the next attempt, or raise if no retry is allowed.

        Raises ``error`` itself after ``max_attempts``, :class:`DeadlineExceededError` if the
        sleep would cross the deadline, :class:`RetryBudgetExhaustedError` if the shared budget
        is empty (both with ``error`` as ``__cause__``).
        """
        self.count(error)
        delay = next_delay(
            self.policy.backoff,
            self.failures - 1,
            self._rng,
            error.retry_after,
            retry_after_cap=self.policy.retry_after_cap,
            min_delay=self.policy.min_delay,
        )
        deadline = self.policy.deadline
        if deadline is not None and self._clock.now() + delay > deadline:
            raise self._deadline_error(error, delay) from error
        budget = self.policy.budget
        if budget is not None and not budget.try_spend():
            raise RetryBudgetExhaustedError(
                f"retry budget exhausted, not retrying: {error.message}", **_context(error)
            ) from error
        if self._on_retry is not None:
            self._on_retry(self.failures, error, delay)
        await self._clock.sleep(delay)

    def _deadline_error(self, error: StreamxError | None, delay: float) -> DeadlineExceededError:
        if error is None:
            return DeadlineExceededError("deadline passed before the first attempt")
        wait = f" (next retry in {delay:.1f} s)" if delay else ""
        return DeadlineExceededError(
            f"deadline exceeded{wait} after {self.failures} failed attempt(s): {error.message}",
            **_context(error),
        )


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    clock: Clock,
    rng: random.Random,
    on_retry: OnRetry | None = None,
) -> T:
    """Await ``fn()`` until it succeeds, retrying transient failures per ``policy``.

    ``fn`` is called afresh for each attempt. aiohttp connection errors, payload errors and
    timeouts raised by ``fn`` are mapped to transient errors and retried; other exceptions
    (including every :class:`~streamx.exceptions.PermanentError`) propagate unchanged. When
    retries run out the last transient error is raised; see :meth:`Retrier.backoff` for the
    deadline and budget errors.
    """
    retrier = Retrier(policy, clock=clock, rng=rng, on_retry=on_retry)
    last: StreamxError | None = None
    while True:
        retrier.check_deadline(last)
        try:
            result = await fn()
        except TransientError as exc:
            last = exc
        except StreamxError:
            raise
        except Exception as exc:
            mapped = classify_exception(exc)
            if mapped is None:
                raise
            if not isinstance(mapped, TransientError):
                raise mapped from mapped.__cause__  # e.g. a TLS certificate failure
            last = mapped
        else:
            retrier.record_success()
            return result
        await retrier.backoff(last)


def _context(error: StreamxError) -> dict[str, str | None]:
    return {"vendor": error.vendor, "account": error.account, "export_id": error.export_id}


__all__ = ["OnRetry", "Retrier", "RetryBudget", "RetryPolicy", "call_with_retries"]
