"""The ``streamx`` command line: one module per subcommand, registered in ``COMMANDS``.

Exit codes are part of the interface: 0 clean, 1 finished but rows were quarantined (or some
exports failed), 2 bad usage or unusable input (the message names file and line or offset).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from streamx.allocators import lean_process
from streamx.exceptions import ConfigError, InputError, StreamxError

EXIT_OK = 0
EXIT_QUARANTINED = 1
EXIT_USAGE = 2

#: name -> module with ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Only the
#: chosen command's module is imported: ``streamx convert`` should not load the simulators, the
#: worker's metrics or the engine's network libraries (start-up time and resident memory).
COMMANDS: dict[str, str] = {
    "convert": "streamx.cli.convert",
    "run": "streamx.cli.run",
    "sim": "streamx.cli.sim",
    "backfill": "streamx.cli.backfill",
    "status": "streamx.cli.status",
    "worker": "streamx.cli.worker",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: full for the command it names, names only for the others
    (every command in full when ``argv`` names none, e.g. ``streamx --help``)."""
    parser = argparse.ArgumentParser(
        prog="streamx",
        description="Pull bulk exports from Symplify and Cordial into normalized records.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen_command(sys.argv[1:] if argv is None else argv)
    for name, module_name in COMMANDS.items():
        if chosen is not None and name != chosen:
            sub.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


#: Commands that ingest files (and so may use the JSON lines helper process).
INGESTING: frozenset[str] = frozenset(("convert", "run", "backfill", "worker"))


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (its first word not starting with "-"), if it is one."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamx`` console script and ``python -m streamx``."""
    lean_process()  # before any command imports pyarrow
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command in INGESTING:
        from streamx.helper import enable

        enable()  # this program's entry point is guarded: the helper process may start
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
