"""Lease owners: who holds an export, in a form another process can check.

Why ``host:pid:suffix``: a backfill command and a worker fleet share one state store, and a
process killed with ``kill -9`` cannot release its leases. Naming the host and pid lets any
process of the same host see that the owner no longer exists and take its leases back at once,
instead of waiting for them to expire. The suffix tells apart two owners in one process (a
random token) or names a worker (its configured id, readable in the store).
"""

from __future__ import annotations

import os
import secrets
import socket


def owner_name(suffix: str | None = None) -> str:
    """A lease owner naming this process: ``host:pid:suffix`` (a random token by default)."""
    return f"{socket.gethostname()}:{os.getpid()}:{suffix or secrets.token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


__all__ = ["owner_is_dead", "owner_name"]
