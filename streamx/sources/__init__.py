"""Byte sources: async iterators of byte chunks from a file, HTTP, S3 or SFTP."""
