"""``streamx status``: what the state store knows: running, failed (with why) and done exports."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

import orjson

from streamx.config import Config, load_config
from streamx.progress import human_bytes
from streamx.state.base import OPEN_STATUSES, ExportState
from streamx.state.registry import open_store

HELP = "list the exports in the state store: running, failed (with the reason) and done"
GROUPS = (("running or waiting", OPEN_STATUSES), ("failed", ("failed",)), ("done", ("done",)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="streamx.toml")
    parser.add_argument("--json", action="store_true", help="one JSON object per export")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.state.url is None and not os.path.exists(config.state.path):
        print(f"no state store at {config.state.path}: nothing has run yet")
        return 0
    rows = asyncio.run(_rows(config))
    if args.json:
        for row in rows:
            print(orjson.dumps(row_json(row)).decode())
    else:
        print(status_text(rows, now=dt.datetime.now(dt.UTC).timestamp()))
    return 0


async def _rows(config: Config) -> Sequence[ExportState]:
    async with open_store(config) as store:
        return await store.list()


def row_json(row: ExportState) -> dict[str, Any]:
    """One export as ``--json`` prints it."""
    result = row.extra.get("result") or {}
    return {
        "key": row.key,
        "status": row.status,
        "account": row.spec.get("account"),
        "stream": row.spec.get("stream"),
        "remote_id": row.remote_id,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "error_type": row.extra.get("error_type"),
        "bytes_done": row.bytes_done,
        "parts_done": row.parts_done,
        "records": result.get("records"),
        "manifest": row.manifest_location,
        "lease_owner": row.lease_owner,
        "lease_expires": row.lease_expires,
        "start_in_doubt": bool(row.extra.get("starting")),
        "updated_at": row.updated_at,
    }


def status_text(rows: Sequence[ExportState], *, now: float) -> str:
    """The status report: one section per group, one line per export."""
    lines: list[str] = []
    for title, statuses in GROUPS:
        chosen = [row for row in rows if row.status in statuses]
        lines.append(f"{title}: {len(chosen)}")
        lines.extend(f"  {_line(row, now)}" for row in chosen)
    return "\n".join(lines)


def _line(row: ExportState, now: float) -> str:
    where = f" ({row.remote_id})" if row.remote_id else ""
    text = f"{row.key}{where}: {row.status}, {row.attempts} attempt(s)"
    if row.status == "failed":
        return f"{text}: {row.last_error}"
    if row.status == "done":
        records = (row.extra.get("result") or {}).get("records")
        return f"{text}, {records} records; manifest {row.manifest_location}"
    text += f", {human_bytes(row.bytes_done)} and {row.parts_done} part(s) checkpointed"
    if row.lease_owner and row.lease_expires and row.lease_expires > now:
        return f"{text}; running in {row.lease_owner}"
    if row.extra.get("starting"):
        text += "; a start request was cut off (the vendor may hold an unused job)"
    return text
