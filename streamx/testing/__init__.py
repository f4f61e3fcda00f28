"""streamx.testing: faithful in-process fakes of the vendors, for tests, demos and benchmarks.

- :class:`SymplifySim`: Symplify's statistics export API, with result files served by an
  :class:`ObjectStore` that enforces presigned-URL expiry and signatures and honours Range/ETag.
- :class:`CordialSim`: Cordial's v2 export and jobs API; jobs write their files into the real
  destination asked for (S3 endpoint, SFTP server, local directory).
- :class:`Faults` / :class:`FaultPlan`: throttling, 5xx, stalls, resets, truncation, lying
  Content-Length, expired URLs, failed or endless jobs, trickling bandwidth.
- :class:`DataProvider`: where the rows come from (:class:`StaticRows` replays given rows).
- :class:`ManualClock`: drive the state machines and URL expiry without sleeping.
- :class:`FaultProxy`: a TCP proxy on loopback that adds latency, caps bandwidth, resets
  connections after N bytes or black-holes them, in front of any server.

Everything binds to 127.0.0.1 by default::

    async with SymplifySim(provider=StaticRows(rows)) as sim:
        ...  # sim.base_url, sim.customer_id, sim.token
"""

from streamx.testing.clock import Clock, ManualClock, SystemClock
from streamx.testing.cordial_sim import CordialSim, CordialTimings
from streamx.testing.faults import FaultPlan, Faults, http_date
from streamx.testing.objectstore import ObjectStore
from streamx.testing.provider import DataProvider, StaticRows, SymplifyFormat
from streamx.testing.proxy import FaultProxy, ProxyMode
from streamx.testing.symplify_sim import SymplifySim, SymplifyTimings

__all__ = [
    "Clock",
    "CordialSim",
    "CordialTimings",
    "DataProvider",
    "FaultPlan",
    "FaultProxy",
    "Faults",
    "ManualClock",
    "ObjectStore",
    "ProxyMode",
    "StaticRows",
    "SymplifyFormat",
    "SymplifySim",
    "SymplifyTimings",
    "SystemClock",
    "http_date",
]
