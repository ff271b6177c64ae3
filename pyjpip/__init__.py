"""pyjpip: JPIP (ISO/IEC 15444-9) streaming of JPEG 2000 pixels for DICOM viewers.

Pure Python so that the same package runs on CPython and, unchanged, in the browser under Pyodide.
"""

__version__ = "0.1.0"
