"""Simulated hosts (support/hosts.py): chirp across network namespaces
joined by a bridge, TLS between them, with packet loss, partitions,
bandwidth limits and cut links."""
