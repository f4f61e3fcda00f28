"""The export manifest: the commit record that makes a published export visible.

A manifest is written *last*, after every part it names is durable under its final name, so a
reader that trusts only parts named by a manifest never sees a half-written export. It records
what each part holds (records, stored and uncompressed size, sha256 of the stored bytes), the
row accounting (``rows_ok + rows_quarantined == rows_read``), the source files and timings.
Paths in it are sink-relative (``/``-separated, the strings given to ``Sink.open``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, TypedDict

import orjson

from streamx.exceptions import InputError


class SourceFile(TypedDict):
    """What was read from one input file."""

    name: str
    rows_read: int
    bytes_read: int


@dataclass(slots=True)
class PartInfo:
    """One published part."""

    path: str
    records: int
    #: Size as stored (after compression).
    bytes: int
    uncompressed_bytes: int
    #: Hex sha256 of the stored bytes.
    sha256: str


@dataclass(slots=True)
class Manifest:
    """Everything a reader needs to trust and verify one published export."""

    schema_version: int
    source: str
    stream: str
    account: str
    export_id: str
    dt: str
    format: str
    compression: str
    parts: list[PartInfo]
    records: int
    rows_read: int
    rows_ok: int
    rows_quarantined: int
    quarantine: str | None
    source_files: list[SourceFile]
    started_at: str
    finished_at: str
    streamx_version: str

    def to_json(self) -> bytes:
        """Indented JSON (with a final newline), keys in declaration order."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; :class:`InputError` says what is missing or malformed.

        Keys this version does not know are ignored, so older readers accept newer manifests.
        """
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InputError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise InputError("manifest is not a JSON object")
        try:
            return _build(raw)
        except KeyError as exc:
            raise InputError(f"manifest is missing {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise InputError(f"manifest is malformed: {exc}") from exc


_SCALARS: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "source": str,
    "stream": str,
    "account": str,
    "export_id": str,
    "dt": str,
    "format": str,
    "compression": str,
    "records": int,
    "rows_read": int,
    "rows_ok": int,
    "rows_quarantined": int,
    "quarantine": (str, type(None)),
    "started_at": str,
    "finished_at": str,
    "streamx_version": str,
}


def _build(raw: dict[str, Any]) -> Manifest:
    scalars = {key: _typed(raw, key, kind) for key, kind in _SCALARS.items()}
    parts = [_part(item) for item in _typed(raw, "parts", list)]
    files = [_source_file(item) for item in _typed(raw, "source_files", list)]
    return Manifest(parts=parts, source_files=files, **scalars)


def _part(item: Any) -> PartInfo:
    if not isinstance(item, dict):
        raise TypeError(f"part entry is not an object: {item!r}")
    return PartInfo(
        path=_typed(item, "path", str),
        records=_typed(item, "records", int),
        bytes=_typed(item, "bytes", int),
        uncompressed_bytes=_typed(item, "uncompressed_bytes", int),
        sha256=_typed(item, "sha256", str),
    )


def _source_file(item: Any) -> SourceFile:
    if not isinstance(item, dict):
        raise TypeError(f"source file entry is not an object: {item!r}")
    return SourceFile(
        name=_typed(item, "name", str),
        rows_read=_typed(item, "rows_read", int),
        bytes_read=_typed(item, "bytes_read", int),
    )


def _typed(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{key!r} has the wrong type: {value!r}")
    return value
