"""``streamx backfill``: plan a date range into the state store, run what is missing, report.

Idempotent: the plan's rows are keyed by what each export is, so running the same command again
runs only exports that are not published yet, resuming a killed run's vendor jobs and transfers
(see docs/backfill.md). Exit codes: 0 everything published, 1 some export failed (or rows were
quarantined, or another process holds some), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from streamx.backfill.plan import Plan, parse_moment, parse_window, plan_backfill
from streamx.backfill.runner import BackfillReport, BackfillRunner
from streamx.cli.logs import configure_command_logging
from streamx.config import Config, load_config
from streamx.engine.export import ExportResult
from streamx.progress import make_display, summary_table
from streamx.state.base import ExportState
from streamx.state.registry import open_store, spool_dir

HELP = "backfill a date range: plan its exports into the state store and run what is missing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="streamx.toml")
    parser.add_argument(
        "--from", dest="start", required=True, metavar="DATE", help="range start (UTC)"
    )
    parser.add_argument(
        "--to", dest="end", required=True, metavar="DATE", help="range end (a date: inclusive)"
    )
    parser.add_argument(
        "--streams", action="append", default=[], metavar="LIST", help="streams (comma list)"
    )
    parser.add_argument(
        "--accounts", action="append", default=[], metavar="LIST", help="accounts (comma list)"
    )
    parser.add_argument("--window", default="1d", help="Cordial window: 1d (default), 6h, 30m…")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--retry-failed", action="store_true", help="run failed exports again")
    parser.add_argument("--json", action="store_true", help="print the plan/report as JSON")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="progress lines' format"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every engine step")


def run(args: argparse.Namespace) -> int:
    configure_command_logging(args.verbose)
    config = load_config(args.config)
    plan = plan_backfill(
        config,
        parse_moment(args.start),
        parse_moment(args.end, end=True),
        streams=_split(args.streams),
        accounts=_split(args.accounts),
        window=parse_window(args.window),
    )
    if args.dry_run:
        states = asyncio.run(_states(config, plan))
        print(_plan_json(plan, states) if args.json else _plan_text(plan, states))
        return 0
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    report = asyncio.run(_run(config, plan, args.retry_failed, args.log_format))
    print(_report_json(report) if args.json else _report_text(report))
    quarantined = any(result.rows_quarantined for result in report.results)
    return 0 if report.ok and not quarantined else 1


async def _run(config: Config, plan: Plan, retry: bool, log_format: str) -> BackfillReport:
    display = make_display(log_format=log_format)
    try:
        async with open_store(config) as store:
            runner = BackfillRunner(
                config, store, spool_dir=spool_dir(config), on_event=display, announce=_announce
            )
            return await runner.run(plan, retry=retry)
    finally:
        display.close()


async def _states(config: Config, plan: Plan) -> dict[str, ExportState]:
    """The plan's rows already in the store (a dry run never creates a store)."""
    if config.state.url is None and not os.path.exists(config.state.path):
        return {}
    async with open_store(config) as store:
        rows = [await store.get(key) for key in plan.keys]
    return {row.key: row for row in rows if row is not None}


def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _split(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


# --- output ------------------------------------------------------------------------------------


def _plan_text(plan: Plan, states: dict[str, ExportState]) -> str:
    lines = [
        f"plan: {plan.to_json()['start']} .. {plan.to_json()['end']}, window "
        f"{plan.to_json()['window']}, {len(plan.exports)} export(s)"
    ]
    for item in plan.exports:
        row = states.get(item.key)
        state = row.status if row is not None else "new"
        covers = f"period {item.spec.period}" if item.spec.period else f"dt={item.spec.dt}"
        lines.append(f"  {item.key}  [{item.stream}, {covers}]  {state}")
    lines.extend(f"note: {note}" for note in plan.notes)
    return "\n".join(lines)


def _plan_json(plan: Plan, states: dict[str, ExportState]) -> str:
    body = plan.to_json()
    for entry in body["exports"]:
        row = states.get(entry["key"])
        entry["state"] = row.status if row is not None else "new"
    return orjson.dumps(body).decode()


def _report_text(report: BackfillReport) -> str:
    lines = [summary_table(report.results)] if report.results else ["nothing to run"]
    if report.done_before:
        lines.append(f"{len(report.done_before)} export(s) were published by an earlier run")
    for row in report.failed_before:
        lines.append(
            f"{row.key}: failed earlier ({row.last_error}); run with --retry-failed to retry"
        )
    for row in report.busy:
        lines.append(f"{row.key}: being run by {row.lease_owner}; left to it")
    for result in report.results:
        if not result.ok:
            lines.append(f"{result.name}: FAILED ({result.error_type}): {result.error}")
    return "\n".join(lines)


def _report_json(report: BackfillReport) -> str:
    body: dict[str, Any] = {
        "ok": report.ok,
        "plan": report.plan.to_json(),
        "exports": [_result_json(result) for result in report.results],
        "done_before": [row.key for row in report.done_before],
        "failed_before": [
            {"key": row.key, "error": row.last_error} for row in report.failed_before
        ],
        "busy": [{"key": row.key, "owner": row.lease_owner} for row in report.busy],
    }
    return orjson.dumps(body).decode()


def _result_json(result: ExportResult) -> dict[str, Any]:
    return {
        "key": result.name,
        "status": result.status,
        "resumed": result.resumed,
        "remote_id": result.remote_id,
        "records": result.records,
        "rows_read": result.rows_read,
        "rows_quarantined": result.rows_quarantined,
        "files": result.files,
        "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written,
        "seconds": round(result.seconds, 3),
        "manifest": result.manifest_location,
        "error": result.error,
        "error_type": result.error_type,
    }
