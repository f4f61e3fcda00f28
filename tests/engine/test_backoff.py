"""Full-jitter backoff bounds, Retry-After precedence, and the no-spin floor."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamx.engine.backoff import Backoff, next_delay
from streamx.engine.clock import FakeClock

FAST = settings(max_examples=300, deadline=None)


@FAST
@given(
    base=st.floats(min_value=0.01, max_value=10),
    cap=st.floats(min_value=0.01, max_value=600),
    attempt=st.integers(min_value=0, max_value=5000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_within_full_jitter_bounds(
    base: float, cap: float, attempt: int, seed: int
) -> None:
    backoff = Backoff(base=base, cap=cap)
    ceiling = min(cap, base * 2.0 ** min(attempt, 64))
    assert backoff.ceiling(attempt) == pytest.approx(ceiling)
    delay = backoff.delay(attempt, random.Random(seed))
    assert 0.0 <= delay <= ceiling


def test_default_ceilings_follow_design() -> None:
    backoff = Backoff()
    assert [backoff.ceiling(n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]


def test_delays_are_spread_not_constant() -> None:
    """Full jitter: draws cover the whole [0, ceiling] range, so a herd is spread out."""
    rng = random.Random(7)
    draws = [Backoff().delay(4, rng) for _ in range(2000)]
    assert min(draws) < 2.0
    assert max(draws) > 30.0
    assert 14.0 < sum(draws) / len(draws) < 18.0  # mean of uniform(0, 32) is 16


def test_invalid_backoff_rejected() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff().delay(-1, random.Random(0))


@FAST
@given(attempt=st.integers(0, 100), seed=st.integers(0, 2**32))
def test_next_delay_without_retry_after_never_spins(attempt: int, seed: int) -> None:
    delay = next_delay(Backoff(), attempt, random.Random(seed), None, min_delay=0.05)
    assert 0.05 <= delay <= 60.0


@FAST
@given(
    retry_after=st.floats(min_value=0, max_value=10_000),
    attempt=st.integers(0, 20),
    seed=st.integers(0, 2**32),
)
def test_retry_after_wins_and_is_capped(retry_after: float, attempt: int, seed: int) -> None:
    delay = next_delay(Backoff(), attempt, random.Random(seed), retry_after, retry_after_cap=300.0)
    wanted = min(retry_after, 300.0)
    assert delay >= max(wanted, 0.05)
    assert delay <= max(wanted, 0.05) + 0.05 + 0.1 * wanted


def test_retry_after_zero_or_negative_still_waits() -> None:
    rng = random.Random(1)
    for value in (0.0, -5.0):
        delay = next_delay(Backoff(), 0, rng, value, min_delay=0.05)
        assert 0.05 <= delay <= 0.1


def test_retry_after_larger_than_backoff_cap_is_honoured() -> None:
    """A 429 asking for 120 s is obeyed even though the backoff cap is 60 s."""
    delay = next_delay(Backoff(), 0, random.Random(3), 120.0)
    assert 120.0 <= delay <= 132.05


def test_nan_retry_after_falls_back_to_backoff() -> None:
    delay = next_delay(Backoff(), 0, random.Random(3), float("nan"))
    assert 0.05 <= delay <= 2.0


@pytest.mark.asyncio
async def test_fake_clock_records_sleeps_without_waiting() -> None:
    clock = FakeClock(start=100.0)
    await clock.sleep(30.0)
    await clock.sleep(0.0)
    assert clock.now() == 130.0
    assert clock.sleeps == [30.0, 0.0]
    assert (clock.wall() - FakeClock(start=100.0).wall()).total_seconds() == 30.0


@pytest.mark.asyncio
async def test_fake_clock_concurrent_sleepers_overlap() -> None:
    clock = FakeClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(tag: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((tag, clock.now()))

    await asyncio.gather(sleeper("b", 5.0), sleeper("a", 2.0), sleeper("c", 5.0))
    assert woke == [("a", 2.0), ("b", 5.0), ("c", 5.0)]
    assert clock.now() == 5.0


@pytest.mark.asyncio
async def test_fake_clock_cancelled_sleeper_does_not_move_time() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(1000.0))
    await asyncio.sleep(0)
    task.cancel()
    await clock.sleep(1.0)
    assert clock.now() == 1.0
    with pytest.raises(asyncio.CancelledError):
        await task
