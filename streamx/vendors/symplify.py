"""Symplify (formerly Carma) statistics exports: start a batch, poll it, stream its result.

Facts (vendor-docs/symplify-statistics-export*.txt): every call is
``<server>/rest/<customerId>/…`` with the header ``X-Carma-Authentication-Token``;
``POST batches/exports/statistics {"exportType", "period"}`` answers ``{"batchId": "101111"}``;
``GET batches/<id>`` reports ``status`` PENDING | IN_PROGRESS | FINISHED (anything else is
terminal: a failure); ``GET batches/<id>/result/url`` answers the presigned URL of the result
as **text/plain** (so it is asked for with ``Accept: text/plain``, never application/json).
The URL expires; :class:`~streamx.sources.http.HttpSource` asks this client for a fresh one and
resumes at the byte offset reached. A 429 without ``Retry-After`` waits ``rate_limit_wait``
(60 s by default: Symplify allows about one call per minute and customer).

The server is not fixed: EU customers reach Symplify through regional proxies, North-American
customers through another, and old accounts through the legacy Carma host, each with the same
``/rest/<customerId>/`` API below it. So ``base_url`` is configuration; any of these forms works:
``https://HOST``, ``https://HOST/rest``, ``https://HOST/rest/<customerId>`` (the customer id is
then taken from the URL), and a proxy mounted under a path, ``https://HOST/PATH[/rest]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiohttp

from streamx.engine.clock import Clock
from streamx.engine.retry import call_with_retries
from streamx.exceptions import ConfigError
from streamx.records import STREAMS
from streamx.sources.http import HttpSource
from streamx.vendors.base import (
    ApiClient,
    CallOptions,
    ClientSettings,
    JobStatus,
    MalformedResponseError,
    ResultFile,
    count_field,
    path_segment,
    text_field,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from streamx.config import AccountConfig, ExportSpec
    from streamx.landing import LandingZone

TOKEN_HEADER = "X-Carma-Authentication-Token"
EXPORT_TYPES = (
    "LISTS",
    "CAMPAIGNS",
    "MESSAGES",
    "OPENS",
    "SENT",
    "CLICKS",
    "PROJECTS",
    "HARD_BOUNCES",
    "SOFT_BOUNCES",
    "OPTOUTS",
)
#: LAST_2_WEEKS is missing from the Carma-era docs; current servers accept all five.
PERIODS = ("TODAY", "LAST_DAY", "LAST_3_DAYS", "LAST_WEEK", "LAST_2_WEEKS")
RUNNING = frozenset({"PENDING", "IN_PROGRESS"})
FINISHED = "FINISHED"
#: Transfers in flight per customer unless configured: Symplify throttles per customer.
DEFAULT_MAX_TRANSFERS = 1


def split_base_url(url: str) -> tuple[str, str | None]:
    """``(<server>/rest, customer id or None)`` from any accepted ``base_url`` form."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(f"Symplify base_url must be an http(s) URL without a query: {url!r}")
    segments = [segment for segment in parts.path.split("/") if segment]
    customer = None
    if len(segments) >= 2 and segments[-2] == "rest":
        customer = segments.pop()
    if not segments or segments[-1] != "rest":
        segments.append("rest")
    return f"{parts.scheme}://{parts.netloc}/{'/'.join(segments)}", customer


