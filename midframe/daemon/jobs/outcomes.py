"""What a failed attempt at a job means, decided in one table (pure: no I/O, no clock).

The worker hands every error it catches to :func:`classify`, with what it saw of the source file
just afterwards, and does what the outcome says. Nothing else decides what an error means.

========================================================  ===============  ====================================
what happened                                             outcome          what the worker does
========================================================  ===============  ====================================
the source is gone                                        source_gone      the job ends as cancelled
SourceChanged: the identity check found the source        changed          the result is discarded, the job
replaced, grown or modified while it was converted                         ends as cancelled ("changed ..."),
                                                                           its current content is a new job
the source is not the file that settled (another file,    source_changed   back to settling: the watcher hands
another size or mtime), or it is open for writing, or it                   the file on again once it is quiet;
looks cut short (truncated, empty, no index yet) and                       no attempt used
changed less than ``stalled_copy_seconds`` ago
MediaError about the source: not a video, truncated once  input            failed_dir, with an error file
the file is quiet, no video stream, frames over the size
limit (``engine.max_frame_pixels``)
a folder the job writes (the outbox) fails a write test   setting          pause; the job stays queued and the
just afterwards, whatever the error was                                    source in the inbox, its finished
OutputError; OSError about a folder midframe writes to    setting          result or segments kept; status says
DeviceError                                               setting          why (``paused_reason``); it resumes
WeightsError                                              setting          by itself when the problem is gone
ConfigError (codec, container, engine)                    setting
FarmUnavailable (farm.scheduler does not answer)          setting          (resolved_by farm: when it is back)
ChildFailed: an ffmpeg child died by a signal (a kill -9,  transient        retried after a backoff
the OOM killer) or made no progress and was killed                         (``not_before``), resuming from its
                                                                           checkpoint; never the input's fault
TransientError, OutOfMemory, other EngineError,           transient        retried after a backoff
a timeout, a MediaError about our own output,                              (``not_before``), then failed
anything unexpected (``internal``)
========================================================  ===============  ====================================

A setting outcome says how to tell that its problem is gone (``resolved_by``): ``check`` when the
daemon's settings check (device, weights, encoder, folders) sees it, so it is re-checked periodically
and on every config change; ``write`` when a write test in its folder succeeds again and ``space``
when there is room on its disk again (both cheap, so looked at every few seconds); ``farm`` when the
render farm's scheduler answers again; ``config_change`` when only
another try can tell (a codec that one source's container cannot hold), so the job is tried again
once the config changed and passes the check.

The table reads only types and attributes (``MediaError.incomplete``, ``ConfigError.key``,
``OutputError.errno``, ``OSError.errno``, ``ChildFailed.signal`` and ``stalled``), never an error's text.
Texts are for a person: they name the file and the setting or folder, say what went wrong and what
to do, and never carry an exception class name or a path inside midframe's work folder.
"""

from __future__ import annotations

import errno
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from midframe.errors import (
    ChildFailed,
    ConfigError,
    DeviceError,
    EngineError,
    FarmUnavailable,
    MediaError,
    OutputError,
    SourceChanged,
    TransientError,
    Unencodable,
    VerificationError,
    WeightsError,
)

Kind = Literal["input", "setting", "changed", "source_changed", "source_gone", "transient"]
ResolvedBy = Literal["check", "config_change", "space", "write", "farm"]

BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 15 * 60.0
WORK_FILES = "midframe's work files"


@dataclass(frozen=True)
class SourceFacts:
    """What the worker saw of the source right after the error."""

    path: Path
    exists: bool = True
    changed: bool = False           # size or mtime differ from when it settled
    open_for_writing: bool = False  # another process holds it open to write (where the OS tells)
    changed_ago_s: float = float("inf")  # seconds since its last modification (mtime or ctime)


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    problem: str                 # what went wrong, one sentence naming the file or the setting
    advice: str = ""             # what to do about it
    key: str | None = None       # setting: the config key or folder it is about
    resolved_by: ResolvedBy = "check"
    internal: bool = False       # not an error midframe expects: log the traceback
    wait_s: float = 0.0          # source_changed: how long the file should stay quiet first
    last_advice: str = ""        # transient: what to do once the last attempt failed too (else a general word)

    @property
    def text(self) -> str:
        """The whole sentence: the problem, then what to do."""
        return f"{self.problem}; {self.advice}" if self.advice else self.problem


