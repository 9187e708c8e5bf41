"""The exception tree of midframe.

::

    MidframeError                 anything midframe raises on purpose; ``exit_code`` for the CLI
    ├── ConfigError               the YAML or a CLI option is invalid (names the key and value)
    ├── MediaError                an input file is not a usable video (names the file and reason)
    ├── OutputError               the output cannot be written: folder not writable, disk full
    ├── SourceChanged             the source is no longer the file a job started on (replaced, grown)
    ├── EngineError               the interpolator failed
    │   ├── WeightsError          model weights missing, corrupt, or of an unknown architecture
    │   ├── DeviceError           the requested device is absent or unusable
    │   └── OutOfMemory           the device ran out of memory even at batch size 1
    ├── TransientError            worth retrying: an ffmpeg crash, a lost pipe
    │   └── VerificationError     a finished output did not match its plan (frames, duration, streams, sync)
    ├── FarmUnavailable           farm.scheduler does not answer (jobs wait for it)
    ├── Aborted                   a job was stopped on request (stop, SIGTERM, Ctrl-C)
    ├── DaemonError
    │   ├── AlreadyRunning        another daemon holds the state dir
    │   └── StoreUnwritable       the job database cannot be written (also an OSError: ``errno``
    │                             ENOSPC for a full disk, ``filename`` the database)
    └── ControlError              the control API is unreachable or refused the request
        └── DaemonNotRunning      no daemon answers on the state dir's control.json

Bad input (``ConfigError``, ``MediaError``, ``OutputError``) exits with code 2.
"""

from __future__ import annotations

from pathlib import Path


class MidframeError(Exception):
    exit_code = 1


class ConfigError(MidframeError):
    exit_code = 2


class _PathError(MidframeError):
    """An error about one file: its message always starts with that file's path."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MediaError(_PathError):
    exit_code = 2


class OutputError(_PathError):
    exit_code = 2


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
