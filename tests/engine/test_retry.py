"""call_with_retries: what is retried, how long we wait, and the three brakes (attempts,
deadline, shared budget). All time is virtual (FakeClock): nothing here sleeps for real."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from streamx.engine.backoff import Backoff
from streamx.engine.clock import FakeClock
from streamx.engine.errors import (
    DeadlineExceededError,
    IncompleteBodyError,
    NetworkError,
    NetworkTimeoutError,
    RetryBudgetExhaustedError,
    ServerError,
    classify_response,
)
from streamx.engine.retry import RetryBudget, RetryPolicy, call_with_retries
from streamx.exceptions import PermanentError, StreamxError


def http_error(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> StreamxError:
    return classify_response(
        status, headers or {}, body, vendor="cordial", account="acme", export_id="job-1"
    )


class Flaky:
    """An operation that fails with the given exceptions, then returns "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def run(
    fn: Callable[[], Awaitable[str]],
    clock: FakeClock,
    *,
    seed: int = 0,
    on_retry: Callable[[int, StreamxError, float], None] | None = None,
    **policy: object,
) -> str:
    return await call_with_retries(
        fn,
        policy=RetryPolicy(**policy),  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(seed),
        on_retry=on_retry,
    )


@pytest.mark.asyncio
async def test_retries_5xx_429_and_network_errors_until_success() -> None:
    clock = FakeClock()
    fn = Flaky(
        http_error(503),
        http_error(429, b"", {"Retry-After": "30"}),
        aiohttp.ServerDisconnectedError(),
        TimeoutError(),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        ConnectionResetError(104, "Connection reset by peer"),
    )
    seen: list[tuple[int, type[StreamxError], float]] = []
    result = await run(fn, clock, on_retry=lambda n, e, d: seen.append((n, type(e), d)))
    assert result == "ok"
    assert fn.calls == 7
    assert [n for n, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert [t for _, t, _ in seen][1:] == [
        type(http_error(429)),
        NetworkError,
        NetworkTimeoutError,
        IncompleteBodyError,
        NetworkError,
    ]
    assert clock.sleeps == [d for _, _, d in seen]
    assert 30.0 <= clock.sleeps[1] <= 33.05  # Retry-After honoured (plus bounded jitter)
    assert clock.sleeps[0] <= 2.0  # first backoff ceiling is the 2 s base
    assert clock.now() == pytest.approx(sum(clock.sleeps))


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 412, 415])
async def test_permanent_errors_are_not_retried(status: int) -> None:
    clock = FakeClock()
    fn = Flaky(http_error(status, b'{"error": "no"}'))
    with pytest.raises(PermanentError) as info:
        await run(fn, clock)
    assert fn.calls == 1
    assert clock.sleeps == []
    assert getattr(info.value, "status", None) == status


@pytest.mark.asyncio
async def test_unknown_exceptions_propagate_unretried() -> None:
    clock = FakeClock()
    fn = Flaky(KeyError("a bug"))
    with pytest.raises(KeyError):
        await run(fn, clock)
    assert fn.calls == 1


@pytest.mark.asyncio
async def test_gives_up_after_max_attempts_with_last_error() -> None:
    clock = FakeClock()
    fn = Flaky(*[http_error(500 + n) for n in range(10)])
    with pytest.raises(ServerError) as info:
        await run(fn, clock, max_attempts=4)
    assert fn.calls == 4
    assert len(clock.sleeps) == 3
    assert info.value.status == 503  # the fourth failure


@pytest.mark.asyncio
async def test_backoff_grows_until_the_cap() -> None:
    clock = FakeClock()
    fn = Flaky(*[http_error(503)] * 30)
    with pytest.raises(ServerError):
        await run(fn, clock, max_attempts=30, backoff=Backoff(base=2, cap=60))
    ceilings = [min(60.0, 2.0 * 2**n) for n in range(29)]
    assert all(0.05 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))


