"""``streamx convert``: export files on disk -> normalized records on disk."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streamx.convert import ConvertResult, convert_files
from streamx.exceptions import ConfigError
from streamx.publish import OutputOptions

HELP = "convert Symplify or Cordial export files (plain or gzip; CSV, JSON lines, JSON) to records"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="export file(s); - for stdin")
    parser.add_argument("--source", required=True, choices=["symplify", "cordial"])
    parser.add_argument("--stream", required=True, help="e.g. opens, contact_activity")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--format",
        default="jsonl",
        choices=["jsonl", "csv", "parquet"],
        help="output format (parquet needs the 'parquet' extra)",
    )
    parser.add_argument(
        "--compress",
        choices=["gzip", "zstd", "snappy", "none"],
        help="default: gzip for jsonl/csv, zstd inside parquet files (snappy: parquet only)",
    )
    parser.add_argument("--account", default="local", help="account name stamped on records")
    parser.add_argument("--export-id", help="export id (default: first input's file name)")
    parser.add_argument("--dt", help="partition date YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--records-per-part", type=int, default=1_000_000)
    parser.add_argument(
        "--no-header", action="store_true", help="CSV input has no header row (showHeader=false)"
    )
    parser.add_argument("--columns", help="comma-separated CSV column names (implies --no-header)")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="LABEL=FIELD",
        help="a renamed column (Cordial columnHeaders): file label = Cordial field name",
    )


def run(args: argparse.Namespace) -> int:
    result = asyncio.run(
        convert_files(
            args.inputs,
            source=args.source,
            stream=args.stream,
            out=args.out,
            options=OutputOptions(
                format=args.format,
                compression=args.compress,
                max_records_per_part=args.records_per_part,
            ),
            account=args.account,
            export_id=args.export_id,
            day=args.dt,
            column_labels=_labels(args.label),
            parser_options=_parser_options(args),
        )
    )
    _print_summary(result)
    return 1 if result.quarantined else 0


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        label, sep, field = pair.partition("=")
        if not sep or not label or not field:
            raise ConfigError(f"--label expects LABEL=FIELD, got {pair!r}")
        labels[label] = field
    return labels


def _parser_options(args: argparse.Namespace) -> dict[str, object]:
    if args.columns:
        return {"csv_options": {"header": [name.strip() for name in args.columns.split(",")]}}
    if args.no_header:
        return {"csv_options": {"header": False}}
    return {}


def _print_summary(result: ConvertResult) -> None:
    manifest = result.manifest
    for stats in result.files:
        print(
            f"{stats.name}: {stats.format or 'empty'}{' (gzip)' if stats.compressed else ''}, "
            f"{stats.rows_read} rows read, {stats.rows_ok} ok, "
            f"{stats.rows_quarantined} quarantined, {stats.records} records"
        )
    print(
        f"published {manifest.records} records in {len(manifest.parts)} part(s); "
        f"manifest: {result.manifest_location}"
    )
    if manifest.rows_quarantined:
        print(
            f"{manifest.rows_quarantined} row(s) quarantined in {manifest.quarantine} "
            "(file, line, reason and raw row for each)",
            file=sys.stderr,
        )
