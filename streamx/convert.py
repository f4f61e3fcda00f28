"""``streamx convert``: local export files in, normalized records out, as one published export.

All input files of one call form one export (they are the chunks of one vendor result), so they
share one manifest: either every file converts and the manifest is written, or nothing becomes
visible.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamx.exceptions import ConfigError
from streamx.manifest import Manifest
from streamx.normalize.base import ExportContext
from streamx.normalize.registry import get_normalizer
from streamx.pipeline import FileStats, ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.records import STREAMS, streams_of
from streamx.sinks.local import LocalSink
from streamx.sources.local import STDIN_NAME, read_chunks


@dataclass(slots=True)
class ConvertResult:
    """Outcome of one conversion: the manifest and where it was published."""

    manifest: Manifest
    manifest_location: str
    files: list[FileStats] = field(default_factory=list)

    @property
    def quarantined(self) -> int:
        return self.manifest.rows_quarantined


def resolve_stream(source: str, stream: str) -> str:
    """Accept ``opens`` or ``symplify.opens``; reject streams of another source by name."""
    full = stream if "." in stream else f"{source}.{stream}"
    if full not in STREAMS or STREAMS[full].source != source:
        known = ", ".join(streams_of(source)) or "none"
        raise ConfigError(f"unknown stream {stream!r} for source {source!r}; known: {known}")
    return full


def default_export_id(inputs: Sequence[str]) -> str:
    """A readable, stable export id for local files: the first file's name without suffixes."""
    first = inputs[0]
    if first == STDIN_NAME:
        return "stdin"
    base = os.path.basename(first)
    stem = base.split(".", 1)[0] or base
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)


async def convert_files(
    inputs: Sequence[str],
    *,
    source: str,
    stream: str,
    out: str,
    options: OutputOptions | None = None,
    account: str = "local",
    export_id: str | None = None,
    day: str | None = None,
    column_labels: dict[str, str] | None = None,
    parser_options: dict[str, Any] | None = None,
) -> ConvertResult:
    """Convert ``inputs`` (paths, ``-`` for stdin) into one published export under ``out``."""
    if not inputs:
        raise ConfigError("no input files given")
    stream = resolve_stream(source, stream)
    ctx = ExportContext(
        source=source,
        stream=stream,
        account=account,
        export_id=export_id or default_export_id(inputs),
        column_labels=column_labels or {},
    )
    normalizer = get_normalizer(stream)
    sink = LocalSink(out)
    day = day or dt.datetime.now(dt.UTC).date().isoformat()
    try:
        async with Publisher(sink, ctx, options or OutputOptions(), dt=day) as publisher:
            files = [
                await ingest_file(
                    read_chunks(path),
                    name=path,
                    ctx=ctx,
                    normalizer=normalizer,
                    publisher=publisher,
                    parser_options=parser_options,
                )
                for path in inputs
            ]
            manifest = await publisher.commit()
        return ConvertResult(manifest, sink.location(publisher.manifest_relpath), files)
    finally:
        await sink.close()
