"""The end-of-run summary table: one row per export and a total, aligned for a terminal.

Shared by ``streamx run`` and the demo so every command reports the same columns: what was
published (records, quarantined rows, files, bytes) and how long it took.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamx.engine.export import ExportResult

COLUMNS = ("export", "status", "records", "quarantined", "files", "bytes", "seconds")
_RIGHT = frozenset(COLUMNS[2:])


def summary_table(results: Sequence[ExportResult]) -> str:
    """A plain-text table of ``results`` with a total row (seconds: the longest export)."""
    rows = [_row(result) for result in results]
    rows.append(_total(results))
    cells = [list(COLUMNS), *rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(COLUMNS))]
    lines = [_line(row, widths) for row in cells]
    rule = "  ".join("-" * width for width in widths)
    return "\n".join([lines[0], rule, *lines[1:-1], rule, lines[-1]])


def _row(result: ExportResult) -> list[str]:
    return [
        result.name,
        "skipped" if result.skipped else result.status,
        f"{result.records:,}",
        f"{result.rows_quarantined:,}",
        f"{result.files:,}",
        human_bytes(result.bytes_read),
        f"{result.seconds:.1f}",
    ]


def _total(results: Sequence[ExportResult]) -> list[str]:
    done = sum(1 for result in results if result.ok)
    return [
        f"total ({len(results)})",
        f"{done} done" + (f", {len(results) - done} failed" if done < len(results) else ""),
        f"{sum(result.records for result in results):,}",
        f"{sum(result.rows_quarantined for result in results):,}",
        f"{sum(result.files for result in results):,}",
        human_bytes(sum(result.bytes_read for result in results)),
        f"{max((result.seconds for result in results), default=0.0):.1f}",
    ]


def _line(row: list[str], widths: list[int]) -> str:
    cells = (
        cell.rjust(width) if name in _RIGHT else cell.ljust(width)
        for name, cell, width in zip(COLUMNS, row, widths, strict=True)
    )
    return "  ".join(cells).rstrip()


def human_bytes(value: float | None) -> str:
    """Bytes for people: ``950 B``, ``12.3 KiB``, ``4.0 MiB`` (``-`` when unknown)."""
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
