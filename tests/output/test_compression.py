"""Compressors: each part is one standard gzip member / zstd frame that stock tools read."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import zstandard

from streamx.exceptions import ConfigError
from streamx.writers.compression import COMPRESSIONS, GZIP_BACKEND, Compressor, get_compression

REPO = Path(__file__).resolve().parents[2]
DATA = b"".join(b'{"record_id":"r%d","email":"u%d@example.com"}\n' % (i, i) for i in range(20000))


def _run(compressor: Compressor, data: bytes, chunk: int = 4096) -> bytes:
    out = [compressor.compress(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    return b"".join(out) + compressor.flush()


def _one_gzip_member(blob: bytes) -> bytes:
    decoder = zlib.decompressobj(31)
    out = decoder.decompress(blob)
    assert decoder.eof and decoder.unused_data == b""  # exactly one complete member
    return out


@pytest.mark.parametrize("level", [None, 0, 1, 3, 6, 9])
def test_gzip_is_one_member_readable_by_gzip_module(level: int | None) -> None:
    blob = _run(get_compression("gzip").new(level), DATA)
    assert _one_gzip_member(blob) == DATA
    with gzip.open(io.BytesIO(blob)) as handle:
        assert handle.read() == DATA


def test_gzip_default_level_is_fast_and_compresses() -> None:
    method = get_compression("gzip")
    assert method.extension == ".gz" and method.default_level == 1
    assert len(_run(method.new(), DATA)) < len(DATA) // 3


def test_gzip_uses_isal_when_installed() -> None:
    assert GZIP_BACKEND == "isal"


def test_empty_input_is_a_valid_empty_stream() -> None:
    assert _one_gzip_member(get_compression("gzip").new().flush()) == b""
    frame = get_compression("zstd").new().flush()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(frame) == b""


@pytest.mark.parametrize("level", [None, 1, 3, 19])
def test_zstd_is_one_frame(level: int | None) -> None:
    blob = _run(get_compression("zstd").new(level), DATA)
    decoder = zstandard.ZstdDecompressor().decompressobj()
    assert decoder.decompress(blob) == DATA
    assert decoder.eof and decoder.unused_data == b""
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob)) as reader:
        assert reader.read() == DATA


def test_none_passes_bytes_through() -> None:
    method = get_compression("none")
    assert method.extension == ""
    assert _run(method.new(), DATA) == DATA


@pytest.mark.parametrize(("name", "level"), [("gzip", 10), ("gzip", -1), ("zstd", 0), ("zstd", 23)])
def test_level_out_of_range(name: str, level: int) -> None:
    with pytest.raises(ConfigError, match=f"{name} compression level"):
        get_compression(name).new(level)


def test_unknown_compression_names_the_known_ones() -> None:
    assert set(COMPRESSIONS) == {"gzip", "zstd", "none"}
    with pytest.raises(ConfigError, match="known: gzip, none, zstd"):
        get_compression("lz4")


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )


def test_gzip_falls_back_to_zlib_without_isal() -> None:
    code = (
        "import sys, gzip; sys.modules['isal'] = None\n"
        "from streamx.writers.compression import GZIP_BACKEND, get_compression\n"
        "c = get_compression('gzip').new(6)\n"
        "blob = c.compress(b'hello ' * 1000) + c.flush()\n"
        "assert gzip.decompress(blob) == b'hello ' * 1000\n"
        "print(GZIP_BACKEND)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "zlib"


def test_zstd_without_zstandard_is_a_config_error_naming_the_extra() -> None:
    code = (
        "import sys; sys.modules['zstandard'] = None\n"
        "from streamx.exceptions import ConfigError\n"
        "from streamx.writers.compression import get_compression\n"
        "try:\n"
        "    get_compression('zstd')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert "zstd" in result.stdout and "streamx[zstd]" in result.stdout
