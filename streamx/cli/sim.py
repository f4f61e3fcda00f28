"""``streamx sim``: run the Symplify and Cordial simulators standalone, until interrupted.

Useful to try streamx (or any other client) against faithful vendor fakes without credentials:
it prints the base URLs and the demo credentials, and Cordial jobs deliver their files into the
``--landing`` directory (destination type ``local``) or to any S3 endpoint given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import orjson

from streamx.testing import CordialSim, SymplifySim
from streamx.testing.seeded import SeededProvider

DEMO_CREDENTIALS = frozenset({"symplify_token", "cordial_api_key"})
HELP = "run the Symplify and Cordial vendor simulators on loopback (for demos and tests)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--symplify-port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--cordial-port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--landing", default="./streamx-landing", help="local landing directory")
    parser.add_argument("--s3-endpoint", help="S3 endpoint for s3 destinations (e.g. moto)")
    parser.add_argument("--rows", type=int, default=1000, help="rows per simulated export")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--ready-file", help="write the URLs and credentials here as JSON")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    provider = SeededProvider(seed=args.seed, rows=args.rows)
    Path(args.landing).mkdir(parents=True, exist_ok=True)
    symplify = SymplifySim(provider=provider)
    cordial = CordialSim(
        provider=provider, local_root=args.landing, s3_endpoint_url=args.s3_endpoint
    )
    async with contextlib.AsyncExitStack() as stack:
        await symplify.start(args.host, args.symplify_port)
        stack.push_async_callback(symplify.stop)
        await cordial.start(args.host, args.cordial_port)
        stack.push_async_callback(cordial.stop)
        info = _describe(symplify, cordial, args.landing)
        _announce(info, args.ready_file)
        await _wait_for_signal()
    print("simulators stopped", file=sys.stderr)
    return 0


def _describe(symplify: SymplifySim, cordial: CordialSim, landing: str) -> dict[str, str]:
    return {
        "symplify_base_url": symplify.base_url,
        "symplify_customer_id": symplify.customer_id,
        "symplify_token": symplify.token,
        "cordial_base_url": cordial.base_url,
        "cordial_api_key": cordial.api_key,
        "landing": str(Path(landing).resolve()),
    }


def _announce(info: dict[str, str], ready_file: str | None) -> None:
    """Print the endpoints and the demo credentials. Those are the simulators' fixed, public
    values (they open nothing but these fakes), so printing them is safe; real credentials
    never pass through here."""
    for key, value in info.items():
        suffix = "   (public demo value)" if key in DEMO_CREDENTIALS else ""
        print(f"{key:22} {value}{suffix}")
    print("press Ctrl-C to stop", flush=True)
    if ready_file:
        path = Path(ready_file)
        temp = path.with_name(f".{path.name}.tmp")  # renamed: readers never see a partial file
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(info, option=orjson.OPT_INDENT_2))
        os.replace(temp, path)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
