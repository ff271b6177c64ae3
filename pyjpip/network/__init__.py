"""DICOM networking adapters (pynetdicom, CPython only): the Storage SCP and SCU around the sans-IO
decisions of pyjpip.dicom.storage and pyjpip.dicom.presentation; and url_policy (sans-IO, any
Python), which Pixel Data Provider URLs may be fetched or kept."""
