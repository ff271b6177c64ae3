"""CPython-side helpers that need more than the core (numpy, a system OpenJPEG)."""
