"""What a DICOM image should look like on an 8-bit screen, from pydicom's decoding of the ORIGINAL file
(CPython, numpy): the reference the viewer's painted pixels are compared with.

Grey-scale (PS3.3 C.11, the pipeline of PS3.4 N.2.1), each step by pydicom's own function where it has one:

1. stored values: ``pixel_array`` (Pixel Representation, Bits Stored, the J2K sign correction);
2. Modality LUT (C.11.1): ``apply_modality_lut`` (the Modality LUT Sequence, else Rescale Slope/Intercept);
3. VOI (C.11.2): the first window if it is usable (C.11.2.1.2: LINEAR needs a width of at least 1;
   C.11.2.1.3: LINEAR_EXACT and SIGMOID a width above 0), by ``apply_windowing``; else the first item of
   the VOI LUT Sequence by ``apply_voi`` (its input rounded to an integer modality value); else the
   viewer's documented rule for an image without either (README, web/paint.js autoWindow): the image's
   range of modality values, padding left out, LINEAR_EXACT from black to white (a flat image is mid
   grey). Windowing keeps pydicom's own output range (from the extremes it gives), mapped to 0..255;
   a VOI LUT's output range is 0 .. 2^n - 1, n its descriptor's third value;
4. polarity: Presentation LUT Shape, when present, decides (C.7.6.1 General Image: IDENTITY, output is in
   P-values; INVERSE, output after inversion is in P-values; PS3.4 N.2.1.4: the pipeline overrides
   Photometric Interpretation); without it MONOCHROME1 is inverted (C.7.6.3.1.2). pydicom's
   ``apply_presentation_lut`` inverts about the image's own maximum, not the output range, so the
   inversion is 255 - y here;
5. Pixel Padding Value .. Pixel Padding Range Limit (C.7.5.1.1.2, stored values) painted black, as the
   viewer documents (padding lies at the black end of either polarity);
6. overlay planes with Overlay Data (C.9.2), read by pydicom's ``overlay_array``, drawn white.

Colour: RGB as pydicom decodes it (YBR_FULL and YBR_FULL_422 converted to RGB by pydicom, YBR_RCT/YBR_ICT
by the JPEG 2000 decoder's component transform), PALETTE COLOR by ``apply_color_lut``; scaled from
Bits Stored (the palette's entry size) to 8 bits.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, apply_windowing

GREY = ("MONOCHROME1", "MONOCHROME2")


@dataclass
class Display:
    pixels: np.ndarray  # uint8: (rows, columns) grey, or (rows, columns, 3) RGB
    steps: str  # what was applied, for messages

    @property
    def colour(self) -> bool:
        return self.pixels.ndim == 3


def read(path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(str(path), force=True)


def original_samples(path, ds=None) -> np.ndarray:
    """The stored values of a single-frame file: pydicom's decoding; where pydicom has no decoder for it
    (12-bit JPEG that libjpeg refuses: pydicom's JPEG-lossy.dcm), DCMTK's dcmdjpeg decoding of the same
    file, an independent decoder. Raises what pydicom raises otherwise."""
    ds = ds if ds is not None else read(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ds.pixel_array
    except Exception:
        if str(ds.file_meta.get("TransferSyntaxUID", "")) not in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"):
            raise
        from pixel_sources import dcmtk_decoded

        return dcmtk_decoded(path)[0]


def displayed(path) -> Display:
    """The 8-bit display of a single-frame image file. Raises what pydicom raises when it cannot decode it."""
    ds = read(path)
    pixels = original_samples(path, ds)
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return Display(_to_8_bits(rgb, bits), f"palette ({bits}-bit entries)")
    if photometric not in GREY:
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise ValueError(f"{photometric} decoded to {pixels.shape}, not three samples a pixel")
        bits = int(ds.BitsStored)
        return Display(_to_8_bits(pixels, bits), f"{photometric} as RGB, {bits} bits")
    return _grey(ds, pixels.astype(np.int64) if pixels.dtype.kind in "iu" else pixels)


def _to_8_bits(values: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(values.astype(np.float64) * 255 / ((1 << bits) - 1)).astype(np.uint8)


def _first(value):
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        return float(value[0]) if len(value) else None
    return float(value)


def _grey(ds, stored: np.ndarray) -> Display:
    steps = []
    modality = apply_modality_lut(stored, ds)
    if ds.get("ModalityLUTSequence"):
        steps.append("Modality LUT Sequence")
    elif "RescaleSlope" in ds and "RescaleIntercept" in ds:
        steps.append(f"rescale {ds.RescaleSlope} {ds.RescaleIntercept}")
    modality = modality.astype(np.float64)
    padding = np.zeros(stored.shape, bool)
    if ds.get("PixelPaddingValue") is not None:
        limit = ds.get("PixelPaddingRangeLimit", ds.PixelPaddingValue)
        low, high = sorted((int(ds.PixelPaddingValue), int(limit)))
        padding = (stored >= low) & (stored <= high)
        steps.append(f"padding {low}..{high}")
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    usable = center is not None and width is not None and (width >= 1 if function == "LINEAR" else width > 0)
    if usable:
        # pydicom's output range is that of the modality values (y_min..y_max); its own extremes, from
        # values far outside the window, give it, whatever the slope's sign or a Modality LUT's depth.
        far = abs(width) * 1e6 + 1e6
        with np.errstate(over="ignore"):  # SIGMOID's exp at the far values
            out = apply_windowing(np.concatenate([modality.ravel(), [center - far, center + far]]), ds)
        y_min, y_max = out[-2], out[-1]
        y = (out[:-2].reshape(stored.shape) - y_min) / (y_max - y_min)
        steps.append(f"window {center:g}/{width:g} {function}")
    elif ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        y = apply_voi(np.rint(modality).astype(np.int64), ds).astype(np.float64) / ((1 << bits) - 1)
        steps.append(f"VOI LUT Sequence ({bits} bits)")
    else:
        kept = modality[~padding]
        low, high = (kept.min(), kept.max()) if kept.size else (0.0, 0.0)
        y = np.clip((modality - low) / (high - low), 0, 1) if high > low else np.full(modality.shape, 0.5)
        steps.append(f"image range {low:g}..{high:g}")
    grey = np.rint(np.clip(y, 0, 1) * 255)
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    invert = shape == "INVERSE" if shape in ("IDENTITY", "INVERSE") else ds.PhotometricInterpretation == "MONOCHROME1"
    if invert:
        grey = 255 - grey
        steps.append(f"inverted ({shape or 'MONOCHROME1'})")
    grey[padding] = 0
    overlays = _overlays(ds, stored.shape)
    if overlays is not None:
        grey[overlays] = 255
        steps.append("overlays")
    return Display(grey.astype(np.uint8), ", ".join(steps))


def _overlays(ds, shape) -> np.ndarray | None:
    """Where any overlay plane with Overlay Data (C.9.2) is set, placed at its Overlay Origin (from 1)."""
    drawn = None
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x3000) not in ds:
            continue
        plane = ds.overlay_array(group).astype(bool)
        origin = ds[group, 0x0050].value if (group, 0x0050) in ds else [1, 1]
        top, left = int(origin[0]) - 1, int(origin[1]) - 1
        drawn = np.zeros(shape, bool) if drawn is None else drawn
        rows = slice(max(top, 0), min(top + plane.shape[0], shape[0]))
        columns = slice(max(left, 0), min(left + plane.shape[1], shape[1]))
        drawn[rows, columns] |= plane[rows.start - top : rows.stop - top, columns.start - left : columns.stop - left]
    return drawn
