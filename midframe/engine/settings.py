"""The engine's settings: what ``engine:``, ``output:`` and ``resume:`` in the config hold, as frozen
pydantic sections the engine is handed (it never reads the config file), and the frame rates the config
and the CLI accept (``parse_fps``). Pure: no files, no platform folders. The config composes these with
the daemon's sections (``midframe.config``)."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from midframe.engine.interpolators import ENGINE_NAMES

if TYPE_CHECKING:
    EngineName = str
else:
    # engine.name takes exactly the registry's names; a Literal (not a validator) so that an error lists them.
    EngineName = Literal[ENGINE_NAMES]

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

def _snap_ntsc(value: Fraction) -> Fraction:
    """Read 23.976, 29.97 or 59.94 as the NTSC rates N*1000/1001 that people mean by them."""
    if value.denominator == 1:
        return value
    ntsc = Fraction(round(value * Fraction(1001, 1000)) * 1000, 1001)
    return ntsc if abs(ntsc - value) < Fraction(11, 10000) else value


def parse_fps(value: Any) -> Fraction:
    """Parse a frame rate given as a number or a string such as ``"60000/1001"`` or ``"29.97"``."""
    if isinstance(value, Fraction):
        result = value
    elif isinstance(value, bool):
        raise ValueError("a frame rate is a number, not a boolean")
    elif isinstance(value, int):
        result = Fraction(value)
    elif isinstance(value, float):
        result = _snap_ntsc(Fraction(value).limit_denominator(1001))
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = Fraction(text) if "/" in text else _snap_ntsc(Fraction(text).limit_denominator(1001))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{value!r} is not a frame rate; use a number or N/D such as 60000/1001") from None
    else:
        raise ValueError(f"{value!r} is not a frame rate")
    if not 1 <= result <= 1000:
        raise ValueError(f"{value!r} is outside 1..1000 fps")
    return result


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


class EngineConfig(Section):
    # auto: per scene, the engine that rebuilds the scene's own frames best (rife or dis); the default.
    # The names the engine registry holds (EngineName).
    name: EngineName = "auto"
    factor: int = Field(2, ge=2, le=16)
    target_fps: Fraction | None = None
    # smooth: more frames over the same time. slowmo: the source's frame rate, `factor` times longer.
    mode: Literal["smooth", "slowmo"] = "smooth"
    device: str = "auto"
    # How RIFE runs: auto (OpenVINO on the CPU when installed, else torch; torch on CUDA), torch, openvino.
    backend: Literal["auto", "torch", "openvino"] = "auto"
    # Frame pairs per model call; auto: one per OpenVINO stream, 1 with torch on the CPU, sized by
    # free memory on CUDA.
    batch_size: Literal["auto"] | int = "auto"
    fp16: Literal["auto"] | bool = "auto"
    model_scale: float = Field(1.0, ge=0.25, le=2.0)
    scene_detect: bool = True
    # high: RIFE's frames are the mean of several passes (test-time augmentation), ``tta`` of them: 4 (as
    # given, mirrored, time-reversed, both) or 2 (as given, mirrored); it costs that many times the model.
    quality: Literal["standard", "high"] = "standard"
    tta: Literal[2, 4] = 4
    # Mean absolute difference (0..1) of 64x36 grey thumbnails left after block motion compensation,
    # above which two frames are a cut (midframe.engine.scenes; measured on real footage).
    scene_threshold: float = Field(0.08, gt=0.0, le=1.0)
    # Largest difference (0..1) of any thumbnail pixel up to which two frames count as identical and
    # the model is skipped (duplicated frames differ by ~2/255 after encoding, slow motion by 4/255+).
    static_threshold: float = Field(0.01, ge=0.0, le=0.1)
    # The largest frame (width x height) taken: larger ones are refused before decoding, whatever the
    # file's size (a few bytes can declare 16000x16000). Default: 8K, 7680x4320.
    max_frame_pixels: int = Field(7680 * 4320, ge=64 * 64)
    # Animation drawn on twos or threes: auto treats a drawing held for a few frames as one drawing and
    # spaces the in-betweens evenly up to the next (midframe.engine.drawings); off keeps every frame.
    dedup: Literal["auto", "off"] = "auto"
    # The longest run of repeats (frames after a drawing that show it again) taken as one drawing;
    # a longer run is a pause and stays still.
    dedup_max_run: int = Field(3, ge=1, le=8)

    @field_validator("target_fps", mode="before")
    @classmethod
    def _fps(cls, value: Any) -> Fraction | None:
        return None if value is None else parse_fps(value)

    @field_validator("dedup", mode="before")
    @classmethod
    def _dedup(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted off/on/no/yes as a boolean: `dedup: off` means off.
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value

    @field_validator("batch_size")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if value != "auto" and not 1 <= value <= 256:
            raise ValueError("must be auto or a number of frame pairs from 1 to 256")
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str, info: ValidationInfo) -> str:
        if value == "slowmo" and info.data.get("target_fps") is not None:
            raise ValueError("slow motion keeps the source's frame rate and makes the video `factor` times "
                             "longer; set target_fps: null with it")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE_PATTERN.match(value):
            raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
        return value


class OutputConfig(Section):
    # auto: follow the source's codec (midframe.engine.formats); else any ffmpeg video encoder.
    codec: str = "auto"
    crf: int = Field(18, ge=0, le=63)
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    container: str | None = None
    name: str = "{stem}.{fps}fps{ext}"
    # In slow motion (engine.mode: slowmo): leave the audio out, or slow it down keeping its pitch.
    slowmo_audio: Literal["drop", "stretch"] = "drop"

    @field_validator("container")
    @classmethod
    def _container(cls, value: str | None) -> str | None:
        if value is None:
            return None
        cleaned = value.lstrip(".").lower()
        if not re.fullmatch(r"[a-z0-9]+", cleaned):
            raise ValueError("must be a file extension such as mkv or mp4")
        return cleaned

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        try:
            value.format(stem="x", fps="60", ext=".mp4", factor="2", engine="rife")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"bad template ({exc}); fields are {{stem}}, {{fps}}, {{ext}}, {{factor}}, {{engine}}"
            ) from None
        if "/" in value or "\\" in value:
            raise ValueError("must be a file name, not a path")
        return value


class ResumeConfig(Section):
    enabled: bool = True
    segment_seconds: float = Field(10.0, gt=0.0, le=3600.0)
    # When set, overrides segment_seconds with a fixed number of output frames per segment.
    segment_frames: int | None = Field(None, ge=1)
