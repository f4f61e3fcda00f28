"""Output formats (record encoders) and compression for published parts."""

from streamx.writers.compression import (
    COMPRESSIONS,
    GZIP_BACKEND,
    Compression,
    Compressor,
    get_compression,
)
from streamx.writers.encoders import ENCODERS, Encoder, get_encoder

__all__ = [
    "COMPRESSIONS",
    "ENCODERS",
    "GZIP_BACKEND",
    "Compression",
    "Compressor",
    "Encoder",
    "get_compression",
    "get_encoder",
]
