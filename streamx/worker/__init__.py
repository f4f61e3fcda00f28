"""The long-running worker's parts, each usable and tested on its own.

:mod:`~streamx.worker.schedule` and :mod:`~streamx.worker.planner` decide which export
occurrences are due (and give each a stable key so a fleet plans it once);
:mod:`~streamx.worker.signals` drains on SIGTERM/SIGINT; :mod:`~streamx.worker.metrics`,
:mod:`~streamx.worker.health` and :mod:`~streamx.worker.logs` make the worker observable;
:mod:`~streamx.worker.config` reads the ``[worker]`` table. The worker loop that assembles them
around the engine and a :class:`~streamx.state.base.StateStore` builds on these modules.
"""
