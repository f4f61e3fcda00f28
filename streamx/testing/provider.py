"""What the simulated exports contain: the data-provider interface and the file shaping.

The fakes never invent rows themselves. They ask a :class:`DataProvider` for rows (the seeded
generator in ``streamx.testing.data`` implements it; :class:`StaticRows` is a placeholder that
replays rows a test passes in) and shape them into the bytes a vendor would deliver: Symplify's
result file (JSON array by default, the provider may choose JSON lines or CSV and gzip), Cordial's
CSV / JSON-lines / delimited-text chunk files with the request's columns, labels, header and list
columns applied. Everything is a generator of byte chunks, so a 5 GB export costs flat memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from streamx.testing.files import gzip_chunks, json_array_chunks, jsonl_chunks

Row = dict[str, Any]
SymplifyEncoding = Literal["json_array", "jsonl", "csv"]
CordialEndpoint = Literal["contactactivityexport", "contactexports", "audiencetrendsexport"]
_FLUSH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class SymplifyFormat:
    """How a Symplify result file is encoded (undocumented upstream, so the provider decides)."""

    encoding: SymplifyEncoding = "json_array"
    gzip: bool = False


class DataProvider(Protocol):
    """The source of every simulated row. Implementations must be deterministic per arguments
    (a test regenerates the rows to compare) and lazy (rows are pulled one at a time, possibly
    from a worker thread, and the same call may be repeated)."""

    def symplify_rows(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> Iterator[Row]:
        """Rows of one statistics export. ``export_type`` is canonical (``OPENED`` -> ``OPENS``)."""
        ...

    def symplify_format(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> SymplifyFormat:
        """Encoding of that export's result file."""
        ...

    def cordial_rows(
        self, account: str, endpoint: CordialEndpoint, request: Mapping[str, Any], job_id: str
    ) -> Iterator[Row]:
        """Rows keyed by Cordial field names (nested dicts or dotted keys both work).

        ``request`` is the validated POST body. The fake itself filters activity rows by
        ``action``, message type and ``time`` and applies the column options, so a provider may
        ignore those; selectors the fake cannot check (contact, audience, message id) are the
        provider's to honour."""
        ...

    def cordial_columns(
        self, account: str, endpoint: CordialEndpoint, request: Mapping[str, Any], job_id: str
    ) -> list[str]:
        """The column set of an export that names no columns itself (CSV needs it up front)."""
        ...


def flatten(row: Mapping[str, Any], prefix: str = "") -> Row:
    """Nested objects to dotted keys (``properties.url``), as Cordial's CSV columns are named."""
    flat: Row = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass
class StaticRows:
    """Placeholder provider: every export contains ``rows`` (``repeat`` times over).

    Meant for tests of the fakes themselves; the seeded generator replaces it everywhere else.
    ``columns`` defaults to the union of the rows' flattened keys, in first-seen order.
    """

    rows: Sequence[Mapping[str, Any]] = ()
    repeat: int = 1
    symplify: SymplifyFormat = field(default_factory=SymplifyFormat)
    columns: Sequence[str] | None = None

    def _iter(self) -> Iterator[Row]:
        for _ in range(self.repeat):
            for row in self.rows:
                yield dict(row)

    def symplify_rows(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> Iterator[Row]:
        return self._iter()

    def symplify_format(
        self, customer_id: str, export_type: str, period: str, batch_id: str
    ) -> SymplifyFormat:
        return self.symplify

    def cordial_rows(
        self, account: str, endpoint: CordialEndpoint, request: Mapping[str, Any], job_id: str
    ) -> Iterator[Row]:
        return self._iter()

    def cordial_columns(
        self, account: str, endpoint: CordialEndpoint, request: Mapping[str, Any], job_id: str
    ) -> list[str]:
        if self.columns is not None:
            return list(self.columns)
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(flatten(row)))
        return list(seen)


# --- Symplify ------------------------------------------------------------------------------------


