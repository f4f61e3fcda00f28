"""Incremental decoders (gzip) and parsers (CSV, JSON lines, JSON array) plus the sniffer."""