@dataclass(frozen=True)
class Context:
    """What :func:`classify` needs to know besides the error (all plain values)."""

    source: SourceFacts
    name: str                                    # the file's name as it arrived
    folders: Mapping[str, Path] = field(default_factory=dict)  # config key -> folder midframe writes
    work_root: Path | None = None                # midframe's hidden work folder in the outbox
    renames: Mapping[str, str] = field(default_factory=dict)   # internal path or name -> what to say
    stalled_copy_s: float = 60.0
    # Folders the job writes that failed a write test right after the error: config key -> why.
    unwritable: Mapping[str, str] = field(default_factory=dict)


def speakable(text: str, *, work_root: Path | None = None, renames: Mapping[str, str] = {}) -> str:  # noqa: B006
    """``text`` with midframe's internal file names replaced by words a person knows."""
    for internal in sorted(renames, key=len, reverse=True):
        text = text.replace(internal, renames[internal])
    if work_root is not None:
        text = re.sub(re.escape(str(work_root)) + r"[^\s:;,()'\"]*", WORK_FILES, text)
    return text


def folder_key(path: Path | str | None, folders: Mapping[str, Path]) -> str | None:
    """The config key of the innermost folder in ``folders`` that holds ``path``."""
    if path is None:
        return None
    path = Path(path)
    holding = [(len(folder.parts), key) for key, folder in folders.items() if path == folder or folder in path.parents]
    return max(holding)[1] if holding else None


def backoff_s(attempt: int, *, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_CAP_S) -> float:
    """Seconds to wait before try ``attempt + 1`` after ``attempt`` transient failures: 30 s, 60 s, 120 s..."""
    return min(cap_s, base_s * 2 ** max(0, attempt - 1))


def retry_or_fail(attempts: int, max_attempts: int) -> Literal["retry", "fail"]:
    return "retry" if attempts < max_attempts else "fail"


def source_outcome(ctx: Context) -> Outcome | None:
    """The table's first rows: the source is gone or not the file that settled (whatever the error)."""
    source = ctx.source
    if not source.exists:
        return Outcome("source_gone", f"{ctx.name} is no longer in the inbox", "nothing to do")
    if source.changed or source.open_for_writing:
        why = "is still being written" if source.open_for_writing else "changed after it was queued"
        return Outcome("source_changed", f"{ctx.name} {why}", "it is converted once it stays unchanged")
    return None


def _media(error: MediaError, ctx: Context, say: str) -> Outcome:
    if error.path != ctx.source.path:
        # Our own output or a work file did not read back: the encoder failed, not the input.
        return Outcome("transient", f"the converted video did not read back: {say}",
                       "this is usually a crash of ffmpeg; midframe tries again")
    problem = f"{ctx.name} {speakable(error.reason, work_root=ctx.work_root, renames=ctx.renames)}"
    if isinstance(error, Unencodable):
        return Outcome("input", problem, f"convert it with another {error.key}: a profile (a folder in the inbox "
                                         "with output settings of its own), or `midframe interpolate` with --codec")
    if error.incomplete and ctx.source.changed_ago_s < ctx.stalled_copy_s:
        return Outcome("source_changed", problem + " (it may still be arriving)",
                       f"it is looked at again once it has been quiet for {ctx.stalled_copy_s:.0f} s",
                       wait_s=ctx.stalled_copy_s - ctx.source.changed_ago_s)
    return Outcome("input", problem,
                   "check that it plays in a video player; if it was copied, copy it again")


def _os_error(error: OSError, *, folders: Mapping[str, Path], say: str) -> Outcome | None:
    key = folder_key(error.filename, folders)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        key = key or "outbox"
        return Outcome("setting", f"{key} ({folders.get(key, '')}): the disk is full",
                       "free some space there; midframe resumes by itself", key=key, resolved_by="space")
    if key is not None and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return unwritable_outcome(key, folders, error.strerror or say)
    return None


def unwritable_outcome(key: str, folders: Mapping[str, Path], why: str) -> Outcome:
    return Outcome("setting", f"{key} ({folders.get(key, '')}) cannot be written ({why})",
                   "make it writable for the user midframe runs as, or choose another folder; midframe "
                   "resumes by itself", key=key, resolved_by="write")


