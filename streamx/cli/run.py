"""``streamx run``: run the exports of a configuration file once, concurrently, and report."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Sequence

import orjson

from streamx.cli.logs import configure_command_logging
from streamx.config import Config, ExportSpec, load_config
from streamx.engine.runner import Engine, ExportResult
from streamx.exceptions import ConfigError
from streamx.summary import summary_table

HELP = "run exports from a configuration file (all, or those named with --export)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="streamx.toml")
    parser.add_argument(
        "--export",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this export (repeatable; default: every [[exports]] entry)",
    )
    parser.add_argument("--out", metavar="DIR", help="output directory (overrides [output] dir)")
    parser.add_argument("--dt", help="partition date YYYY-MM-DD for every export")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per export instead of text"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every engine step")


def run(args: argparse.Namespace) -> int:
    configure_command_logging(args.verbose)
    config = load_config(args.config)
    if args.out:
        config = dataclasses.replace(
            config, output=dataclasses.replace(config.output, dir=args.out)
        )
    specs = choose(config, args.export, args.dt)
    results = asyncio.run(_run(config, specs))
    for result in results:
        print(_json(result) if args.json else _text(result))
    if not args.json:
        print()
        print(summary_table(results))
    if any(not result.ok or result.rows_quarantined for result in results):
        return 1
    return 0


def choose(config: Config, names: Sequence[str], day: str | None) -> list[ExportSpec]:
    """The exports to run: the named ones (in the order given) or all; ``day`` sets ``dt``."""
    specs = [config.export(name) for name in names] if names else list(config.exports)
    if not specs:
        raise ConfigError("the configuration has no [[exports]] to run")
    return [dataclasses.replace(spec, dt=day) if day else spec for spec in specs]


async def _run(config: Config, specs: list[ExportSpec]) -> list[ExportResult]:
    async with Engine(config) as engine:
        return await engine.run(specs)


def _text(result: ExportResult) -> str:
    if not result.ok:
        return f"{result.name}: FAILED ({result.error_type}): {result.error}"
    quarantined = f", {result.rows_quarantined} quarantined" if result.rows_quarantined else ""
    return (
        f"{result.name}: done, {result.records} records from {result.rows_read} rows"
        f"{quarantined} in {result.files} file(s), {result.bytes_read} bytes, "
        f"{result.seconds:.1f} s; manifest: {result.manifest_location}"
    )


def _json(result: ExportResult) -> str:
    summary = {
        "name": result.name,
        "status": result.status,
        "account": result.spec.account,
        "stream": result.spec.stream,
        "remote_id": result.remote_id,
        "records": result.records,
        "rows_read": result.rows_read,
        "rows_quarantined": result.rows_quarantined,
        "files": result.files,
        "bytes_read": result.bytes_read,
        "bytes_written": result.bytes_written,
        "retries": result.retries,
        "seconds": round(result.seconds, 3),
        "manifest": result.manifest_location,
        "error": result.error,
        "error_type": result.error_type,
    }
    return orjson.dumps(summary).decode()