def symplify_file_chunks(rows: Iterable[Row], fmt: SymplifyFormat) -> Iterator[bytes]:
    """A Symplify result file as byte chunks."""
    if fmt.encoding == "json_array":
        chunks = _batched(json_array_chunks(rows))
    elif fmt.encoding == "jsonl":
        chunks = jsonl_chunks(rows)
    else:
        flat_rows = (flatten(row) for row in rows)
        chunks = _delimited(flat_rows, _symplify_columns, header=True, delimiter=",")
    return gzip_chunks(chunks) if fmt.gzip else chunks


def _symplify_columns(first: Row) -> list[tuple[str, str]]:
    return [(name, name) for name in first]


# --- Cordial -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CordialFileSpec:
    """The request's file options, resolved.

    ``columns`` holds ``(field name, header label)`` pairs; ``None`` (JSON only) means whole rows.
    ``list_columns`` are list names whose value is list membership, written as ``1`` / ``0``.
    """

    file_type: Literal["csv", "json", "txt"]
    columns: tuple[tuple[str, str], ...] | None
    show_header: bool = False
    delimiter: str = ","
    limit_per_file: int = 0
    compress: bool = False
    list_columns: frozenset[str] = frozenset()


def split_rows(rows: Iterator[Row], limit: int) -> Iterator[Iterator[Row]]:
    """Groups of at most ``limit`` rows (one group of all rows when ``limit`` is 0).

    Always at least one group, so an export with no rows still produces one (empty) file.
    Groups are produced in order; what a consumer leaves of one (a file cut short by a fault)
    is skipped, so the next group still starts at its own boundary."""
    if limit <= 0:
        yield rows
        return
    first = next(rows, None)
    if first is None:
        yield iter(())
        return
    while first is not None:
        rest = itertools.islice(rows, limit - 1)
        yield itertools.chain((first,), rest)
        for _ in rest:
            pass
        first = next(rows, None)


def cordial_file_chunks(rows: Iterable[Row], spec: CordialFileSpec) -> Iterator[bytes]:
    """One Cordial export file (one chunk of ``limitRecordsPerFile``) as byte chunks."""
    if spec.file_type == "json":
        chunks = _cordial_jsonl(rows, spec)
    else:
        columns = spec.columns or ()
        chunks = _delimited(
            (_cordial_flat(row, spec) for row in rows),
            lambda _first: list(columns),
            header=spec.show_header,
            delimiter=spec.delimiter,
        )
    return gzip_chunks(chunks) if spec.compress else chunks


def _cordial_flat(row: Row, spec: CordialFileSpec) -> Row:
    flat = flatten(row)
    for name in spec.list_columns:
        flat[name] = "1" if str(flat.get(name, "0")).lower() in ("1", "true") else "0"
    return flat


def _cordial_jsonl(rows: Iterable[Row], spec: CordialFileSpec) -> Iterator[bytes]:
    buffer = bytearray()
    for row in rows:
        if spec.columns is not None:
            flat = _cordial_flat(row, spec)
            row = {label: flat.get(name) for name, label in spec.columns}
        buffer += orjson.dumps(row, default=str) + b"\n"
        if len(buffer) >= _FLUSH_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# --- Cordial request options -> rows and file shape ----------------------------------------------


def parse_time(value: Any) -> dt.datetime | None:
    """ISO-8601 date or date-time (``Z``, ``+0000``, ``+00:00``, naive = UTC) as aware UTC."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if re.search(r"[+-]\d{4}$", text) and "T" in text:
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def as_boolean(value: Any) -> bool | None:
    """Laravel's boolean rule (true/false, 1/0, "1"/"0") plus "true"/"false" strings."""
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    return True if text in ("1", "true") else False if text in ("0", "false") else None


