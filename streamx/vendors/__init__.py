"""Vendor clients: one module per vendor (Symplify, Cordial), registered in ``registry``."""

from streamx.vendors.base import CallOptions, JobStatus, ResultFile, VendorClient
from streamx.vendors.cordial import CordialClient
from streamx.vendors.registry import make_client
from streamx.vendors.symplify import SymplifyClient

__all__ = [
    "CallOptions",
    "CordialClient",
    "JobStatus",
    "ResultFile",
    "SymplifyClient",
    "VendorClient",
    "make_client",
]
