"""Durable export state: what was planned, started, transferred and published.

The store is what makes a killed process safe to restart: it records each export's remote id
(so a rerun never starts the vendor job twice), its checkpoint (so a download resumes) and its
published manifest (so a second run does only what is missing). SQLite (WAL) serves one process;
Postgres serves a fleet of workers that share exports by lease.
"""
