"""The engine: media in, frames, media out; it knows nothing of the daemon, the config file or the store.

This is its face for the rest of midframe: the names below are what other rooms use (``tests/test_layout``
holds every room but the farm, which renders the pipeline's segments, to them). Each is imported from its
module on first use, so that ``midframe.engine.settings`` (which the config reads) loads no numpy.

- settings: ``EngineConfig``, ``OutputConfig``, ``ResumeConfig`` (``Section`` their base), ``parse_fps``
- the engines: ``ENGINES`` (the registry), ``Interpolator``, ``create_interpolator``, ``check_engine``,
  ``engine_chosen``, ``weights_providers``
- one conversion: ``convert`` (probe, plan, frames, join, verify), ``JobControl`` (pause/abort flags),
  ``Progress``/``ProgressCallback``, ``PipelineReport``; ``MANIFEST_NAME``/``is_work_folder`` (a work folder)
- looking at a file: ``VideoInfo``, ``first_error_line``; the module ``midframe.engine.probe`` itself
  (``probe``, ``sniff``: the header only) is public too, since its functions share their modules' names
- ffmpeg: ``find_ffmpeg``/``FFmpeg``, ``run``, ``QUIET``, ``process_group_options``, ``Children`` (every
  child's progress deadline), ``EncodeSpec``, ``settings_problem``/``FALLBACK_CONTAINER`` (output settings),
  ``Preflight`` (trial encodes and muxes: the settings check's and a job's)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midframe.engine.children import Children
    from midframe.engine.conversion import JobControl, PipelineReport, Progress, ProgressCallback
    from midframe.engine.ffmpeg import QUIET, FFmpeg, find_ffmpeg, process_group_options, run
    from midframe.engine.formats import FALLBACK_CONTAINER, settings_problem
    from midframe.engine.interpolators import (
        ENGINES,
        Interpolator,
        check_engine,
        create_interpolator,
        engine_chosen,
        weights_providers,
    )
    from midframe.engine.manifest import MANIFEST_NAME, is_work_folder
    from midframe.engine.pipeline import convert
    from midframe.engine.preflight import Preflight
    from midframe.engine.probe import VideoInfo
    from midframe.engine.probe_tools import first_error_line
    from midframe.engine.settings import EngineConfig, OutputConfig, ResumeConfig, Section, parse_fps
    from midframe.engine.writer import EncodeSpec

_HOMES = {
    "children": ("Children",),
    "ffmpeg": ("FFmpeg", "QUIET", "find_ffmpeg", "process_group_options", "run"),
    "formats": ("FALLBACK_CONTAINER", "settings_problem"),
    "interpolators": ("ENGINES", "Interpolator", "check_engine", "create_interpolator", "engine_chosen",
                      "weights_providers"),
    "conversion": ("JobControl", "PipelineReport", "Progress", "ProgressCallback"),
    "manifest": ("MANIFEST_NAME", "is_work_folder"),
    "pipeline": ("convert",),
    "preflight": ("Preflight",),
    "probe": ("VideoInfo",),
    "probe_tools": ("first_error_line",),
    "settings": ("EngineConfig", "OutputConfig", "ResumeConfig", "Section", "parse_fps"),
    "writer": ("EncodeSpec",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [
    "Children",
    "ENGINES",
    "EncodeSpec",
    "EngineConfig",
    "FALLBACK_CONTAINER",
    "FFmpeg",
    "Interpolator",
    "JobControl",
    "MANIFEST_NAME",
    "OutputConfig",
    "PipelineReport",
    "Preflight",
    "Progress",
    "ProgressCallback",
    "QUIET",
    "ResumeConfig",
    "Section",
    "VideoInfo",
    "check_engine",
    "convert",
    "create_interpolator",
    "engine_chosen",
    "find_ffmpeg",
    "first_error_line",
    "is_work_folder",
    "parse_fps",
    "process_group_options",
    "run",
    "settings_problem",
    "weights_providers",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'midframe.engine' has no attribute {name!r}")
    value = getattr(import_module(f"midframe.engine.{module}"), name)
    globals()[name] = value
    return value
