"""Polling a vendor job on virtual time: schedule, deadline, retries, Retry-After."""

from __future__ import annotations

import random

import pytest

from streamx.engine.backoff import Backoff
from streamx.engine.clock import FakeClock
from streamx.engine.errors import DeadlineExceededError, RateLimitedError, ServerError
from streamx.engine.poll import PollSchedule, wait_for_job
from streamx.engine.retry import RetryPolicy
from streamx.exceptions import StreamxError
from streamx.vendors.base import JobStatus

IDS: dict[str, str | None] = {"vendor": "symplify", "account": "acme", "export_id": "101111"}
RUNNING = JobStatus("IN_PROGRESS", progress=0.5)
DONE = JobStatus("FINISHED", done=True)


class Job:
    """A vendor job answering a scripted sequence of statuses or errors, then the last one."""

    def __init__(self, *answers: JobStatus | StreamxError) -> None:
        self.answers = list(answers)
        self.polls = 0

    async def poll(self) -> JobStatus:
        self.polls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, StreamxError):
            raise answer
        return answer


async def _wait(
    job: Job, clock: FakeClock, *, deadline: float | None = None, max_attempts: int = 8
) -> JobStatus:
    policy = RetryPolicy(backoff=Backoff(1.0, 8.0), max_attempts=max_attempts, deadline=deadline)
    return await wait_for_job(
        job.poll,
        schedule=PollSchedule(initial=1.0, factor=2.0, cap=8.0, jitter=0.1),
        policy=policy,
        clock=clock,
        rng=random.Random(3),
        subject="export opens",
        ids=IDS,
    )


def test_schedule_grows_to_its_cap_with_bounded_jitter() -> None:
    schedule = PollSchedule(initial=1.0, factor=2.0, cap=8.0, jitter=0.1)
    rng = random.Random(1)
    for poll, base in enumerate([1, 2, 4, 8, 8, 8]):
        assert base * 0.9 <= schedule.delay(poll, rng) <= base * 1.1
    assert schedule.delay(10_000, rng) <= 8.8  # no overflow far past the cap
    with pytest.raises(ValueError):
        PollSchedule(initial=2.0, cap=1.0)


@pytest.mark.asyncio
async def test_polls_until_done_with_growing_waits() -> None:
    clock = FakeClock()
    job = Job(RUNNING, RUNNING, RUNNING, RUNNING, DONE)
    assert await _wait(job, clock) == DONE
    assert job.polls == 5
    assert [round(s) for s in clock.sleeps] == [1, 2, 4, 8]


@pytest.mark.asyncio
async def test_failed_job_ends_the_wait_at_once() -> None:
    failed = JobStatus("ERROR", failed=True, reason="batch ended with status ERROR")
    assert await _wait(Job(RUNNING, failed), FakeClock()) == failed


@pytest.mark.asyncio
async def test_deadline_shortens_the_last_wait_and_polls_once_more() -> None:
    clock = FakeClock()
    job = Job(RUNNING)
    with pytest.raises(DeadlineExceededError, match=r"after 4 poll\(s\); last status IN_PROG"):
        await _wait(job, clock, deadline=5.0)
    assert clock.now() == pytest.approx(5.0)
    assert job.polls == 4  # t=0, ~1, ~3, and the final one at the deadline


@pytest.mark.asyncio
async def test_a_job_finishing_at_the_deadline_is_still_seen() -> None:
    clock = FakeClock()
    assert await _wait(Job(RUNNING, RUNNING, RUNNING, DONE), clock, deadline=5.0) == DONE


@pytest.mark.asyncio
async def test_transient_poll_errors_are_retried_and_retry_after_honoured() -> None:
    clock = FakeClock()
    job = Job(RUNNING, RateLimitedError("429", retry_after=30.0), ServerError("503"), DONE)
    assert await _wait(job, clock) == DONE
    assert clock.sleeps[1] >= 30.0  # the server's Retry-After, not the 1 s backoff
    assert job.polls == 4


@pytest.mark.asyncio
async def test_retry_after_zero_never_spins() -> None:
    clock = FakeClock()
    job = Job(*[RateLimitedError("429", retry_after=0.0)] * 5, DONE)
    assert await _wait(job, clock) == DONE
    assert len(clock.sleeps) == 5 and min(clock.sleeps) >= 0.05


@pytest.mark.asyncio
async def test_polling_that_keeps_failing_gives_up_after_max_attempts() -> None:
    job = Job(ServerError("503 from the vendor"))
    with pytest.raises(ServerError):
        await _wait(job, FakeClock(), max_attempts=3)
    assert job.polls == 3


@pytest.mark.asyncio
async def test_a_failing_poll_at_the_deadline_is_a_deadline_error() -> None:
    clock = FakeClock()
    job = Job(RUNNING, RUNNING, RUNNING, ServerError("503"))
    with pytest.raises(DeadlineExceededError, match="the last poll failed"):
        await _wait(job, clock, deadline=5.0)
