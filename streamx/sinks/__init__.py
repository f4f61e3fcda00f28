"""Output destinations: the :class:`Sink` protocol and its implementations."""

from streamx.sinks.base import PartUpload, Sink, split_relpath
from streamx.sinks.local import LocalPartUpload, LocalSink

__all__ = ["LocalPartUpload", "LocalSink", "PartUpload", "Sink", "split_relpath"]
