"""The exception tree of midframe.

::

    MidframeError                 anything midframe raises on purpose; ``exit_code`` for the CLI
    ├── ConfigError               the YAML or a CLI option is invalid; ``key``: the config key it is about
    ├── MediaError                an input file is not a usable video (names the file and reason);
    │                             ``incomplete``: it looks cut short (truncated, empty, no index yet)
    │   └── Unencodable           the encoder refuses this file's figures (size, rate) although the
    │                             output settings work for other videos; ``key``: the setting to change
    ├── OutputError               the output cannot be written: folder not writable, disk full (``errno``)
    ├── SourceChanged             the source is no longer the file a job started on (replaced, grown)
    ├── EngineError               the interpolator failed
    │   ├── WeightsError          model weights missing, corrupt, or of an unknown architecture
    │   ├── DeviceError           the requested device is absent or unusable
    │   └── OutOfMemory           the device ran out of memory even at batch size 1
    ├── TransientError            worth retrying: an ffmpeg crash, a lost pipe
    │   ├── ChildFailed           an ffmpeg child died by a signal (``signal``) or made no progress and was
    │   │                         killed (``stalled``); ``command`` names it. Never a verdict on the input
    │   └── VerificationError     a finished output did not match its plan (frames, duration, streams, sync)
    ├── FarmUnavailable           farm.scheduler does not answer (jobs wait for it)
    ├── Aborted                   a job was stopped on request (stop, SIGTERM, Ctrl-C)
    ├── DaemonError
    │   ├── AlreadyRunning        another daemon holds the state dir
    │   └── StoreUnwritable       the job database cannot be written (also an OSError: ``errno``
    │                             ENOSPC for a full disk, ``filename`` the database)
    └── ControlError              the control API is unreachable or refused the request
        └── DaemonNotRunning      no daemon answers on the state dir's control.json

    JobStateError (a ValueError)  a job cannot make the asked change now (``missing``: no such job)

Bad input (``ConfigError``, ``MediaError``, ``OutputError``) exits with code 2. Errors carry what the
outcome table (``midframe.daemon.jobs.outcomes``) needs as attributes; their messages are for people only.
"""

from __future__ import annotations

from pathlib import Path


class MidframeError(Exception):
    exit_code = 1


class JobStateError(ValueError):
    """The job is not in a state that allows the requested change (e.g. retry of a done job); ``missing``:
    there is no such job at all (the control API answers 404 rather than 409)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class ConfigError(MidframeError):
    """``key``: the config key (``output.codec``, ``engine.name``, ``ffmpeg``...), None for the file itself."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class _PathError(MidframeError):
    """An error about one file: its message always starts with that file's path."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MediaError(_PathError):
    """``incomplete``: what the file holds ends early (cut short, empty, no index yet), as a copy still
    under way also looks; the outcome table then looks at when the file last changed."""

    exit_code = 2

    def __init__(self, path: Path | str, reason: str, *, incomplete: bool = False) -> None:
        super().__init__(path, reason)
        self.incomplete = incomplete


class Unencodable(MediaError):
    """A property of this one file, never a pause: ``key`` names the setting another value of which may suit it."""

    def __init__(self, path: Path | str, reason: str, *, key: str) -> None:
        super().__init__(path, reason)
        self.key = key


class OutputError(_PathError):
    """``errno``: the OS's error number where one is known (``errno.ENOSPC``: the disk is full)."""

    exit_code = 2

    def __init__(self, path: Path | str, reason: str, *, errno: int | None = None) -> None:
        super().__init__(path, reason)
        self.errno = errno


class SourceChanged(_PathError):
    """Raised by the daemon's identity check, between batches, before the join and before publishing."""


class EngineError(MidframeError):
    pass


class WeightsError(EngineError):
    exit_code = 2


class DeviceError(EngineError):
    exit_code = 2


class OutOfMemory(EngineError):
    pass


class TransientError(MidframeError):
    pass


class ChildFailed(TransientError):
    """An ffmpeg child ended by something other than its input: killed by a signal (``signal``: its
    number on POSIX; on Windows None, ``crashed`` for an NTSTATUS exit code), or killed by midframe
    because it made no progress (``stalled``, after ``stalled_s`` seconds). ``command``: its name
    as a person knows it ("the decoder", "ffprobe")."""

    def __init__(self, message: str, *, command: str, signal: int | None = None, stalled: bool = False,
                 stalled_s: float | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.signal = signal
        self.stalled = stalled
        self.stalled_s = stalled_s


class VerificationError(TransientError):
    """The output was made but ffprobe finds it differs from its plan; it is never published.

    ``video_ok`` False: the video itself is wrong (frame count or duration), so its segments are
    not trusted again either.
    """

    def __init__(self, message: str, *, video_ok: bool) -> None:
        super().__init__(message)
        self.video_ok = video_ok


class FarmUnavailable(MidframeError):
    pass


class Aborted(MidframeError):
    exit_code = 130


class DaemonError(MidframeError):
    pass


class AlreadyRunning(DaemonError):
    pass


class StoreUnwritable(DaemonError, OSError):
    """Nothing can be recorded: the daemon pauses rather than decide anything it cannot write down."""

    def __init__(self, path: Path | str, errno: int, reason: str) -> None:
        OSError.__init__(self, errno, reason, str(path))
        self.path = Path(path)


class ControlError(MidframeError):
    pass


class DaemonNotRunning(ControlError):
    pass
