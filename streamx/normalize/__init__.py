"""Vendor- and stream-specific normalizers into record schema v1."""
