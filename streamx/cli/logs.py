"""Logging for the one-shot commands (``run``, ``backfill``): warnings only, or every engine
step with ``-v``, as text on stderr so stdout stays the command's own output."""

from __future__ import annotations

import logging
import sys


def configure_command_logging(verbose: bool) -> None:
    """Root logger at INFO with ``-v`` (every engine step), else WARNING, to stderr."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


__all__ = ["configure_command_logging"]