@pytest.mark.asyncio
async def test_deadline_stops_before_a_sleep_that_would_cross_it() -> None:
    clock = FakeClock(start=1000.0)
    fn = Flaky(*[http_error(503)] * 50)
    with pytest.raises(DeadlineExceededError) as info:
        await run(fn, clock, max_attempts=50, deadline=1000.0 + 45.0)
    assert clock.now() <= 1045.0
    assert isinstance(info.value.__cause__, ServerError)
    assert info.value.export_id == "job-1"
    assert fn.calls == len(clock.sleeps) + 1


@pytest.mark.asyncio
async def test_retry_after_beyond_deadline_fails_at_once() -> None:
    clock = FakeClock()
    fn = Flaky(http_error(429, b"", {"Retry-After": "120"}))
    with pytest.raises(DeadlineExceededError):
        await run(fn, clock, deadline=60.0)
    assert clock.sleeps == []
    assert fn.calls == 1


@pytest.mark.asyncio
async def test_deadline_already_passed_makes_no_call() -> None:
    clock = FakeClock(start=10.0)
    fn = Flaky()
    with pytest.raises(DeadlineExceededError):
        await run(fn, clock, deadline=5.0)
    assert fn.calls == 0


def test_budget_spends_refills_and_caps() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock, capacity=3, ratio=0.5, min_per_second=0.1)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    budget.record_success()
    assert not budget.try_spend()  # 0.5 token is not a retry
    budget.record_success()
    assert budget.try_spend()
    clock.advance(10.0)  # the floor: 0.1 token per second
    assert budget.tokens == pytest.approx(1.0)
    clock.advance(1000.0)
    assert budget.tokens == 3.0


@pytest.mark.asyncio
async def test_budget_bounds_attempts_during_an_outage_of_many_callers() -> None:
    """200 concurrent polls against a dead vendor: without a budget each retries 7 times
    (1600 calls); with a shared budget the retries stay near capacity + floor * elapsed."""
    callers = 200

    async def outage(policy_budget: RetryBudget | None, clock: FakeClock) -> tuple[int, list[str]]:
        calls = 0

        async def dead() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0)
            raise http_error(503)

        async def one(seed: int) -> str:
            try:
                return await run(dead, clock, seed=seed, budget=policy_budget)
            except StreamxError as exc:
                return type(exc).__name__

        outcomes = await asyncio.gather(*(one(seed) for seed in range(callers)))
        return calls, list(outcomes)

    unbounded_calls, _ = await outage(None, FakeClock())
    assert unbounded_calls == callers * 8

    clock = FakeClock()
    budget = RetryBudget(clock=clock, capacity=10, ratio=0.1, min_per_second=0.5)
    calls, outcomes = await outage(budget, clock)
    retries = calls - callers
    assert retries <= 10 + 0.5 * clock.now() + 1
    assert clock.now() <= 200.0  # nobody can wait longer than the summed backoff ceilings
    assert calls < callers * 2
    assert outcomes.count("RetryBudgetExhaustedError") >= callers - retries
    assert set(outcomes) <= {"RetryBudgetExhaustedError", "ServerError"}


@pytest.mark.asyncio
async def test_budget_exhausted_error_carries_cause_and_context() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock, capacity=1, ratio=0.0, min_per_second=0.0)
    fn = Flaky(http_error(502), http_error(503))
    with pytest.raises(RetryBudgetExhaustedError) as info:
        await run(fn, clock, budget=budget)
    assert fn.calls == 2
    assert isinstance(info.value.__cause__, ServerError)
    assert info.value.account == "acme"


@pytest.mark.asyncio
async def test_successes_feed_the_budget() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock, capacity=5, ratio=0.5, min_per_second=0.0)
    for _ in range(5):
        budget.try_spend()
    assert budget.tokens == 0.0
    for _ in range(4):
        assert await run(Flaky(), clock, budget=budget) == "ok"
    assert budget.tokens == 2.0
    assert await run(Flaky(http_error(500), http_error(500)), clock, budget=budget) == "ok"
    assert budget.tokens == pytest.approx(0.5)


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryBudget(clock=FakeClock(), capacity=0)
