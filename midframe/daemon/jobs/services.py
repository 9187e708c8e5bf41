"""What the worker, the job flow and the routes need from the rest of the daemon, in one bundle built by
the composition root (``midframe.daemon.root``). Tests build it with the defaults for what they do not
look at: no engine, no farm, one slot, no watcher, the real file system and clocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midframe.config import Config, EngineConfig, Paths
from midframe.daemon.jobs.events import JobEvents
from midframe.daemon.jobs.settings_check import write_problem
from midframe.daemon.store.records import JobStore
from midframe.engine import PipelineReport
from midframe.fs import folders, incoming

Convert = Callable[..., PipelineReport]
MakeInterpolator = Callable[[EngineConfig], Any]


def pipeline_convert(*args: Any, **kwargs: Any) -> PipelineReport:
    from midframe.engine import convert

    return convert(*args, **kwargs)


def _no_interpolator(settings: EngineConfig) -> Any:
    return None


def _no_problems(config: Config) -> list[str]:
    return []


def _no_farm_problem(config: Config) -> str | None:
    return None


def _one_slot(config: Config) -> int:
    return 1


def _no_watcher(path: Path, quiet_s: float) -> None:
    return None


@dataclass(frozen=True)
class JobServices:
    store: JobStore
    paths: Paths
    config: Callable[[], Config]          # the settings in force now (a reload swaps what it returns)
    events: JobEvents = field(default_factory=JobEvents)
    ffmpeg: Any = None                    # midframe.engine.ffmpeg.FFmpeg
    make_interpolator: MakeInterpolator = _no_interpolator
    convert: Convert = pipeline_convert   # the pipeline, or the render farm's
    prepare: Callable[[], None] | None = None              # fetches missing weights before the first job
    check_settings: Callable[[Config], list[str]] = _no_problems
    check_farm: Callable[[Config], str | None] = _no_farm_problem  # why the farm cannot take jobs now
    slots: Callable[[Config], int] = _one_slot               # jobs converted at once
    resettle: Callable[[Path, float], None] = _no_watcher   # the watcher settles a file again
    writing: Callable[[Path], bool] = incoming.open_for_writing
    free_bytes: Callable[[Path], int] = folders.free_bytes
    folder_test: Callable[[Path], str | None] = write_problem
    clock: Callable[[], float] = time.monotonic     # recheck periods, a job's elapsed time
    wall_clock: Callable[[], float] = time.time     # not_before, how long ago a file changed
