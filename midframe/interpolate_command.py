"""``midframe interpolate``: one file in the foreground, with a progress bar and Ctrl-C that stops cleanly.

Work happens in a hidden folder beside the output (``.<name>.midframe-work``); the output appears
under its final name only when it is complete. Ctrl-C stops after the current batch and keeps the
work folder: the same command with ``--resume`` continues from there, without it starts over.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.config import EngineConfig, OutputConfig, Paths, ResumeConfig
from midframe.engine import (
    MANIFEST_NAME,
    Interpolator,
    JobControl,
    PipelineReport,
    Progress,
    ProgressCallback,
    check_engine,
    convert,
    create_interpolator,
    find_ffmpeg,
    is_work_folder,
)
from midframe.errors import Aborted, ConfigError, MediaError, OutputError
from midframe.signals import SignalFlags

LOG_INTERVAL_S = 5.0


def work_dir_for(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}.midframe-work")


def _check_paths(source: Path, destination: Path) -> None:
    if destination.exists():
        if source.exists() and os.path.samefile(source, destination):
            raise OutputError(destination, "is the input file; choose another output name")
        raise OutputError(destination, "already exists; not overwriting it")
    if destination.resolve() == source.resolve():
        raise OutputError(destination, "is the input file; choose another output name")
    folder = destination.parent
    if not folder.is_dir():
        raise OutputError(folder, "the output folder does not exist")
    try:
        handle, probe_path = tempfile.mkstemp(dir=folder, prefix=".midframe-check-")
    except OSError as exc:
        raise OutputError(folder, f"the output folder is not writable ({exc.strerror or exc})") from None
    os.close(handle)
    os.unlink(probe_path)


def _discard(work_dir: Path) -> None:
    if work_dir.is_dir() and is_work_folder(work_dir):
        shutil.rmtree(work_dir, ignore_errors=True)


class _TerminalProgress:
    """A tqdm bar on a terminal; elsewhere a log line every few seconds."""

    def __init__(self, name: str, *, bar: bool) -> None:
        self.name = name
        self._bar: Any = None
        self._use_bar = bar
        self._last_log = 0.0

    def __call__(self, progress: Progress) -> None:
        if self._use_bar:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=progress.frames_total, initial=progress.frames_done, unit="frame",
                    desc=self.name, dynamic_ncols=True, smoothing=0.1,
                )
            self._bar.update(progress.frames_done - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_INTERVAL_S or progress.frames_done >= progress.frames_total:
            self._last_log = now
            eta = "?" if progress.eta_s is None else f"{progress.eta_s:.0f}s"
            logger.info(
                "{}: {}/{} frames ({:.0%}), {:.2f} fps, elapsed {:.0f}s, ETA {}",
                self.name, progress.frames_done, progress.frames_total, progress.fraction,
                progress.fps, progress.elapsed_s, eta,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextmanager
def _ctrl_c_stops(control: JobControl) -> Iterator[None]:
    """First Ctrl-C: stop after the current batch (keeping the work); a second one: at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    # The handler only sets a flag (printing or Event.set take locks the interrupted code may hold);
    # a small thread says it and asks the loop to stop.
    flags = SignalFlags()
    done = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if flags.stop:
            raise KeyboardInterrupt
        flags.stop = True

    def relay() -> None:
        while not done.wait(0.1):
            if flags.stop:
                print("\nmidframe: stopping after the current batch (Ctrl-C again to stop at once)", file=sys.stderr)
                control.abort("interrupted")
                return

    relayer = threading.Thread(target=relay, name="midframe-ctrl-c", daemon=True)
    relayer.start()
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        done.set()
        relayer.join()


def interpolate_file(
    source: Path,
    destination: Path,
    *,
    engine: EngineConfig,
    output: OutputConfig,
    resume: ResumeConfig,
    paths: Paths,
    resume_previous: bool = False,
    engine_chosen: bool = True,
    show_progress: bool = True,
    ffmpeg_path: str | None = None,
    control: JobControl | None = None,
    on_progress: ProgressCallback | None = None,
) -> PipelineReport:
    """Convert one file; the output container is the one its extension names.

    The engine in ``engine`` is what runs, or this raises before anything is written (``WeightsError``
    saying how to get the weights, ``DeviceError``); only when nobody chose it (``engine_chosen`` False:
    the default) may it fall back to the classical engine, with a warning.
    """
    source = Path(source).expanduser().absolute()
    destination = Path(destination).expanduser().absolute()
    # The user named the container with -o: the plan keeps to it (or refuses), never picks another.
    output = output.model_copy(update={"container": destination.suffix.lower().lstrip(".") or None})
    ffmpeg = find_ffmpeg(ffmpeg_path)
    _check_paths(source, destination)
    fallback = not engine_chosen
    check_engine(engine, models_dir=paths.models_dir, fallback=fallback)
    work_dir = work_dir_for(destination)
    if resume_previous:
        if not (work_dir / MANIFEST_NAME).is_file():
            logger.info("nothing to resume for {}; starting from the beginning", destination.name)
    else:
        _discard(work_dir)
    control = control or JobControl()
    display = _TerminalProgress(source.name, bar=sys.stderr.isatty()) if show_progress else None

    def progress(report: Progress) -> None:
        if display is not None:
            display(report)
        if on_progress is not None:
            on_progress(report)

    def make_interpolator(settings: EngineConfig) -> Interpolator:
        return create_interpolator(settings, models_dir=paths.models_dir, fallback=fallback)

    try:
        with _ctrl_c_stops(control):
            return convert(
                source, destination, work_dir=work_dir, engine=engine, output=output,
                resume=resume.model_copy(update={"enabled": True}) if resume_previous else resume,
                make_interpolator=make_interpolator, ffmpeg=ffmpeg, control=control, on_progress=progress,
            )
    except Aborted:
        raise Aborted(
            f"interrupted; nothing was written to {destination}. Run the same command with --resume to "
            "continue where it stopped"
        ) from None
    except (MediaError, ConfigError):
        _discard(work_dir)
        raise
    except OutputError as exc:
        _discard(work_dir)
        if work_dir in exc.path.parents or exc.path == work_dir:
            raise OutputError(destination, exc.reason) from None
        raise
    finally:
        if display is not None:
            display.close()

