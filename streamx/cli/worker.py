"""``streamx worker``: run the configuration's schedules until SIGTERM (docs/operations.md).

Exit codes: 0 after a graceful stop (first SIGTERM/SIGINT: exports in flight finished or were
checkpointed and handed back within the grace period); 130 when a second signal cut the drain
short (the state is still consistent: the next start resumes); with ``--once``, 0 when every
export it ran was published, 1 when one failed; 2 for bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
from typing import cast

from streamx.config import Config
from streamx.exceptions import ConfigError
from streamx.state.registry import open_store
from streamx.worker.config import WorkerConfig, load_worker_config
from streamx.worker.logs import LOG_FORMATS, LogFormat, configure_logging, secrets_from_config
from streamx.worker.main import Worker, WorkerReport
from streamx.worker.signals import Shutdown

HELP = "run scheduled exports continuously, with /metrics and /healthz (SIGTERM drains)"
EXIT_FORCED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="FILE", help="streamx.toml")
    parser.add_argument("--id", help="worker id in leases and logs (overrides [worker] id)")
    parser.add_argument(
        "--port", type=int, help="port of /healthz and /metrics (overrides [worker] port)"
    )
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, help="log line format (overrides [worker])"
    )
    parser.add_argument(
        "--once", action="store_true", help="plan and run what is due now, then exit"
    )


def run(args: argparse.Namespace) -> int:
    config, worker = load_worker_config(args.config)
    worker = _overridden(worker, args)
    log_format = cast(LogFormat, worker.settings.log_format)  # checked by load_worker_config
    configure_logging(log_format, secrets=secrets_from_config(config))
    # The worker logs each state change once (streamx.worker.state); the engine's own line
    # per event would say the same thing again.
    logging.getLogger("streamx.engine").setLevel(logging.WARNING)
    report = asyncio.run(_serve(config, worker, once=args.once))
    if report.forced:
        return EXIT_FORCED
    return 0 if report.ok or not args.once else 1


def _overridden(worker: WorkerConfig, args: argparse.Namespace) -> WorkerConfig:
    changes = {
        name: value
        for name, value in (("id", args.id), ("port", args.port), ("log_format", args.log_format))
        if value is not None
    }
    if not changes:
        return worker
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    return dataclasses.replace(worker, settings=dataclasses.replace(worker.settings, **changes))


async def _serve(config: Config, worker: WorkerConfig, *, once: bool) -> WorkerReport:
    shutdown = Shutdown(grace=worker.settings.grace)
    with shutdown.installed():
        async with open_store(config) as store:
            return await Worker(config, worker, store, once=once, shutdown=shutdown).run()
