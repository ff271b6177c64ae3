"""Security of pyjpip's surfaces: who is asking (authentication), what they may do (authorization),
and the record of what was done (audit). Each concept is one module, importing nothing heavy at
package import.

- ``audit``: DICOM PS3.15 Annex A audit messages, to a file and/or syslog (RFC 5424).
- ``identity``: an authenticated Identity and the scope vocabulary (read, store, administer).
- ``tokens``: OAuth 2.0 bearer JWTs (RFC 6750, 7519) validated against the issuer's JWKS (RFC 7517, 8725).
- ``authentication``: the ways a request is authenticated (bearer token, trusted proxy header, none).
- ``authorization``: (identity, action, study) -> allowed or why not; access policies; which study a
  DICOMweb resource or JPIP target belongs to.
- ``access``: the settings (CLI options, PYJPIP_AUTH_* variables) and the access control they build.
"""
