"""Small pure helpers of the worker: output names (shortened to fit the file system), the settings key,
the output size estimate, the error file's text."""

from __future__ import annotations

import hashlib
import json
import time
from fractions import Fraction
from pathlib import Path

from midframe.config import EngineConfig, OutputConfig
from midframe.fs.names import NUMBER_ROOM, fit_name, fit_stem, name_bytes

LOSSLESS_CODECS = frozenset({"ffv1", "huffyuv", "ffvhuff", "utvideo", "rawvideo", "png", "qtrle", "magicyuv"})


def format_fps(fps: Fraction | float | str) -> str:
    """50 -> ``50``, 60000/1001 -> ``59.94``, 24000/1001 -> ``23.976``."""
    value = Fraction(str(fps)) if not isinstance(fps, Fraction) else fps
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def output_extension(source: Path, output: OutputConfig) -> str:
    return f".{output.container}" if output.container else source.suffix


def output_name(source: Path, *, output: OutputConfig, fps_out: Fraction | str, factor: int | str,
                engine: str, limit: int | None = None, ext: str | None = None) -> str:
    """The file name ``output.name`` gives ``source`` (``{stem}.{fps}fps{ext}``). With ``limit`` (the
    file system's, in bytes) a name that would not fit with room for numbering (`` (2)``) has its stem
    shortened, keeping what the pattern adds (``.50fps.mp4``). ``ext``: the container the conversion
    really wrote, where it differs from the one asked for."""

    def named(stem: str) -> str:
        return output.name.format(stem=stem, ext=ext or output_extension(source, output), fps=format_fps(fps_out),
                                  factor=factor, engine=engine)

    name = named(source.stem)
    if limit is None or name_bytes(name) <= limit - NUMBER_ROOM:
        return name
    room = limit - NUMBER_ROOM
    if output.name.count("{stem}") == 1:
        shortened = named(fit_stem(source.stem, room - name_bytes(named(""))))
        if name_bytes(shortened) <= room:
            return shortened
    # A pattern that repeats {stem}, or one with a long text of its own: shorten the whole name.
    return fit_name(name, room)


# Settings that change how fast an output is made, not what it holds (or only its name).
NOT_IN_SETTINGS_KEY = {"engine": {"batch_size", "backend", "max_frame_pixels"}, "output": {"name"}}


def settings_key(engine: EngineConfig, output: OutputConfig) -> str:
    """A short hash of the engine and output settings that shape an output: two jobs of the same
    content are duplicates only when their keys match."""
    data = {
        "engine": engine.model_dump(mode="json", exclude=NOT_IN_SETTINGS_KEY["engine"]),
        "output": output.model_dump(mode="json", exclude=NOT_IN_SETTINGS_KEY["output"]),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def settings_json(engine: EngineConfig, output: OutputConfig) -> str:
    """The engine and output settings a job runs with, as the job store records them."""
    return json.dumps({"engine": engine.model_dump(mode="json"), "output": output.model_dump(mode="json")})


def estimate_output_bytes(source_size: int, engine: EngineConfig, output: OutputConfig, *,
                          done_fraction: float = 0.0) -> int:
    """A generous guess of the room a conversion still needs: the frames multiply, a lossless codec is
    far larger than the source, and while the segments are joined they and the joined file exist at
    once. The segments of a job resumed at ``done_fraction`` are on the disk already."""
    frames_ratio = float(engine.factor) if engine.target_fps is None else 2.5
    codec_ratio = 25.0 if output.codec in LOSSLESS_CODECS or output.crf == 0 else 1.0
    output_bytes = source_size * frames_ratio * codec_ratio
    return int(output_bytes * (1.0 - min(max(done_fraction, 0.0), 1.0)) + output_bytes)


def error_text(*, original: str, problem: str, advice: str, job_id: int, attempts: int,
               max_attempts: int, now: float | None = None) -> str:
    """The ``.error.txt`` beside a failed input: for the person who finds it there. ``problem`` names
    the file, so the first line does not."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if now is None else now))
    return (
        "midframe could not convert this file.\n\n"
        f"What went wrong: {problem}\n"
        f"What to do:      {advice}\n"
        f"                 then `midframe retry {job_id}` tries again (or drop the file in the inbox again).\n\n"
        f"From:     {original}\n"
        f"Job:      {job_id} (attempt {attempts} of {max_attempts})\n"
        f"Time:     {stamp}\n"
    )
