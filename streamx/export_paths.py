"""Where an export's files go, and the checks that keep its names from changing that layout.

Every file of an export is under ``<prefix>/<source>/<stream>/dt=<dt>/`` (an empty prefix is left
out) and named from ``<account>-<export id>``: the parts ``…-part-00000.<ext>``, the manifest
``….manifest.json`` and the quarantine file ``…-quarantine.jsonl``. The source, stream, account
and export id become path components, so they are checked before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from streamx.exceptions import ConfigError
from streamx.normalize.base import ExportContext

_DT = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ExportPaths:
    """The sink-relative names of one export's files (see the module docstring)."""

    #: ``<directory>/<account>-<export id>``: what every file name starts with.
    base: str

    @classmethod
    def of(cls, ctx: ExportContext, *, dt: str, prefix: str = "") -> ExportPaths:
        """The paths for ``ctx`` on day ``dt`` under ``prefix`` (names are not checked here)."""
        directory = "/".join(
            part for part in (prefix.strip("/"), ctx.source, ctx.stream, f"dt={dt}") if part
        )
        return cls(f"{directory}/{ctx.account}-{ctx.export_id}")

    @property
    def part_stem(self) -> str:
        """What a part's name starts with (its number and extension follow)."""
        return f"{self.base}-part-"

    @property
    def manifest(self) -> str:
        return f"{self.base}.manifest.json"

    @property
    def quarantine(self) -> str:
        return f"{self.base}-quarantine.jsonl"


def check_dt(dt: str) -> None:
    """Refuse a ``dt`` that is not a real date written as ``YYYY-MM-DD``."""
    try:
        valid = bool(_DT.fullmatch(dt)) and date.fromisoformat(dt).isoformat() == dt
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"dt must be a date as YYYY-MM-DD, got {dt!r}")


def check_names(ctx: ExportContext) -> None:
    """Check every name of ``ctx`` that becomes a path component (see :func:`check_name`)."""
    for what, value in (
        ("source", ctx.source),
        ("stream", ctx.stream),
        ("account", ctx.account),
        ("export id", ctx.export_id),
    ):
        check_name(what, value)


def check_name(what: str, value: str) -> None:
    """Names become path components: refuse what could change the layout or hide the file."""
    if not value or value.startswith(".") or any(c in value for c in "/\\\x00"):
        raise ConfigError(f"{what} {value!r} cannot be used in a file name")
    if any(ord(c) < 0x20 for c in value):
        raise ConfigError(f"{what} {value!r} contains control characters")


__all__ = ["ExportPaths", "check_dt", "check_name", "check_names"]
