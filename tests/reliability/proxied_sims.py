"""Both simulators behind fault proxies, for the reliability suite.

:func:`proxied_sims` starts a :class:`~streamx.testing.harness.SimHarness` and puts one
:class:`~streamx.testing.FaultProxy` in front of each server streamx talks to: the Symplify
API (start, poll, result URL), the result object store (the download: presigned URLs are
rewritten to point at the proxy; the v2 signature does not cover the host) and the Cordial API
(start, poll). The fault plan counts every request each simulator route answered, so a test
can bound what an outage cost the vendor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from streamx.config import Config, EngineConfig, ExportSpec
from streamx.engine.clock import Clock
from streamx.engine.runner import Engine, EngineEvent, ExportResult
from streamx.testing import FaultPlan, FaultProxy, Faults
from streamx.testing.harness import FAST_ENGINE, CountingStore, SimHarness
from streamx.testing.seeded import SeededProvider

#: Short timeouts and few attempts: a black-holed call costs ``read_timeout`` per attempt.
MATRIX_ENGINE = dataclasses.replace(
    FAST_ENGINE, read_timeout=0.25, connect_timeout=1.0, max_attempts=3, transfer_attempts=2
)


class CountingPlan(FaultPlan):
    """A fault plan that also counts the requests each route answered (``seen[route]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()

    def take(self, route: str, account: str | None) -> Faults:
        self.seen[route] += 1
        return super().take(route, account)


class ProxiedStore(CountingStore):
    """The object store, handing out presigned URLs that lead through ``public_base``, and
    remembering every URL it issued (``issued``: their signatures are secrets to look for)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.public_base: str | None = None
        self.issued: list[str] = []

    def presign(self, key: str, **options: Any) -> str:
        url = super().presign(key, **options)
        if self.public_base is not None:
            url = self.public_base + url.removeprefix(self.base_url)
        self.issued.append(url)
        return url


@dataclass
class ProxiedSims:
    """The harness, its three proxies, the counting fault plan and the recording store."""

    sims: SimHarness
    symplify: FaultProxy
    store: FaultProxy
    cordial: FaultProxy
    plan: CountingPlan
    objects: ProxiedStore

    @property
    def proxies(self) -> tuple[FaultProxy, ...]:
        return (self.symplify, self.store, self.cordial)

    def config(self, engine: EngineConfig = MATRIX_ENGINE, **accounts: dict[str, Any]) -> Config:
        """The harness config with both accounts pointed at their proxies."""
        customer = self.sims.symplify.customer_id
        overrides: dict[str, dict[str, Any]] = {
            "sym": {"base_url": f"{self.symplify.url}/rest/{customer}"},
            "cor": {"base_url": f"{self.cordial.url}/v2"},
        }
        for name, changes in accounts.items():
            overrides[name] = {**overrides.get(name, {}), **changes}
        return self.sims.config(engine=engine, accounts=overrides)

    async def run(
        self,
        specs: list[ExportSpec],
        config: Config | None = None,
        *,
        on_event: Callable[[EngineEvent], None] | None = None,
        clock: Clock | None = None,
    ) -> list[ExportResult]:
        """Run ``specs`` with a fresh engine (its own HTTP session: no pooled connections)."""
        config = config or self.config()
        async with Engine(config, clock=clock or self.sims.clock, on_event=on_event) as engine:
            return await engine.run(specs)


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@contextlib.asynccontextmanager
async def proxied_sims(directory: Path, rows: int = 300) -> AsyncIterator[ProxiedSims]:
    """Simulators with counting faults, a proxying object store and three fault proxies."""
    sims = SimHarness(SeededProvider(rows=rows), directory=directory)
    plan = CountingPlan()
    unused = sims.store.directory
    store = ProxiedStore(faults=plan)
    sims.faults = plan
    sims.store = sims.symplify.store = store
    sims.symplify.faults = sims.cordial.faults = plan
    shutil.rmtree(unused, ignore_errors=True)
    async with (
        sims,
        FaultProxy("127.0.0.1", _port(sims.symplify.base_url)) as symplify,
        FaultProxy("127.0.0.1", _port(store.base_url)) as store_proxy,
        FaultProxy("127.0.0.1", _port(sims.cordial.base_url)) as cordial,
    ):
        store.public_base = store_proxy.url
        yield ProxiedSims(sims, symplify, store_proxy, cordial, plan, store)