def as_count(value: Any) -> int | None:
    """A non-negative integer, also from a digit string (form bodies, the OpenAPI example)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def cordial_file_spec(
    request: Mapping[str, Any], default_columns: Callable[[], list[str]]
) -> CordialFileSpec:
    """Resolve a validated request's file options.

    Columns: ``columnHeaders`` (name -> label) win; else ``fields`` plus one column per list
    (only ``lists``: the email plus the lists, as the contactexports docs say); else JSON exports
    whole rows and CSV / TXT the provider's ``default_columns()``."""
    file_type = str(request.get("exportType", "csv")).lower()
    lists = [str(item) for item in request.get("lists", [])]
    columns: list[tuple[str, str]] | None
    if request.get("columnHeaders"):
        columns = [(h["name"], h.get("label") or h["name"]) for h in request["columnHeaders"]]
    elif request.get("fields") or lists:
        names = list(request.get("fields") or ["channels.email.address"]) + lists
        columns = [(name, name) for name in names]
    elif file_type == "json":
        columns = None
    else:
        columns = [(name, name) for name in default_columns()]
    return CordialFileSpec(
        file_type="json" if file_type == "json" else "txt" if file_type == "txt" else "csv",
        columns=tuple(columns) if columns is not None else None,
        show_header=bool(as_boolean(request.get("showHeader", False))),
        delimiter=str(request.get("delimiter", ",")) if file_type == "txt" else ",",
        limit_per_file=as_count(request.get("limitRecordsPerFile", 0)) or 0,
        compress=bool(as_boolean(request.get("compress", False))),
        list_columns=frozenset(lists),
    )


def cordial_row_filter(endpoint: str, request: Mapping[str, Any]) -> Callable[[Row], bool]:
    """The request's selectors that can be checked on a row itself.

    Activity: ``action`` in the selected action name(s); message type ``batch`` = rows with a
    ``bmID``, ``automation`` = rows with an ``mdtID`` and no ``bmID``; ``time`` inside the
    timeframe (rows without a parsable time are kept). Audience trends: ``audience`` among the
    requested audiences. Contacts: everything."""
    if endpoint == "audiencetrendsexport":
        wanted = set(request.get("audiences", ()))
        return lambda row: "audience" not in row or row["audience"] in wanted
    if endpoint != "contactactivityexport":
        return lambda row: True
    single = request.get("selected_action_name")
    actions = {single} if single else set(request.get("selected_action_names") or ())
    message_type = request.get("selected_message_type")
    start = parse_time(request.get("selected_timeframe_start"))
    end = parse_time(request.get("selected_timeframe_end"))

    def keep(row: Row) -> bool:
        if actions and row.get("action") not in actions:
            return False
        if message_type == "batch" and not row.get("bmID"):
            return False
        if message_type == "automation" and (row.get("bmID") or not row.get("mdtID")):
            return False
        moment = parse_time(row.get("time"))
        return moment is None or start is None or end is None or start <= moment <= end

    return keep


# --- shared --------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _delimited(
    rows: Iterable[Row],
    columns_for: Callable[[Row], list[tuple[str, str]]],
    *,
    header: bool,
    delimiter: str,
) -> Iterator[bytes]:
    """CSV / delimited text of flat rows; ``columns_for(first_row)`` gives ``(name, label)``."""
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, lineterminator="\r\n")
    columns: list[tuple[str, str]] | None = None
    for row in rows:
        if columns is None:
            columns = columns_for(row)
            if header:
                writer.writerow([label for _, label in columns])
        writer.writerow([_cell(row.get(name)) for name, _ in columns])
        if text.tell() >= _FLUSH_BYTES:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    if columns is None and header:
        labels = [label for _, label in columns_for({})]
        if labels:
            writer.writerow(labels)
    if text.tell():
        yield text.getvalue().encode()


def _batched(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Coalesce tiny chunks (one per row) into ~256 KiB writes."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        if len(buffer) >= _FLUSH_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


__all__ = [
    "CordialEndpoint",
    "CordialFileSpec",
    "DataProvider",
    "Row",
    "StaticRows",
    "SymplifyEncoding",
    "SymplifyFormat",
    "as_boolean",
    "as_count",
    "cordial_file_chunks",
    "cordial_file_spec",
    "cordial_row_filter",
    "flatten",
    "parse_time",
    "split_rows",
    "symplify_file_chunks",
]
