"""The JPEG 2000 codestream (ISO/IEC 15444-1 Annex A): marker segments and geometry."""

from pyjpip.codestream.markers import (
    CodingStyle,
    ImageAndTileSize,
    MainHeader,
    read_main_header,
)

__all__ = ["CodingStyle", "ImageAndTileSize", "MainHeader", "read_main_header"]
