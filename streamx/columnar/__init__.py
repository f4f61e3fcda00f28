"""The columnar fast path (optional, with pyarrow): CSV and JSON lines parsed, normalized and
encoded in Arrow (JSON lines blocks through :mod:`streamx.offload`).

Used automatically by :func:`streamx.pipeline.ingest_file` when pyarrow is installed, the
stream has a vector plan (:mod:`streamx.columnar.plans`) and the parser options are ones it
reproduces; ``STREAMX_FASTPATH=0`` turns it off. Its output is the row path's, record for
record and byte for byte (the tests run both and compare); anything it cannot decide exactly
goes through the row path (see :mod:`streamx.columnar.csvlanes`).

This module imports nothing heavy: pyarrow is loaded only when a file takes the fast path.
"""

from __future__ import annotations

import codecs
import importlib.util
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from streamx.columnar.plans import STREAMS_SERVED
from streamx.normalize.base import ExportContext, Normalizer
from streamx.normalize.registry import NORMALIZERS

if TYPE_CHECKING:
    from streamx.columnar.ingest import ColumnarIngest, Consume
    from streamx.publish import Publisher

#: Environment switch: ``0`` disables the fast path (everything takes the row path).
ENV_SWITCH: Final = "STREAMX_FASTPATH"
_CSV_OPTIONS: Final = frozenset(("header", "delimiter", "max_field_bytes", "encoding"))
_FORMATS: Final = frozenset(("jsonl", "csv", "parquet"))


def fast_path_available() -> bool:
    """pyarrow is importable and the environment does not switch the fast path off."""
    if os.environ.get(ENV_SWITCH, "").strip() == "0":
        return False
    return importlib.util.find_spec("pyarrow") is not None


def _csv_options_served(options: Mapping[str, Any]) -> bool:
    if not set(options) <= _CSV_OPTIONS:
        return False
    encoding = options.get("encoding", "utf-8")
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except (LookupError, TypeError):
        return False


def open_fast_path(
    ctx: ExportContext,
    normalizer: Normalizer,
    publisher: Publisher,
    parser_options: Mapping[str, Any],
    stats: Any,
    consume: Consume,
) -> ColumnarIngest | None:
    """A fast path for one file, or ``None`` when the row path must take it.

    Vector plans reproduce the registered normalizers only, so another ``normalizer`` (a
    caller's own) always gets the row path.

    ``stats`` is the pipeline's :class:`~streamx.pipeline.FileStats` (updated as rows are
    written); ``consume`` is the pipeline's row consumer, used for the rows the fast path
    leaves to the row path.
    """
    if ctx.stream not in STREAMS_SERVED or publisher.format not in _FORMATS:
        return None
    if NORMALIZERS.get(ctx.stream) is not normalizer:
        return None
    csv_options = parser_options.get("csv_options") or {}
    if not set(parser_options) <= {"csv_options", "jsonl_options", "json_options"}:
        return None
    if not _csv_options_served(csv_options) or not fast_path_available():
        return None
    from streamx.columnar.ingest import ColumnarIngest

    return ColumnarIngest(ctx, publisher, stats, consume, csv_options)
