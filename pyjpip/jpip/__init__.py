"""JPIP (ISO/IEC 15444-9): messages, requests, view windows, cache models, server and client cores.

Every module here is sans-IO: plain objects fed with bytes and strings, returning bytes and
decisions. Transports (pyjpip.transport) move the bytes.
"""
