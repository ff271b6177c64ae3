"""DICOM networking adapters (pynetdicom, CPython only): the Storage SCP and SCU around the sans-IO
decisions of pyjpip.dicom.storage and pyjpip.dicom.presentation."""
