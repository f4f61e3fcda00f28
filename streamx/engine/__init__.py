"""The export engine: time, backoff, retries and error classification (runner and state later).

The modules here are deliberately free of vendor knowledge: vendor clients and byte sources build
on :func:`~streamx.engine.retry.call_with_retries` and the error mapping in
:mod:`streamx.engine.errors`.
"""

from streamx.engine.backoff import Backoff, next_delay
from streamx.engine.clock import Clock, FakeClock, SystemClock
from streamx.engine.retry import Retrier, RetryBudget, RetryPolicy, call_with_retries

__all__ = [
    "Backoff",
    "Clock",
    "FakeClock",
    "Retrier",
    "RetryBudget",
    "RetryPolicy",
    "SystemClock",
    "call_with_retries",
    "next_delay",
]