class SymplifyClient:
    """One Symplify customer account."""

    vendor = "symplify"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account: str,
        base_url: str,
        token: str,
        clock: Clock,
        customer_id: str | None = None,
        rate_limit_wait: float = 60.0,
        retry_after_cap: float = 300.0,
        connect_timeout: float = 30.0,
        read_timeout: float = 60.0,
    ) -> None:
        root, from_url = split_base_url(base_url)
        if customer_id and from_url and customer_id != from_url:
            raise ConfigError(
                f"account {account!r}: customer_id {customer_id} differs from base_url's {from_url}"
            )
        customer = customer_id or from_url
        if not customer:
            raise ConfigError(f"account {account!r}: no customer_id (set it or end base_url in it)")
        self.account = account
        self.customer_id = customer
        self._root = f"{root}/{customer}"
        self._session = session
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._api = ApiClient(
            session,
            vendor=self.vendor,
            account=account,
            clock=clock,
            headers={TOKEN_HEADER: token},
            rate_limit_default=rate_limit_wait,
            retry_after_cap=retry_after_cap,
        )

    @classmethod
    def from_account(
        cls,
        account: AccountConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        settings: ClientSettings,
        landing: LandingZone | None = None,
    ) -> SymplifyClient:
        """Build the client of a configured account (Symplify has no landing zone)."""
        if not account.base_url:
            raise ConfigError(f"account {account.name!r}: a Symplify account needs base_url")
        return cls(
            session,
            account=account.name,
            base_url=account.base_url,
            token=account.secret,
            clock=clock,
            customer_id=account.customer_id,
            rate_limit_wait=account.rate_limit_wait,
            retry_after_cap=settings.retry_after_cap,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )

    # -- the VendorClient protocol --------------------------------------------------------

    def check(self, spec: ExportSpec, stream: str) -> None:
        if spec.period not in PERIODS:
            raise ConfigError(
                f"export {spec.name!r}: Symplify needs period = one of {', '.join(PERIODS)}"
                f" (got {spec.period!r})"
            )
        if spec.start or spec.end or spec.days or spec.options:
            raise ConfigError(
                f"export {spec.name!r}: Symplify exports take only a period (no start, end, "
                "days or options)"
            )
        if STREAMS[stream].vendor_export not in EXPORT_TYPES:
            raise ConfigError(f"export {spec.name!r}: {stream} is not a Symplify export type")

    def column_labels(self, spec: ExportSpec) -> dict[str, str]:
        return {}

    async def start(self, spec: ExportSpec, stream: str) -> str:
        body = {"exportType": STREAMS[stream].vendor_export, "period": spec.period}
        answer = await self._api.json(
            "POST", self._url("batches/exports/statistics"), subject="start export", body=body
        )
        batch_id = text_field(answer.get("batchId")) if isinstance(answer, dict) else None
        if batch_id is None:
            raise MalformedResponseError(
                f"start export: no batchId in the answer {answer!r:.200}", **self._api.ids()
            )
        return batch_id

    async def poll(self, remote_id: str) -> JobStatus:
        answer = await self._api.json(
            "GET",
            self._url(f"batches/{path_segment(remote_id)}"),
            subject="poll batch",
            export_id=remote_id,
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
            raise MalformedResponseError(
                f"poll batch: no status in the answer {answer!r:.200}", **self._api.ids(remote_id)
            )
        state = answer["status"].strip().upper()
        processed, total = count_field(answer.get("processed")), count_field(answer.get("total"))
        progress = min(1.0, processed / total) if processed is not None and total else None
        if state == FINISHED:
            return JobStatus(state, done=True, progress=1.0)
        if state in RUNNING:
            return JobStatus(state, progress=progress)
        return JobStatus(state, failed=True, reason=f"batch {remote_id} ended with status {state}")

    async def locate(self, remote_id: str) -> list[ResultFile]:
        first_url = await self.result_url(remote_id)
        name = urlsplit(first_url).path.rsplit("/", 1)[-1] or f"{remote_id}_result"
        opener = _ResultOpener(self, remote_id, name, first_url)
        return [ResultFile(name=name, size=None, open=opener)]

    async def close(self) -> None:
        return None

    # -- helpers --------------------------------------------------------------------------

    async def result_url(self, remote_id: str) -> str:
        """A fresh presigned URL of the batch's result (fetched as text/plain)."""
        data = await self._api.request(
            "GET",
            self._url(f"batches/{path_segment(remote_id)}/result/url"),
            subject="get result URL",
            accept="text/plain",
            export_id=remote_id,
        )
        url = data.decode("utf-8", "replace").strip().strip('"')
        if not url.startswith(("https://", "http://")):
            raise MalformedResponseError(
                "get result URL: the answer is not a URL", **self._api.ids(remote_id)
            )
        return url

    def _url(self, path: str) -> str:
        return f"{self._root}/{path}"

    def source(
        self, remote_id: str, name: str, first_url: str | None, options: CallOptions
    ) -> HttpSource:
        """The resumable download of the result; expired URLs are replaced by fresh ones."""
        pending = [first_url] if first_url else []

        async def fresh_url() -> str:
            if pending:
                return pending.pop()
            return await call_with_retries(
                lambda: self.result_url(remote_id),
                policy=options.policy,
                clock=options.clock,
                rng=options.rng,
            )

        return HttpSource(
            self._session,
            fresh_url,
            name=name,
            policy=options.policy,
            clock=options.clock,
            rng=options.rng,
            vendor=self.vendor,
            account=self.account,
            export_id=remote_id,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
        )


class _ResultOpener:
    """``ResultFile.open``: the first open uses the URL ``locate`` fetched, later ones fresh."""

    def __init__(self, client: SymplifyClient, remote_id: str, name: str, first_url: str) -> None:
        self._client = client
        self._remote_id = remote_id
        self._name = name
        self._first_url: str | None = first_url

    def __call__(self, options: CallOptions) -> AsyncIterator[bytes]:
        url, self._first_url = self._first_url, None
        return self._client.source(self._remote_id, self._name, url, options).chunks()


__all__ = [
    "DEFAULT_MAX_TRANSFERS",
    "EXPORT_TYPES",
    "PERIODS",
    "TOKEN_HEADER",
    "SymplifyClient",
    "split_base_url",
]
