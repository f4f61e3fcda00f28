"""Stream name -> normalizer. A new stream is one line here (and one in streamx.records.STREAMS)."""

from __future__ import annotations

from typing import Final

from streamx.exceptions import ConfigError
from streamx.normalize import cordial, symplify
from streamx.normalize.base import Normalizer

NORMALIZERS: Final[dict[str, Normalizer]] = {
    "symplify.lists": symplify.normalize_entity,
    "symplify.campaigns": symplify.normalize_entity,
    "symplify.messages": symplify.normalize_entity,
    "symplify.projects": symplify.normalize_entity,
    "symplify.opens": symplify.normalize_event,
    "symplify.sent": symplify.normalize_event,
    "symplify.clicks": symplify.normalize_event,
    "symplify.hard_bounces": symplify.normalize_event,
    "symplify.soft_bounces": symplify.normalize_event,
    "symplify.optouts": symplify.normalize_event,
    "cordial.contact_activity": cordial.normalize_contact_activity,
    "cordial.contacts": cordial.normalize_contact,
    "cordial.audience_trends": cordial.normalize_audience_trends,
}


def get_normalizer(stream: str) -> Normalizer:
    """The normalizer of ``stream`` (``symplify.opens``…); ConfigError names the known streams."""
    try:
        return NORMALIZERS[stream]
    except KeyError:
        known = ", ".join(NORMALIZERS)
        raise ConfigError(f"unknown stream {stream!r} (known: {known})") from None
