"""The one place a UID becomes a file name (pyjpip.dicom.uid_paths): only PS3.5 9.1 UIDs, always below the root."""

import os

import pytest

from pyjpip.dicom.uid_paths import is_uid, uid_path
from pyjpip.errors import UnsafePathError


@pytest.mark.parametrize("value, expected", [
    ("1.2.840.10008.1.2.4.94", True), ("2.25." + "9" * 39, True), ("1", True),
    ("", False), ("..", False), ("1..2", False), (".1", False), ("1.", False), ("1.2/3", False), ("../1", False),
    ("1\\2", False), ("C:1.2", False), ("1.2\0", False), ("1.٣", False), ("1." + "2" * 63, False), (" 1.2", False),
])
def test_only_uids_of_ps3_5_9_1_are_uids(value, expected):
    assert is_uid(value) is expected


def test_a_path_is_made_of_uids_below_its_root(tmp_path):
    path = uid_path(str(tmp_path), ("StudyInstanceUID", "1.2"), ("SOPInstanceUID", "1.2.3"), suffix=".dcm")
    assert path == os.path.join(str(tmp_path), "1.2", "1.2.3.dcm")
    with pytest.raises(UnsafePathError) as raised:
        uid_path(str(tmp_path), ("StudyInstanceUID", "1.2"), ("SeriesInstanceUID", "/etc"), ("SOPInstanceUID", "1"))
    assert raised.value.attribute == "SeriesInstanceUID" and "'/etc' is not a UID" in str(raised.value)
