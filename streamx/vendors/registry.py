"""Vendor name -> client factory. A new vendor is one module plus one line in :data:`CLIENTS`."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from streamx.config import AccountConfig
from streamx.engine.clock import Clock
from streamx.exceptions import ConfigError
from streamx.landing import LandingZone, open_landing_zone
from streamx.vendors import cordial, symplify
from streamx.vendors.base import ClientSettings, VendorClient


class ClientFactory(Protocol):
    """``from_account`` of a vendor client class."""

    def __call__(
        self,
        account: AccountConfig,
        session: aiohttp.ClientSession,
        clock: Clock,
        settings: ClientSettings,
        landing: LandingZone | None = None,
    ) -> VendorClient: ...


CLIENTS: dict[str, ClientFactory] = {
    "symplify": symplify.SymplifyClient.from_account,
    "cordial": cordial.CordialClient.from_account,
}

#: Transfers in flight per account when the account does not set ``max_transfers``.
DEFAULT_MAX_TRANSFERS: dict[str, int] = {
    "symplify": symplify.DEFAULT_MAX_TRANSFERS,
    "cordial": cordial.DEFAULT_MAX_TRANSFERS,
}


def make_client(
    account: AccountConfig,
    session: aiohttp.ClientSession,
    clock: Clock,
    settings: ClientSettings,
    landing: LandingZone | None = None,
) -> VendorClient:
    """The client of ``account``; its landing zone is opened from the config unless given."""
    factory = CLIENTS.get(account.vendor)
    if factory is None:
        raise ConfigError(f"account {account.name!r}: unknown vendor {account.vendor!r}")
    if landing is None and account.landing is not None:
        landing = open_landing_zone(account.landing)
    return factory(account, session, clock, settings, landing)


def max_transfers(account: AccountConfig) -> int:
    """The account's transfer limit (configured, else the vendor's default)."""
    if account.max_transfers is not None:
        return account.max_transfers
    return DEFAULT_MAX_TRANSFERS.get(account.vendor, 1)


__all__ = ["CLIENTS", "DEFAULT_MAX_TRANSFERS", "ClientFactory", "make_client", "max_transfers"]
