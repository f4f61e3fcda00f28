"""A seeded :class:`~streamx.testing.provider.DataProvider`, and the records an export must yield.

:class:`SeededProvider` feeds the simulators with the realistic generators of
:mod:`streamx.testing.data`: the rows of an export depend only on ``(seed, account, stream,
remote id)``, so a test can regenerate them after the fact. :func:`expected_records` does exactly
that: it rebuilds the export's file(s) with the simulator's own shaping functions, parses them in
memory with streamx's codecs and normalizes them with the stream's normalizer. Comparing that
with what the engine published checks transport, resume, chunk order and publication record for
record (normalizer correctness has its own document-based tests).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from streamx.codecs.base import Row as ParsedRow
from streamx.codecs.gzip import make_decoder
from streamx.codecs.sniff import SniffingParser
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.testing import data
from streamx.testing.data import ACTIVITY_CSV_COLUMNS as ACTIVITY_COLUMNS
from streamx.testing.provider import (
    CordialEndpoint,
    Row,
    SymplifyFormat,
    cordial_file_chunks,
    cordial_file_spec,
    cordial_row_filter,
    parse_time,
    split_rows,
    symplify_file_chunks,
)

#: Symplify period -> days back from :attr:`SeededProvider.now`.
PERIOD_DAYS = {"TODAY": 1, "LAST_DAY": 1, "LAST_3_DAYS": 3, "LAST_WEEK": 7, "LAST_2_WEEKS": 14}
CORDIAL_STREAMS: dict[str, str] = {
    "contactactivityexport": "cordial.contact_activity",
    "contactexports": "cordial.contacts",
    "audiencetrendsexport": "cordial.audience_trends",
}
#: ``(account, stream, remote id) -> value``: lets one provider vary per export.
PerExport = Callable[[str, str, str], Any]


@dataclass
class SeededProvider:
    """Deterministic rows for every simulated export.

    ``rows`` is the row count of each export (an int, or a function of ``(account, stream,
    remote id)``); ``symplify`` the result file encoding (likewise). ``padding`` adds a
    ``note`` field of that many characters to every row (wide rows make big files cheaply).
    The Symplify ``account`` is the customer id, the Cordial one the API key, as the simulators
    pass them.
    """

    seed: int = 7
    rows: int | PerExport = 100
    symplify: SymplifyFormat | PerExport = field(default_factory=SymplifyFormat)
    padding: int = 0
    now: dt.datetime = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def count(self, account: str, stream: str, remote_id: str) -> int:
        """How many rows the export has (before Cordial's own filters)."""
        value = self.rows(account, stream, remote_id) if callable(self.rows) else self.rows
        return int(value)

    def seed_of(self, account: str, stream: str, remote_id: str) -> int:
        """The generator seed of one export."""
        text = "\x1f".join((str(self.seed), account, stream, remote_id))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")

    # -- Symplify ---------------------------------------------------------------------------

    def symplify_rows(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> Iterator[Row]:
        stream = f"symplify.{export_type.lower()}"
        rows = data.symplify_rows(
            self.seed_of(customer_id, stream, batch_id),
            export_type=export_type,
            rows=self.count(customer_id, stream, batch_id),
            window=data.Window.days_back(PERIOD_DAYS.get(period, 1), now=self.now),
            customer_id=customer_id,
        )
        return self._padded(rows)

    def symplify_format(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> SymplifyFormat:
        if callable(self.symplify):
            chosen: SymplifyFormat = self.symplify(
                customer_id, f"symplify.{export_type.lower()}", batch_id
            )
            return chosen
        return self.symplify

    # -- Cordial ----------------------------------------------------------------------------

    def cordial_rows(
        self, account: str, endpoint: CordialEndpoint, request: Mapping[str, Any], job_id: str
    ) -> Iterator[Row]:
        stream = CORDIAL_STREAMS[endpoint]
        seed, count = self.seed_of(account, stream, job_id), self.count(account, stream, job_id)
        if endpoint == "contactactivityexport":
            window = _window(request) or data.Window.days_back(1, now=self.now)
            rows = data.cordial_activity_rows(seed, rows=count, window=window, account=account)
        elif endpoint == "contactexports":
            lists = tuple(str(name) for name in request.get("lists") or data.LISTS)
            rows = data.cordial_contact_rows(seed, rows=count, lists=lists, account=account)
        else:
            audiences = tuple(request.get("audiences") or data.AUDIENCES)
            rows = data.cordial_audience_trend_rows(
                seed, days=_days(request), audiences=audiences, account=account
            )
        return self._padded(rows)

    def cordial_columns(
        self, account: str, endpoint: CordialEndpoint, request: Mapping[str, Any], job_id: str
    ) -> list[str]:
        padding = ["note"] if self.padding else []
        if endpoint == "contactactivityexport":
            return [*ACTIVITY_COLUMNS, *padding]
        if endpoint == "audiencetrendsexport":
            return ["audience", *(day.isoformat() for day in _days(request)), *padding]
        first = next(data.cordial_contact_rows(0, rows=1, lists=_lists(request)), {})
        return [*first, *padding]

    def _padded(self, rows: Iterator[Row]) -> Iterator[Row]:
        if not self.padding:
            return rows
        return ({**row, "note": _note(index, self.padding)} for index, row in enumerate(rows))


def _note(index: int, size: int) -> str:
    unit = f"row {index} padding "
    return (unit * (size // len(unit) + 1))[:size]


def _lists(request: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(name) for name in request.get("lists") or data.LISTS)


def _window(request: Mapping[str, Any]) -> data.Window | None:
    start = parse_time(request.get("selected_timeframe_start"))
    end = parse_time(request.get("selected_timeframe_end"))
    return data.Window(start, end) if start and end and start < end else None


def _days(request: Mapping[str, Any]) -> list[dt.date]:
    window = _window(request)
    if window is None:
        return [dt.date(2026, 10, 31)]
    first, last = window.start.date(), window.end.date()
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


# --- expected records --------------------------------------------------------------------------


def expected_records(
    provider: SeededProvider,
    ctx: ExportContext,
    *,
    vendor_account: str,
    request: Mapping[str, Any],
) -> Iterator[dict[str, Any]]:
    """The records streamx must publish for one simulated export, in order.

    ``ctx`` is the export's context as the engine builds it (source, stream, account name,
    remote id as ``export_id``, column labels). ``vendor_account`` is what the simulator passed
    to the provider (Symplify customer id, Cordial API key); ``request`` is the export request
    (Symplify: ``exportType`` and ``period``; Cordial: the POST body, whose file options decide
    the files' shape: the destination does not matter).
    """
    normalize = get_normalizer(ctx.stream)
    for file in _files(provider, ctx, vendor_account, request):
        for row in _parse(file):
            yield from normalize(row, ctx)


def _files(
    provider: SeededProvider, ctx: ExportContext, account: str, request: Mapping[str, Any]
) -> Iterator[Iterable[bytes]]:
    remote_id = ctx.export_id
    if ctx.source == "symplify":
        args = (account, str(request["exportType"]), str(request["period"]), remote_id)
        yield symplify_file_chunks(provider.symplify_rows(*args), provider.symplify_format(*args))
        return
    endpoint = cast(
        CordialEndpoint,
        next(name for name, stream in CORDIAL_STREAMS.items() if stream == ctx.stream),
    )
    keep = cordial_row_filter(endpoint, request)
    generated = provider.cordial_rows(account, endpoint, request, remote_id)
    rows = (row for row in generated if keep(row))
    spec = cordial_file_spec(
        request, lambda: provider.cordial_columns(account, endpoint, request, remote_id)
    )
    for group in split_rows(rows, spec.limit_per_file):
        yield cordial_file_chunks(group, spec)


def _parse(chunks: Iterable[bytes]) -> Iterator[ParsedRow]:
    """Rows of one file, decoded and parsed as the pipeline does (bad rows are an error here:
    the generators never produce any)."""
    stream = iter(chunks)
    head = b""
    for chunk in stream:
        head += chunk
        if len(head) >= 2:
            break
    decoder, parser = make_decoder(head), SniffingParser()
    items = parser.feed(decoder.feed(head))
    for chunk in stream:
        items += parser.feed(decoder.feed(chunk))
        yield from _rows(items)
        items = []
    items += parser.feed(decoder.flush())
    items += parser.flush()
    yield from _rows(items)


def _rows(items: list[Any]) -> Iterator[ParsedRow]:
    for item in items:
        if not isinstance(item, ParsedRow):
            raise ValueError(f"generated data did not parse: line {item.line}: {item.reason}")
        yield item


def published_records(root: str | os.PathLike[str], manifest: Manifest) -> Iterator[dict[str, Any]]:
    """Stream the records of a published JSON-lines export (the parts its manifest names, in
    order) from the local sink directory ``root``; parts may be gzip or uncompressed."""
    if manifest.format != "jsonl" or manifest.compression not in ("gzip", "none"):
        raise ValueError("published_records reads jsonl parts, gzip or uncompressed")
    for part in manifest.parts:
        path = os.path.join(os.fspath(root), *part.path.split("/"))
        yield from _jsonl(path, gzipped=manifest.compression == "gzip")


def _jsonl(path: str, *, gzipped: bool) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as handle:
        for line in handle:
            yield orjson.loads(line)


__all__ = ["PERIOD_DAYS", "SeededProvider", "expected_records", "published_records"]
