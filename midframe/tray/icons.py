"""The tray icon's pictures, drawn with Pillow: one per state, the working one with a progress ring."""

from __future__ import annotations

from typing import Literal

from PIL import Image, ImageDraw

TrayState = Literal["idle", "working", "paused", "offline"]

SIZE = 64
_BACKGROUND = {
    "idle": (46, 125, 50),  # green: watching, nothing to do
    "working": (21, 101, 192),  # blue, with a ring that fills with the job's progress
    "paused": (239, 150, 0),  # amber
    "offline": (198, 40, 40),  # red: the daemon does not answer
}
BADGE = (229, 0, 0)  # the dot for failures not yet seen: redder than the offline disc
_WHITE = (255, 255, 255, 255)
_TRACK = (255, 255, 255, 90)


def draw_icon(state: TrayState, progress: float | None = None, *, size: int = SIZE,
              badge: bool = False) -> Image.Image:
    """An RGBA square: a coloured disc with a white glyph (frames, ring, pause bars or a cross); with
    ``badge``, a red dot ringed in white at the top right (failures not yet seen)."""
    scale = 4  # drawn large, then reduced, for smooth edges
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    red, green, blue = _BACKGROUND[state]
    draw.ellipse((0, 0, big - 1, big - 1), fill=(red, green, blue, 255))
    unit = big / 16
    if state == "idle":
        _draw_frames(draw, unit)
    elif state == "working":
        _draw_ring(draw, unit, 0.0 if progress is None else min(max(progress, 0.0), 1.0))
    elif state == "paused":
        draw.rectangle((5 * unit, 4 * unit, 7 * unit, 12 * unit), fill=_WHITE)
        draw.rectangle((9 * unit, 4 * unit, 11 * unit, 12 * unit), fill=_WHITE)
    else:
        width = round(1.8 * unit)
        draw.line((5 * unit, 5 * unit, 11 * unit, 11 * unit), fill=_WHITE, width=width)
        draw.line((11 * unit, 5 * unit, 5 * unit, 11 * unit), fill=_WHITE, width=width)
    if badge:
        draw.ellipse((9.6 * unit, 0, 16 * unit - 1, 6.4 * unit), fill=_WHITE)
        draw.ellipse((10.4 * unit, 0.8 * unit, 15.2 * unit, 5.6 * unit), fill=(*BADGE, 255))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def _draw_frames(draw: ImageDraw.ImageDraw, unit: float) -> None:
    """Two film frames with a third, fainter one between them: the picture of what midframe does."""
    draw.rectangle((3 * unit, 5 * unit, 6.5 * unit, 11 * unit), fill=_WHITE)
    draw.rectangle((6.9 * unit, 5.8 * unit, 9.1 * unit, 10.2 * unit), fill=(255, 255, 255, 150))
    draw.rectangle((9.5 * unit, 5 * unit, 13 * unit, 11 * unit), fill=_WHITE)


def _draw_ring(draw: ImageDraw.ImageDraw, unit: float, progress: float) -> None:
    box = (3 * unit, 3 * unit, 13 * unit, 13 * unit)
    width = round(2 * unit)
    draw.arc(box, 0, 360, fill=_TRACK, width=width)
    if progress > 0:
        draw.arc(box, -90, -90 + 360 * progress, fill=_WHITE, width=width)
    # a play triangle in the middle says "converting"
    draw.polygon([(7 * unit, 6 * unit), (7 * unit, 10 * unit), (10.2 * unit, 8 * unit)], fill=_WHITE)
