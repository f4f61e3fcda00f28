"""streamx: stream bulk exports from Symplify and Cordial into one normalized record schema.

The public API is what ``__all__`` lists; every other module is private to the package and may
change without notice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: public name -> the module that defines it. Imported on first use (PEP 562), so
#: ``import streamx.convert`` or ``streamx convert`` does not pay for the engine's HTTP, S3 and
#: SSH libraries (about 20 MiB of RSS and half a second), which matters to the memory budget.
_EXPORTS: dict[str, str] = {
    "Config": "streamx.config",
    "ConfigError": "streamx.exceptions",
    "ConvertResult": "streamx.convert",
    "CorruptInputError": "streamx.exceptions",
    "DecompressionBombError": "streamx.exceptions",
    "Engine": "streamx.engine.runner",
    "ExportContext": "streamx.normalize.base",
    "ExportResult": "streamx.engine.runner",
    "ExportSpec": "streamx.config",
    "ExportState": "streamx.state.base",
    "FIELDS": "streamx.records",
    "FieldTooLargeError": "streamx.exceptions",
    "FileStats": "streamx.pipeline",
    "InputError": "streamx.exceptions",
    "LocalSink": "streamx.sinks.local",
    "Manifest": "streamx.manifest",
    "OutputOptions": "streamx.publish",
    "PartInfo": "streamx.manifest",
    "PermanentError": "streamx.exceptions",
    "Publisher": "streamx.publish",
    "Record": "streamx.records",
    "RowError": "streamx.exceptions",
    "SCHEMA_VERSION": "streamx.records",
    "SQLiteStore": "streamx.state.sqlite",
    "STREAMS": "streamx.records",
    "SinkError": "streamx.exceptions",
    "StateStore": "streamx.state.base",
    "StreamInfo": "streamx.records",
    "StreamxError": "streamx.exceptions",
    "TransientError": "streamx.exceptions",
    "convert_files": "streamx.convert",
    "ingest_file": "streamx.pipeline",
    "load_config": "streamx.config",
    "open_store": "streamx.state.registry",
}


def __getattr__(name: str) -> Any:
    """Resolve a public name lazily and cache it in the module namespace."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'streamx' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


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
