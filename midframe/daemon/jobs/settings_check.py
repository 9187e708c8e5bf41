"""The settings the daemon would use, checked before any video is touched.

At start-up, on every config reload and while the daemon is paused for a setting, :class:`SettingsCheck`
asks: can the folders be written, is the engine that would run there (its weights, its device), and
can ffmpeg encode with the output settings (a two-frame trial encode into the configured container)?
Each problem comes back as a sentence that names the config key or folder (through the outcome
table, so a problem found here reads the same as one a job ran into).

``output.codec: auto`` follows each source, so it is checked per source when a job plans its output,
never here against a source we do not have.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from midframe.config import Config, EngineConfig, OutputConfig, Paths
from midframe.daemon.jobs.outcomes import setting_outcome
from midframe.errors import ConfigError, MidframeError, OutputError
from midframe.fs.names import WORK_DIR_NAME

AUTO = "auto"


def folders_of(paths: Paths) -> dict[str, Path]:
    """The folders midframe writes, by the config key that sets each."""
    return {"inbox": paths.inbox, "outbox": paths.outbox, "daemon.done_dir": paths.done_dir,
            "daemon.failed_dir": paths.failed_dir, "daemon.state_dir": paths.state_dir}


def write_problem(folder: Path) -> str | None:
    """Why a file cannot be created (and removed) in ``folder``, or in the parent it would be made in if it
    does not exist yet; None when it can."""
    probe = Path(folder)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        handle, name = tempfile.mkstemp(dir=probe, prefix=".midframe-write-test-")
        os.close(handle)
        os.unlink(name)
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def write_test(folder: Path) -> None:
    """``OutputError`` naming ``folder`` when :func:`write_problem` finds one."""
    problem = write_problem(folder)
    if problem is not None:
        raise OutputError(folder, f"cannot be written ({problem})")


def trial_encode(output: OutputConfig, *, ffmpeg: Any, folder: Path) -> None:
    """The codec/container tables first (``formats.settings_problem``), then the engine's own trial
    (``Preflight``: two grey frames encoded with ``output``'s codec, quality and pixel format on a neutral
    sample, put in its container when one is set; otherwise each source's own is checked when its job
    plans the output), its ffmpeg runs under the children's progress deadline; ``ConfigError`` naming
    the key when either refuses."""
    from midframe.engine import EncodeSpec, Preflight, settings_problem

    known = settings_problem(output.codec, output.container)
    if known:
        raise ConfigError(known, key="output.codec")
    spec = EncodeSpec(width=1, height=1, fps=Fraction(25), input_pix_fmt="rgb24", codec=output.codec,
                      crf=output.crf, preset=output.preset, pix_fmt=output.pix_fmt, muxer="matroska")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".check-") as tmp:
        trial = Preflight(Path(tmp), output.container or "mkv", ffmpeg)
        problem = trial.encode_neutral(spec, pix_fmt=output.pix_fmt)
        if problem is not None:
            raise ConfigError(f"output.codec = {output.codec!r}: ffmpeg cannot encode with it at pix_fmt "
                              f"{output.pix_fmt!r}, preset {output.preset!r} ({problem})", key="output.codec")
        if not output.container:
            return
        problem = trial.mux_video(0, None)
        if problem is not None:
            raise ConfigError(f"output.container = {output.container!r}: a .{output.container} file cannot hold "
                              f"{output.codec} video ({problem})", key="output.container")


@dataclass(frozen=True)
class Probes:
    """The I/O a check does, passed in so tests can swap it."""

    folder: Callable[[Path], None]                      # write_test
    engine: Callable[[EngineConfig, bool], object]      # (settings, fallback allowed) -> raises if it cannot run
    encoder: Callable[[OutputConfig], None]             # trial_encode


class SettingsCheck:
    """``check(config)`` -> the problems, as sentences naming the key or folder (empty: all good)."""

    def __init__(self, paths: Paths, *, probes: Probes) -> None:
        self.paths = paths
        self.folders: Mapping[str, Path] = folders_of(paths)
        self._probes = probes

    @classmethod
    def real(cls, paths: Paths, *, ffmpeg: Any) -> SettingsCheck:
        from midframe.engine import check_engine

        work = paths.outbox / WORK_DIR_NAME
        return cls(paths, probes=Probes(
            folder=write_test,
            engine=lambda settings, fallback: check_engine(settings, models_dir=paths.models_dir, fallback=fallback),
            encoder=lambda output: trial_encode(output, ffmpeg=ffmpeg, folder=work),
        ))

    def __call__(self, config: Config) -> list[str]:
        wanted = dict(self.folders)
        if config.daemon.on_success != "move":
            del wanted["daemon.done_dir"]
        attempts: list[Callable[[], object]] = [functools.partial(self._probes.folder, folder)
                                                for folder in dict.fromkeys(wanted.values())]
        problems = self._problems([*attempts, *self._settings_attempts(config)])
        for name in config.profiles:  # each profile's own engine and output, where they differ
            mine = config.effective(name)
            if (mine.engine, mine.output) != (config.engine, config.output):
                problems += self._problems(self._settings_attempts(mine), f"profile {name} (files in inbox/{name}): ")
        return problems

    def _problems(self, attempts: list[Callable[[], object]], prefix: str = "") -> list[str]:
        problems: list[str] = []
        for attempt in attempts:
            try:
                attempt()
            except MidframeError as exc:
                outcome = setting_outcome(exc, folders=self.folders, work_root=self.paths.outbox / WORK_DIR_NAME)
                problems.append(prefix + (outcome.text if outcome is not None else str(exc)))
        return problems

    def _settings_attempts(self, config: Config) -> list[Callable[[], object]]:
        """The engine and encoder checks of one set of settings (the top level's or a profile's)."""
        from midframe.engine import engine_chosen

        attempts: list[Callable[[], object]] = [lambda: self._probes.engine(config.engine, not engine_chosen(config.engine))]
        if config.output.codec != AUTO:
            attempts.append(lambda: self._probes.encoder(config.output))
        return attempts
