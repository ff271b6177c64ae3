"""Hanging protocol: how a study fills the screen, decided from its attributes.

Projection radiographs (CR, DX, MG) hang their views side by side; a multi-frame cine series
(US, XA, XRF) fills the screen; otherwise the grid grows with the number of series: 1x1, 1x2, 2x2.
Localizers (Image Type value 3 LOCALIZER, PS3.3 C.8.2.1.1.1: the scout a CT is planned on) hang after
the series they locate, so the first viewport holds the diagnostic stack and the localizer shows its
reference lines. Series that do not fit stay in the series strip.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyjpip.layout.ordering import Series, Study

PROJECTION = {"CR", "DX", "MG", "DR"}
CINE = {"US", "XA", "XRF", "RF", "IVUS"}


@dataclass(frozen=True)
class Viewport:
    series_instance_uid: str
    instance: int  # index into the series' ordered instances
    cine: bool = False


@dataclass(frozen=True)
class Hanging:
    rows: int
    columns: int
    viewports: tuple[Viewport, ...]


def hang(study: Study) -> Hanging:
    series = [s for s in study.series if s.instances]
    if not series:
        return Hanging(1, 1, ())
    if all(s.modality in PROJECTION for s in series):
        views = [Viewport(s.series_instance_uid, n) for s in series for n in range(len(s.instances))][:4]
        return Hanging(1 if len(views) <= 2 else 2, min(len(views), 2), tuple(views))
    if len(series) == 1 and series[0].modality in CINE and series[0].instances[0].frames > 1:
        return Hanging(1, 1, (Viewport(series[0].series_instance_uid, 0, cine=True),))
    shown = sorted(series, key=is_localizer)[:4]  # a stable sort: localizers last, the rest in order
    rows, columns = {1: (1, 1), 2: (1, 2)}.get(len(shown), (2, 2))
    return Hanging(rows, columns, tuple(Viewport(s.series_instance_uid, _middle(s),
                                                 cine=s.modality in CINE and s.instances[0].frames > 1)
                                        for s in shown))


def is_localizer(series: Series) -> bool:
    """Whether the series is a localizer: its first image's Image Type has LOCALIZER as value 3
    (C.8.2.1.1.1; C.7.6.1.1.2 leaves value 3 to the IOD, other modalities use the same word)."""
    if not series.instances:
        return False
    image_type = series.instances[0].dataset.get("ImageType")
    if not image_type:
        return False
    values = image_type.split("\\") if isinstance(image_type, str) else list(image_type)
    return len(values) > 2 and str(values[2]).strip().upper() == "LOCALIZER"


def _middle(series: Series) -> int:
    """Stacks open at their middle slice; single images at themselves."""
    return len(series.instances) // 2 if len(series.instances) > 2 else 0
