"""Stable record ids, and the text form of vendor ids.

``record_id`` lets a reader deduplicate: Symplify periods are relative (TODAY, LAST_WEEK…), so
backfills overlap and the same event arrives in several exports. The rule (docs/schema.md):

- the vendor's own id for the row when it has one (Cordial ``_id``, Symplify ``eventId``, an
  entity's ``listId``…), as text;
- otherwise a hash of the canonical source row: 32 lowercase hex digits of BLAKE2b-128 over the
  stream name, the account and the row as canonical JSON (keys sorted, compact, UTF-8). The
  export id and the line number are deliberately left out, so the same row exported twice (by
  overlapping windows, or by a re-run) gets the same id, and any change to any field gives a new
  one.

record ids are unique within ``(stream, account)``; deduplicate on that triple.
"""

from __future__ import annotations

import json
from hashlib import blake2b
from typing import Any, Final

import orjson

_SEPARATOR: Final = b"\x1f"
_SORTED: Final = orjson.OPT_SORT_KEYS


def id_text(value: Any) -> str | None:
    """The text of a scalar vendor value, or ``None`` when it is absent or not a scalar id.

    Strings are kept exactly (an empty string is absent); JSON integers become their decimal text
    (ids are strings in schema v1). Anything else (null, bool, float, object, array) is not taken
    as an id or name, and the caller leaves it in ``attributes`` untouched.
    """
    if type(value) is str:
        return value or None
    if type(value) is int:
        return str(value)
    return None


def row_hash(stream: str, account: str, data: dict[str, Any]) -> str:
    """record_id of a row without a vendor id: a hash of its canonical JSON form."""
    digest = blake2b(digest_size=16)
    digest.update(_utf8(stream))
    digest.update(_SEPARATOR)
    digest.update(_utf8(account))
    digest.update(_SEPARATOR)
    digest.update(canonical_json(data))
    return digest.hexdigest()


def key_hash(*parts: str) -> str:
    """record_id built from a few identifying values (audience trends: account, audience, day)."""
    digest = blake2b(digest_size=16)
    for part in parts:
        digest.update(_utf8(part))
        digest.update(_SEPARATOR)
    return digest.hexdigest()


def canonical_json(data: Any) -> bytes:
    """Sorted-key compact UTF-8 JSON; the stdlib serializes what orjson refuses.

    orjson refuses integers wider than 64 bits and lone surrogates; a given row always takes the
    same path, so its hash is stable either way.
    """
    try:
        return orjson.dumps(data, option=_SORTED)
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(
            data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
        )
        return _utf8(text)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
