"""What makes an export survive a crash: checkpoints, the state tracker, the dedupe index and
lease owners.

Why a package of its own: the engine, ``streamx backfill`` and ``streamx worker`` all run
exports durably against one state store, so none of them owns these pieces; the engine
depends on this package and never on the commands built on it.
"""
