"""Choose the parser from the first decompressed bytes, never from the file name.

Vendors name files loosely (Symplify's ``…_result.json`` content is undocumented), so the bytes
decide. After an optional UTF-8 BOM and whitespace:

* ``[`` → ``json_array``;
* ``{`` → if the first line is a complete JSON object: ``jsonl`` when another line follows; when
  it is the only line, ``jsonl`` too (a one-record JSON lines file) unless one of its members is
  a non-empty array of objects: then it is a compact envelope, ``json_object``. If the first
  line is not a complete object (a pretty-printed document) → ``json_object``;
* anything else → ``csv``.

Only the first :data:`SNIFF_BYTES` are looked at, so the choice never depends on how the stream
was split into chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import orjson

from streamx.codecs.base import ParsedItem, RowParser
from streamx.codecs.csv import CsvParser
from streamx.codecs.jsonarray import JsonArrayParser
from streamx.codecs.jsonl import JsonLinesParser
from streamx.codecs.text import UTF8_BOM
from streamx.exceptions import ConfigError

SNIFF_BYTES = 64 * 1024

Format = Literal["csv", "jsonl", "json_array", "json_object"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl", "json_array", "json_object")


def sniff_format(prefix: bytes) -> Format:
    """Decide the format of a decompressed stream from its first bytes (see module doc)."""
    head = prefix.removeprefix(UTF8_BOM).lstrip(b" \t\r\n")
    if head.startswith(b"["):
        return "json_array"
    if not head.startswith(b"{"):
        return "csv"
    first, newline, rest = head.partition(b"\n")
    try:
        value = orjson.loads(first)
    except orjson.JSONDecodeError:
        return "json_object"
    if not isinstance(value, dict):  # pragma: no cover - a line starting with '{' parses to one
        return "json_object"
    if newline and rest.strip():
        return "jsonl"
    return "json_object" if _holds_records(value) else "jsonl"


def _holds_records(value: dict[str, Any]) -> bool:
    return any(isinstance(v, list) and v and isinstance(v[0], dict) for v in value.values())


def make_parser(fmt: str, **options: Any) -> RowParser:
    """Build the parser for ``fmt``; ``options`` go to its constructor unchanged."""
    factories: dict[str, type[CsvParser | JsonLinesParser | JsonArrayParser]] = {
        "csv": CsvParser,
        "jsonl": JsonLinesParser,
        "json_array": JsonArrayParser,
        "json_object": JsonArrayParser,
    }
    factory = factories.get(fmt)
    if factory is None:
        raise ConfigError(f"unknown input format {fmt!r} (expected one of {', '.join(FORMATS)})")
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"invalid options for the {fmt} parser: {exc}") from exc


class SniffingParser:
    """A :class:`RowParser` that buffers :data:`SNIFF_BYTES`, sniffs, then delegates.

    ``csv_options``, ``jsonl_options`` and ``json_options`` (for both JSON array forms) are passed
    to whichever parser is chosen. ``format`` and ``parser`` are None until the choice is made.
    """

    def __init__(
        self,
        *,
        csv_options: Mapping[str, Any] | None = None,
        jsonl_options: Mapping[str, Any] | None = None,
        json_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._options: dict[str, Mapping[str, Any]] = {
            "csv": csv_options or {},
            "jsonl": jsonl_options or {},
            "json_array": json_options or {},
            "json_object": json_options or {},
        }
        self._held = bytearray()
        self.format: Format | None = None
        self.parser: RowParser | None = None

    @property
    def envelope(self) -> dict[str, Any]:
        """Top-level members around a JSON record array (empty for other formats)."""
        return dict(getattr(self.parser, "envelope", None) or {})

    def feed(self, data: bytes) -> list[ParsedItem]:
        """Buffer until the format is known, then parse."""
        if self.parser is not None:
            return self.parser.feed(data)
        self._held += data
        if len(self._held) < SNIFF_BYTES:
            return []
        return self._choose()

    def flush(self) -> list[ParsedItem]:
        """Choose now if the input was shorter than :data:`SNIFF_BYTES`; finish parsing."""
        out = self._choose() if self.parser is None else []
        assert self.parser is not None
        return out + self.parser.flush()

    def _choose(self) -> list[ParsedItem]:
        held = bytes(self._held)
        self._held = bytearray()
        self.format = sniff_format(held[:SNIFF_BYTES])
        self.parser = make_parser(self.format, **self._options[self.format])
        return self.parser.feed(held)
