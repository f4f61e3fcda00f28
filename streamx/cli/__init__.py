"""The ``streamx`` command line: one module per subcommand, registered in ``COMMANDS``.

Exit codes are part of the interface: 0 clean, 1 finished but rows were quarantined (or some
exports failed), 2 bad usage or unusable input (the message names file and line or offset).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from streamx.cli import backfill, convert, run, sim, status, worker
from streamx.exceptions import ConfigError, InputError, StreamxError

EXIT_OK = 0
EXIT_QUARANTINED = 1
EXIT_USAGE = 2

#: name -> module with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, ModuleType] = {
    "convert": convert,
    "run": run,
    "sim": sim,
    "backfill": backfill,
    "status": status,
    "worker": worker,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamx",
        description="Pull bulk exports from Symplify and Cordial into normalized records.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamx`` console script and ``python -m streamx``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (ConfigError, InputError) as exc:
        print(f"streamx {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StreamxError as exc:
        print(f"streamx {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_QUARANTINED
    except KeyboardInterrupt:
        print(f"streamx {args.command}: interrupted", file=sys.stderr)
        return 130
