"""A pytest plugin (``-p tests.columnar.tiny_json_blocks``): every JSON lines file, however
small, is cut into Arrow blocks of 1 KiB, so a suite's JSON cases run through
:mod:`streamx.columnar.jsonblock` and its hand-back to the row parser, block boundaries
included."""

from __future__ import annotations

import pytest

from streamx import offload


def pytest_configure(config: pytest.Config) -> None:
    offload.ARROW_BLOCK_BYTES = 1024
    offload.MIN_FILE_BYTES = 0
