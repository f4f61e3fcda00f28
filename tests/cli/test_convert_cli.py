"""`streamx convert` as a user runs it: real process, real files, exit codes and messages."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import orjson

from streamx.manifest import Manifest
from streamx.testing import data
from streamx.testing.files import encode_chunks, write_file

WINDOW = data.Window.days_back(2)


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streamx", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def manifests(out: Path) -> list[Manifest]:
    return [Manifest.from_json(path.read_bytes()) for path in out.rglob("*.manifest.json")]


def read_records(out: Path, manifest: Manifest) -> list[dict[str, object]]:
    records = []
    for part in manifest.parts:
        with gzip.open(out / part.path) as handle:
            records.extend(orjson.loads(line) for line in handle)
    return records


def activity_file(
    path: Path, rows: int, *, fmt: str = "csv", compress: bool = True, seed: int = 3
) -> Path:
    rows_iter = data.cordial_activity_rows(seed, rows=rows, window=WINDOW)
    if fmt == "csv":
        chunks = encode_chunks(rows_iter, "csv", columns=data.ACTIVITY_CSV_COLUMNS)
    else:
        chunks = encode_chunks(rows_iter, "jsonl")
    write_file(str(path), chunks, compress=compress)
    return path


def test_clean_conversion_exits_0_and_publishes_every_row(tmp_path: Path) -> None:
    first = activity_file(tmp_path / "a-1.csv.gz", 700)
    second = activity_file(tmp_path / "a-2.jsonl", 300, fmt="jsonl", compress=False, seed=4)
    out = tmp_path / "out"
    result = run_cli(
        "convert", str(first), str(second), "--source", "cordial",
        "--stream", "contact_activity", "--out", str(out), "--export-id", "j1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert b"published 1000 records" in result.stdout
    (manifest,) = manifests(out)
    assert manifest.rows_read == manifest.rows_ok == manifest.records == 1000
    assert [f["rows_read"] for f in manifest.source_files] == [700, 300]
    records = read_records(out, manifest)
    assert len(records) == 1000
    assert len({r["record_id"] for r in records}) == 1000
    assert {r["stream"] for r in records} == {"cordial.contact_activity"}


def test_quarantined_rows_exit_1_and_are_accounted_for(tmp_path: Path) -> None:
    source = tmp_path / "broken.jsonl"
    good = b"".join(encode_chunks(data.cordial_activity_rows(1, rows=5, window=WINDOW), "jsonl"))
    source.write_bytes(good + b'{"cID": "cut\n' + b"[1, 2]\n")
    out = tmp_path / "out"
    result = run_cli(
        "convert", str(source), "--source", "cordial", "--stream", "contact_activity",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr.decode()
    assert b"2 row(s) quarantined" in result.stderr
    (manifest,) = manifests(out)
    assert manifest.rows_ok + manifest.rows_quarantined == manifest.rows_read == 7
    assert manifest.quarantine is not None
    lines = [orjson.loads(line) for line in (out / manifest.quarantine).read_bytes().splitlines()]
    assert [(q["file"], q["line"]) for q in lines] == [(str(source), 6), (str(source), 7)]
    assert lines[0]["raw"] == '{"cID": "cut'


def test_truncated_gzip_exits_2_names_the_file_and_publishes_nothing(tmp_path: Path) -> None:
    whole = activity_file(tmp_path / "whole.csv.gz", 2000).read_bytes()
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    out = tmp_path / "out"
    result = run_cli(
        "convert", str(cut), "--source", "cordial", "--stream", "contact_activity",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 2
    message = result.stderr.decode()
    assert str(cut) in message and "byte offset" in message
    assert not any(p.is_file() and not p.name.startswith(".") for p in out.rglob("*"))


def test_unclosed_csv_quote_exits_2_naming_the_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(b'cID,action,time\nc1,open,2024-01-01\nc2,"open,2024-01-02\nc3,x,y\n')
    result = run_cli(
        "convert", str(source), "--source", "cordial", "--stream", "contact_activity",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{source}, line 3" in result.stderr.decode()


def test_stdin_input(tmp_path: Path) -> None:
    rows = data.symplify_rows(5, export_type="CLICKS", rows=50, window=WINDOW)
    body = gzip.compress(b"".join(encode_chunks(rows, "json_array")))
    out = tmp_path / "out"
    result = run_cli(
        "convert", "-", "--source", "symplify", "--stream", "clicks", "--out", str(out),
        "--format", "csv", "--compress", "none", stdin=body,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    (manifest,) = manifests(out)
    assert manifest.export_id == "stdin" and manifest.records == 50
    assert manifest.parts[0].path.endswith(".csv")
    text = (out / manifest.parts[0].path).read_text()
    assert text.startswith("source,stream,kind,")
    assert text.count("symplify.clicks") == 50


def test_no_header_csv_with_named_columns(tmp_path: Path) -> None:
    source = tmp_path / "noheader.csv"
    source.write_bytes(b"id1,open,2024-03-10T10:00:00+0000\nid2,click,1710064800000\n")
    out = tmp_path / "out"
    result = run_cli(
        "convert", str(source), "--source", "cordial", "--stream", "contact_activity",
        "--out", str(out), "--columns", "_id,action,time", "--compress", "none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    (manifest,) = manifests(out)
    lines = (out / manifest.parts[0].path).read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines]
    assert [(r["record_id"], r["event_type"], r["occurred_at"]) for r in records] == [
        ("id1", "open", "2024-03-10T10:00:00.000Z"),
        ("id2", "click", "2024-03-10T10:00:00.000Z"),
    ]


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    missing = run_cli(
        "convert", str(tmp_path / "nope.csv"), "--source", "cordial",
        "--stream", "contact_activity", "--out", str(tmp_path),
    )  # fmt: skip
    assert missing.returncode == 2 and b"nope.csv" in missing.stderr
    wrong_stream = run_cli(
        "convert", "-", "--source", "cordial", "--stream", "opens", "--out", str(tmp_path),
        stdin=b"",
    )  # fmt: skip
    assert wrong_stream.returncode == 2 and b"unknown stream 'opens'" in wrong_stream.stderr
    assert run_cli("convert").returncode == 2


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("streamx")
    assert script.exists(), "the streamx console script is part of the package"
    result = subprocess.run([str(script), "--help"], capture_output=True, check=False)
    assert result.returncode == 0 and b"convert" in result.stdout
    assert os.access(script, os.X_OK)
