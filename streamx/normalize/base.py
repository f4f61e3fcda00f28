"""What a normalizer receives and returns.

A normalizer maps one parsed source :class:`~streamx.codecs.base.Row` to zero or more records of
schema v1 (audience trends unpivot one row into one record per day). It raises
:class:`~streamx.exceptions.RowError` for a row it cannot map; the pipeline quarantines that row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamx.codecs.base import Row


@dataclass(frozen=True, slots=True)
class ExportContext:
    """Identity of the export a row came from; stamped on every record."""

    source: str
    stream: str
    account: str
    export_id: str
    #: Cordial ``columnHeaders``: label in the file -> Cordial field name. Lets the normalizer
    #: map renamed columns back to their meaning.
    column_labels: Mapping[str, str] = field(default_factory=dict)


Normalizer = Callable[[Row, ExportContext], list[dict[str, Any]]]
