"""streamx: stream bulk exports from Symplify and Cordial into one normalized record schema.

The public API is what ``__all__`` lists; every other module is private to the package and may
change without notice.
"""

from __future__ import annotations

from streamx.config import Config, ExportSpec, load_config
from streamx.convert import ConvertResult, convert_files
from streamx.engine.runner import Engine, ExportResult
from streamx.exceptions import (
    ConfigError,
    CorruptInputError,
    DecompressionBombError,
    FieldTooLargeError,
    InputError,
    PermanentError,
    RowError,
    SinkError,
    StreamxError,
    TransientError,
)
from streamx.manifest import Manifest, PartInfo
from streamx.normalize.base import ExportContext
from streamx.pipeline import FileStats, ingest_file
from streamx.publish import OutputOptions, Publisher
from streamx.records import FIELDS, SCHEMA_VERSION, STREAMS, Record, StreamInfo
from streamx.sinks.local import LocalSink
from streamx.state.base import ExportState, StateStore
from streamx.state.registry import open_store
from streamx.state.sqlite import SQLiteStore

__version__ = "0.1.0"

__all__ = [
    "FIELDS",
    "SCHEMA_VERSION",
    "STREAMS",
    "Config",
    "ConfigError",
    "ConvertResult",
    "CorruptInputError",
    "DecompressionBombError",
    "Engine",
    "ExportContext",
    "ExportResult",
    "ExportSpec",
    "ExportState",
    "FieldTooLargeError",
    "FileStats",
    "InputError",
    "LocalSink",
    "Manifest",
    "OutputOptions",
    "PartInfo",
    "PermanentError",
    "Publisher",
    "Record",
    "RowError",
    "SQLiteStore",
    "SinkError",
    "StateStore",
    "StreamInfo",
    "StreamxError",
    "TransientError",
    "__version__",
    "convert_files",
    "ingest_file",
    "load_config",
    "open_store",
]
