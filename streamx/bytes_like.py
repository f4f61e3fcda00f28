"""What encoded output travels as: ``bytes``, or a read-only ``memoryview`` of Arrow's buffer.

The columnar fast path encodes a block into one Arrow buffer of ~1.5 MB. Copying it into
``bytes`` cost 5-10% of the fast path's wall time (500k rows, alternating runs), all of it
holding the GIL: a fresh 1.5 MB is page-faulted in and filled while the other threads wait. So
the view is handed on instead, through the compressors (which read any buffer) to the part
uploads. Everything on that way only reads, measures (``len``) and slices it: ``hashlib``,
the compressors, file writes, the S3 part buffer and asyncssh's SFTP writes all take a view.
"""

from __future__ import annotations

from typing import TypeAlias

Bytes: TypeAlias = bytes | memoryview