def setting_outcome(error: BaseException, *, folders: Mapping[str, Path], work_root: Path | None = None,
                    renames: Mapping[str, str] = {}) -> Outcome | None:  # noqa: B006
    """The table's setting rows: the outcome when ``error`` is about a setting or a folder, else None."""
    say = speakable(str(error), work_root=work_root, renames=renames)
    if isinstance(error, DeviceError):
        detail = say.removeprefix("device ")
        return Outcome("setting", f"engine.device: {detail}", "change engine.device in the config", key="engine.device")
    if isinstance(error, WeightsError):
        return Outcome("setting", f"engine.name: the engine needs its model weights ({say})",
                       "run `midframe models fetch`, or choose engine.name: dis", key="engine.name")
    if isinstance(error, ConfigError):
        key = error.key or "config"
        problem = say if say.startswith(key) else f"{key}: {say}"
        return Outcome("setting", problem, "change it in the config", key=key, resolved_by="config_change")
    if isinstance(error, OutputError):
        key = folder_key(error.path, folders) or "outbox"
        reason = speakable(error.reason, work_root=work_root, renames=renames)
        full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        advice = ("free some space there; midframe resumes by itself" if full
                  else "make it writable, or choose another folder; midframe resumes by itself")
        return Outcome("setting", f"{key} ({folders.get(key, error.path)}): {reason}", advice, key=key,
                       resolved_by="space" if full else "write")
    if isinstance(error, FarmUnavailable):
        return Outcome("setting", say, "start `midframe farm scheduler` there, or set farm.fallback_local: true "
                       "to convert here meanwhile", key="farm.scheduler", resolved_by="farm")
    if isinstance(error, OSError):
        return _os_error(error, folders=folders, say=say)
    return None


def _remux_advice(name: str) -> str:
    """What to do with a source whose output kept failing the check before publishing."""
    stem = Path(name).stem or "video"
    return (f"the source was kept unchanged; a remux often mends the timestamps that upset the check: "
            f"`ffmpeg -i \"{name}\" -map 0 -c copy \"{stem}.remux.mkv\"`, then drop {stem}.remux.mkv into the "
            f"inbox; if that fails too, please report it with the figures above")


def _child(error: ChildFailed, say: str) -> Outcome:
    """A child that died by a signal or stalled: what it says about the machine, never about the input."""
    if error.stalled:
        return Outcome("transient", say, "its process was ended; midframe tries again and goes on from its last "
                       "checkpoint (a source on a network share that stopped answering does this)")
    return Outcome("transient", say, "something outside midframe ended it (the system running out of memory "
                   "does this); midframe tries again and goes on from its last checkpoint")


def classify(error: BaseException, ctx: Context) -> Outcome:
    """The outcome of ``error`` for the job on ``ctx.source`` (see the module's table)."""
    if isinstance(error, SourceChanged) and ctx.source.exists:
        return Outcome("changed", f"{ctx.name} {error.reason} while it was converted",
                       "what was made from it is discarded and its current content converted as a new job")
    moved = source_outcome(ctx)
    if moved is not None:
        return moved
    say = speakable(str(error), work_root=ctx.work_root, renames=ctx.renames)
    if isinstance(error, MediaError):
        return _media(error, ctx, say)
    if isinstance(error, OSError) and error.filename is not None and Path(error.filename) == ctx.source.path:
        return Outcome("input", f"{ctx.name} cannot be read ({error.strerror or say})",
                       "make it readable for the user midframe runs as")
    for key, why in ctx.unwritable.items():
        # Whatever ffmpeg or the file system said, the folder is the problem: never the input's fault.
        return unwritable_outcome(key, ctx.folders, why)
    setting = setting_outcome(error, folders=ctx.folders, work_root=ctx.work_root, renames=ctx.renames)
    if setting is not None:
        return setting
    if isinstance(error, ChildFailed):
        return _child(error, f"converting {ctx.name}: {say}")
    if isinstance(error, subprocess.TimeoutExpired):
        return Outcome("transient", "ffmpeg stopped answering and was ended", "midframe tries again")
    if isinstance(error, VerificationError):
        return Outcome("transient", say, "midframe converts it again", last_advice=_remux_advice(ctx.name))
    if isinstance(error, (TransientError, EngineError)):
        return Outcome("transient", say, "this is usually temporary; midframe tries again")
    if isinstance(error, OSError):
        return Outcome("transient", f"a file operation failed: {say}", "midframe tries again")
    return Outcome("transient", f"an internal error in midframe: {say or 'no details'}",
                   "the log has the details; midframe tries again", internal=True)
