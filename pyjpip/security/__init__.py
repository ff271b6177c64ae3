"""Security of pyjpip's surfaces: who is asking (authentication), what they may do (authorization),
and the record of what was done (audit). Each concept is one module, importing nothing heavy at
package import.

- ``audit``: DICOM PS3.15 Annex A audit messages, to a file and/or syslog (RFC 5424).
"""
