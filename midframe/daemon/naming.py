"""Small pure helpers of the worker: output names, the settings key, the output size estimate, the
error file's text."""

from __future__ import annotations

import hashlib
import json
import time
from fractions import Fraction
from pathlib import Path

from midframe.config import EngineConfig, OutputConfig

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
                engine: str) -> str:
    """The file name ``output.name`` gives ``source`` (``{stem}.{fps}fps{ext}``)."""
    return output.name.format(
        stem=source.stem,
        ext=output_extension(source, output),
        fps=format_fps(fps_out),
        factor=factor,
        engine=engine,
    )


# Settings that change how fast an output is made, not what it holds (or only its name).
NOT_IN_SETTINGS_KEY = {"engine": {"batch_size", "backend"}, "output": {"name"}}


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


def estimate_output_bytes(source_size: int, engine: EngineConfig, output: OutputConfig) -> int:
    """A generous guess of the room a conversion needs: the frames multiply, a lossless codec is far
    larger than the source, and while the segments are joined they and the joined file exist at once."""
    frames_ratio = float(engine.factor) if engine.target_fps is None else 2.5
    codec_ratio = 25.0 if output.codec in LOSSLESS_CODECS or output.crf == 0 else 1.0
    return int(source_size * frames_ratio * codec_ratio * 2)


def error_text(*, name: str, original: str, problem: str, advice: str, job_id: int, attempts: int,
               max_attempts: int, now: float | None = None) -> str:
    """The ``.error.txt`` beside a failed input: for the person who finds it there."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if now is None else now))
    return (
        f"midframe could not convert {name}.\n\n"
        f"What went wrong: {problem}\n"
        f"What to do:      {advice}\n"
        f"                 then `midframe retry {job_id}` tries again (or drop the file in the inbox again).\n\n"
        f"From:     {original}\n"
        f"Job:      {job_id} (attempt {attempts} of {max_attempts})\n"
        f"Time:     {stamp}\n"
    )
