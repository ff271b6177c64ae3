"""The Image Pixel Module as pixels are read by: every bad value named, every allocation bounded before decoding."""

import warnings

import pytest
from pydicom.dataset import Dataset

from pyjpip.dicom.image_pixel import integer, named, read_image_pixel
from pyjpip.errors import PixelAttributeError


def image(**changes) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 512, 256, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword, value in changes.items():
        if value == "1A":  # as read from a file: converted (and found wrong) only when used
            from pydicom.dataelem import RawDataElement
            from pydicom.datadict import tag_for_keyword

            tag = tag_for_keyword(keyword)
            ds[tag] = RawDataElement(tag, "IS", 2, b"1A", 0, False, True)
        elif value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    return ds


def test_a_good_module_is_read():
    pixels = read_image_pixel(image(NumberOfFrames=3))
    assert (pixels.rows, pixels.columns, pixels.bits_stored, pixels.number_of_frames) == (512, 256, 12, 3)
    assert pixels.decoded_bytes == 512 * 256 * 2 * 3 and not pixels.signed


def test_names_are_the_standards_with_their_tags():
    assert named("NumberOfFrames") == "Number of Frames (0028,0008)"
    assert named("PixelRepresentation") == "Pixel Representation (0028,0103)"


@pytest.mark.parametrize("changes, words, attribute", [
    ({"NumberOfFrames": "1A"}, "Number of Frames (0028,0008) is '1A', not an integer", "NumberOfFrames"),
    ({"NumberOfFrames": 0}, "Number of Frames (0028,0008) is 0, outside 1 to", "NumberOfFrames"),
    ({"Rows": None}, "Rows (0028,0010) is missing", "Rows"),
    ({"Columns": 0}, "Columns (0028,0011) is 0, outside 1 to 65535", "Columns"),
    ({"BitsStored": 17}, "Bits Stored (0028,0101) is 17, outside 1 to 16", "BitsStored"),
    ({"BitsAllocated": 12}, "Bits Allocated (0028,0100) is 12, not one of", "BitsAllocated"),
    ({"PixelRepresentation": 2}, "Pixel Representation (0028,0103) is 2, outside 0 to 1", "PixelRepresentation"),
    ({"SamplesPerPixel": 2}, "Samples per Pixel (0028,0002) is 2: only 1", "SamplesPerPixel"),
    ({"SamplesPerPixel": 3}, "is 3 but MONOCHROME2 has 1", "SamplesPerPixel"),
    ({"PhotometricInterpretation": "CMYK"}, "Photometric Interpretation (0028,0004) is 'CMYK'", "PhotometricInterpretation"),
])
def test_every_bad_value_is_named_with_what_it_is(changes, words, attribute):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of an IS value that is not one
        ds = image(**changes)
        with pytest.raises(PixelAttributeError) as raised:
            read_image_pixel(ds, "x.dcm")
    assert str(raised.value).startswith("x.dcm: ") and words in str(raised.value), str(raised.value)
    assert raised.value.attribute == attribute and "\n" not in str(raised.value)


def test_what_would_decode_past_the_limit_is_refused_before_decoding():
    ds = image(Rows=65535, Columns=65535, NumberOfFrames=10000, BitsAllocated=32, BitsStored=32)
    with pytest.raises(PixelAttributeError, match="would decode to 171793449000000 bytes, over the limit"):
        read_image_pixel(ds, maximum_bytes=4 << 30)
    assert read_image_pixel(image(), maximum_bytes=512 * 256 * 2).decoded_bytes == 512 * 256 * 2


def test_integer_takes_a_default_and_refuses_several_values():
    ds = image()
    assert integer(ds, "NumberOfFrames", 1) == 1
    ds.WindowWidth = [400, 1500]
    with pytest.raises(PixelAttributeError, match="has 2 values; one is allowed"):
        integer(ds, "WindowWidth")
