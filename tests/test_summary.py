"""The summary table people read at the end of a run."""

from __future__ import annotations

from streamx.config import ExportSpec
from streamx.engine.export import ExportResult
from streamx.summary import summary_table


def _result(name: str, **counts: object) -> ExportResult:
    spec = ExportSpec(name=name, account="a", stream="opens", period="TODAY")
    return ExportResult(name=name, spec=spec, **counts)  # type: ignore[arg-type]


def test_rows_totals_and_alignment() -> None:
    table = summary_table(
        [
            _result("opens", status="done", records=1234567, files=2, bytes_read=5 * 2**20,
                    seconds=3.21),
            _result("clicks", status="failed", rows_quarantined=3, bytes_read=900, seconds=9.0),
        ]
    )  # fmt: skip
    lines = table.splitlines()
    assert lines[0].split() == [
        "export", "status", "records", "quarantined", "files", "bytes", "seconds"
    ]  # fmt: skip
    assert lines[2].split() == ["opens", "done", "1,234,567", "0", "2", "5.0", "MiB", "3.2"]
    assert lines[3].split() == ["clicks", "failed", "0", "3", "0", "900", "B", "9.0"]
    total = lines[5]
    assert total.startswith("total (2)")
    assert "1 done, 1 failed" in total and "1,234,567" in total and total.endswith("9.0")
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule have the same width


def test_skipped_exports_say_so() -> None:
    skipped = _result("old", status="done", records=10, files=1)
    skipped.skipped = True
    assert summary_table([skipped]).splitlines()[2].split()[:2] == ["old", "skipped"]
