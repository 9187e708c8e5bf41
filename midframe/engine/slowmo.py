"""Slow motion's other streams (``engine.mode: slowmo``): pure, no I/O.

The video lasts ``factor`` times as long as the source. Its audio is left out
(``output.slowmo_audio: drop``) or slowed down with its pitch kept by ffmpeg's ``atempo`` filter
(``stretch``), which means re-encoding it. Subtitles and chapters, timed for the original speed, are
left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Protocol, TypeVar

# One atempo instance slows down to half speed at most in the ffmpeg versions midframe supports
# (newer ones go lower, but a chain of halvings works everywhere and sounds the same).
ATEMPO_MIN = Fraction(1, 2)


class _Stream(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def action(self) -> str: ...


S = TypeVar("S", bound=_Stream)


def atempo_chain(factor: int) -> str:
    """``atempo`` filters whose tempos multiply to exactly ``1/factor``, each at least 0.5."""
    if factor < 1:
        raise ValueError(f"factor = {factor}: must be at least 1")
    tempo, parts = Fraction(1, factor), []
    while tempo < ATEMPO_MIN:
        parts.append(ATEMPO_MIN)
        tempo /= ATEMPO_MIN
    parts.append(tempo)
    return ",".join(f"atempo={float(part):.12g}" for part in parts)


def slow_streams(streams: Sequence[S], *, factor: int, audio: str, encoder_for: Callable[[S], str | None]) -> list[S]:
    """The join's plan for each stream in slow motion: audio stretched (``encoder_for`` names the
    encoder the container takes, None when there is none) or dropped; everything else dropped."""
    planned = []
    for stream in streams:
        encoder = None
        if stream.kind == "audio" and audio == "stretch" and stream.action != "drop":
            encoder = stream.action if stream.action != "copy" else encoder_for(stream)
        if encoder is None:
            planned.append(replace(stream, action="drop"))  # type: ignore[type-var]
        else:
            planned.append(replace(stream, action=encoder, filter=atempo_chain(factor)))  # type: ignore[type-var]
    return planned
