"""Lease owners: a process killed with ``kill -9`` is recognised as gone by its owner name,
and nothing that might still run is ever taken for dead."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from streamx.durable.owners import owner_is_dead, owner_name


def _finished_pid() -> int:
    """The pid of a child that has exited and been reaped (so no process has it now)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_owner_names_this_host_and_process() -> None:
    host, pid, suffix = owner_name("worker-7").split(":")
    assert (host, pid, suffix) == (socket.gethostname(), str(os.getpid()), "worker-7")


def test_owners_without_a_suffix_are_distinct() -> None:
    assert owner_name() != owner_name()


def test_a_reaped_process_is_dead() -> None:
    assert owner_is_dead(f"{socket.gethostname()}:{_finished_pid()}:x")


def test_a_running_process_is_alive() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            assert not owner_is_dead(f"{socket.gethostname()}:{child.pid}:x")
        finally:
            child.kill()


def test_this_process_is_never_dead() -> None:
    assert not owner_is_dead(owner_name())


def test_another_host_or_a_foreign_name_is_left_to_expire() -> None:
    pid = _finished_pid()
    assert not owner_is_dead(f"not-{socket.gethostname()}:{pid}:x")
    assert not owner_is_dead("someone-else")
    assert not owner_is_dead(f"{socket.gethostname()}:abc:x")
