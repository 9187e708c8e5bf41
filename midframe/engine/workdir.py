"""The work folder of one conversion: starting it afresh, or finding the work a resumed job can keep.

``prepare`` returns the job's manifest, plan, engine settings and timeline: the recorded ones when
the folder holds matching work (same source: its fingerprint and mtime; same requested container,
same timeline), with its verified segments; else a new plan in an emptied folder.
``move_into_place`` publishes the result without ever overwriting.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from midframe.engine.conversion import JobControl, ProgressCallback
from midframe.engine.ffmpeg import FFmpeg
from midframe.engine.manifest import (
    MANIFEST_NAME,
    Manifest,
    Segment,
    is_work_folder,
    load_manifest,
    verified_segments,
)
from midframe.engine.plan import OutputPlan, build_timeline, make_plan
from midframe.engine.settings import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine.timeline import Timeline
from midframe.engine.videoinfo import VideoInfo
from midframe.errors import OutputError
from midframe.fs.identity import Fingerprint
from midframe.fs.publish import copy_no_clobber, publish


class Renderer(Protocol):
    """Makes a job's missing segments elsewhere (the render farm) instead of in this process.

    ``kept_segments`` says, when a job resumes, which recorded segments stand (in any order, not
    only a run from frame 0); ``render`` makes the rest and records each in ``job.manifest``.
    """

    def kept_segments(self, manifest: Manifest, work_dir: Path, *, ffmpeg: FFmpeg) -> list[Segment]: ...
    def render(self, job: Any, info: VideoInfo, *, work_dir: Path, control: JobControl,
               on_progress: ProgressCallback | None) -> tuple[Any, dict[str, Any]]: ...


@dataclass
class Prepared:
    """A conversion ready to run in its work folder: the manifest, the output plan, the engine settings
    and the timeline (recorded ones on a resume, else new)."""

    manifest: Manifest
    plan: OutputPlan
    engine: EngineConfig
    timeline: Timeline


def _reset_work_dir(work_dir: Path) -> None:
    if work_dir.exists():
        if not work_dir.is_dir() or not is_work_folder(work_dir):
            raise OutputError(work_dir, "exists and is not a midframe work folder; not touching it")
        shutil.rmtree(work_dir)
    try:
        work_dir.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(work_dir.parent, f"cannot create the work folder: {exc.strerror or exc}",
                          errno=exc.errno) from None


def _mtime_ns(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _matching_manifest(work_dir: Path, fingerprint: Fingerprint, mtime_ns: int | None, destination: Path,
                       resume: ResumeConfig) -> Manifest | None:
    if not resume.enabled or not work_dir.is_dir():
        return None
    manifest = load_manifest(work_dir)
    if manifest is None:
        return None
    if manifest.fingerprint != fingerprint or mtime_ns is None or manifest.source_mtime_ns != mtime_ns:
        logger.info("{}: the source changed since this work was started; starting over", work_dir)
        return None
    if manifest.destination_suffix != destination.suffix.lower():
        logger.info("{}: the work was for a {} file; starting over", work_dir, manifest.destination_suffix)
        return None
    return manifest


def _remove_strays(work_dir: Path, keep: set[str]) -> None:
    """Delete segment files the manifest does not list (a partial one from a kill) and temporaries."""
    for entry in work_dir.iterdir():
        if entry.name != MANIFEST_NAME and entry.name not in keep:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def prepare(
    info: VideoInfo,
    *,
    fingerprint: Fingerprint,
    destination: Path,
    work_dir: Path,
    engine: EngineConfig,
    output: OutputConfig,
    resume: ResumeConfig,
    ffmpeg: FFmpeg,
    renderer: Renderer | None = None,
) -> Prepared:
    mtime_ns = _mtime_ns(info.path)
    manifest = _matching_manifest(work_dir, fingerprint, mtime_ns, destination, resume)
    if manifest is not None:
        engine = EngineConfig.model_validate(manifest.engine)
        plan = OutputPlan.from_json(manifest.plan)
        timeline = build_timeline(info, engine)
        if timeline.frames_out == manifest.frames_out:
            if renderer is not None:
                good = renderer.kept_segments(manifest, work_dir, ffmpeg=ffmpeg)
            else:
                good = verified_segments(manifest, work_dir, ffmpeg=ffmpeg)
            if good != manifest.segments:
                manifest.segments = good
                manifest.save(work_dir)
            _remove_strays(work_dir, {segment.file for segment in good})
            if good:
                logger.info("{}: resuming at output frame {} of {}", info.path.name, manifest.frames_done, timeline.frames_out)
            return Prepared(manifest, plan, engine, timeline)
        logger.warning("{}: the recorded work does not fit this source's timeline; starting over", work_dir)
    _reset_work_dir(work_dir)
    timeline = build_timeline(info, engine)
    plan = make_plan(info, engine=engine, output=output, resume=resume, destination=destination,
                     work_dir=work_dir, ffmpeg=ffmpeg, timeline=timeline)
    manifest = Manifest(
        source=str(info.path),
        fingerprint=fingerprint,
        destination_suffix=destination.suffix.lower(),
        engine=engine.model_dump(mode="json"),
        output=output.model_dump(mode="json"),
        resume=resume.model_dump(mode="json"),
        plan=plan.to_json(),
        frames_out=timeline.frames_out,
        source_mtime_ns=mtime_ns,
    )
    manifest.save(work_dir)
    return Prepared(manifest, plan, engine, timeline)



def move_into_place(joined: Path, destination: Path) -> None:
    """Give the joined result the name ``destination``, never over a file: neither one that was there
    nor one that another program creates meanwhile (``midframe.fs.publish``: a hard link, which fails
    when the name is taken). On another file system it is copied beside ``destination`` first."""
    try:
        publish(joined, destination)
        return
    except FileExistsError:
        raise OutputError(destination, "already exists; not overwriting it") from None
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise OutputError(destination, f"cannot write it: {exc.strerror or exc}", errno=exc.errno) from None
    try:
        copy_no_clobber(joined, destination)
    except FileExistsError:
        raise OutputError(destination, "already exists; not overwriting it") from None
    except OSError as exc:
        raise OutputError(destination, f"cannot write it: {exc.strerror or exc}", errno=exc.errno) from None
