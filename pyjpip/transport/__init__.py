"""Transports: thin adapters that move bytes for the sans-IO core (CPython HTTP, Pyodide fetch, servers)."""
