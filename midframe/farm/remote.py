"""Errors crossing from a farm worker to the coordinator.

midframe's exceptions carry objects (paths) and keyword arguments that do not survive pickling the
way Dask sends a task's error, and a worker may run another patch release. A worker therefore
raises ``FarmTaskError``, made of plain strings, and the coordinator turns it back into the
midframe error it stands for, so the job's outcome is decided by the one table
(``midframe.daemon.jobs.outcomes``) as for any local error.
"""

from __future__ import annotations

from typing import Any

from midframe import errors

# The kind of a worker's refusal to make a segment from a file that is not the coordinator's source
# (``farm.path_map`` pointing at another copy): the coordinator gives the segment to another worker.
MISMATCH = "SourceMismatch"
# What the outcome table reads of an error (see midframe.errors): carried across as plain values.
ATTRIBUTES = ("incomplete", "key", "errno", "command", "signal", "stalled", "stalled_s")


class FarmTaskError(Exception):
    """A segment task failed on ``worker``; ``unfit``: that worker takes no more tasks."""

    def __init__(self, kind: str, message: str, *, worker: str, path: str | None = None,
                 reason: str | None = None, unfit: bool = False, attributes: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.attributes = dict(attributes or {})
        self.kind = kind
        self.message = message
        self.worker = worker
        self.path = path
        self.reason = reason
        self.unfit = unfit

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_task_error, (self.kind, self.message, self.worker, self.path, self.reason, self.unfit,
                                      self.attributes))

    def __str__(self) -> str:
        return f"on farm worker {self.worker}: {self.message}"


def _rebuild_task_error(kind: str, message: str, worker: str, path: str | None, reason: str | None,
                        unfit: bool, attributes: dict[str, Any] | None = None) -> FarmTaskError:
    return FarmTaskError(kind, message, worker=worker, path=path, reason=reason, unfit=unfit, attributes=attributes)


def to_remote(error: BaseException, *, worker: str, unfit: bool = False) -> FarmTaskError:
    """The plain form of ``error`` raised on ``worker``."""
    path = getattr(error, "path", None)
    reason = getattr(error, "reason", None)
    kind = type(error).__name__ if isinstance(error, errors.MidframeError) else "TransientError"
    message = str(error) if isinstance(error, errors.MidframeError) else f"{type(error).__name__}: {error}"
    attributes = {name: getattr(error, name) for name in ATTRIBUTES
                  if isinstance(getattr(error, name, None), (bool, int, float, str))}
    return FarmTaskError(kind, message, worker=worker, path=None if path is None else str(path),
                         reason=reason, unfit=unfit, attributes=attributes)


def from_remote(error: FarmTaskError) -> errors.MidframeError:
    """The midframe error that ``error`` stands for (a ``TransientError`` for any other kind)."""
    cls = getattr(errors, error.kind, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.MidframeError)):
        cls = errors.TransientError
    extra = error.attributes
    if error.path is not None and error.reason is not None and issubclass(cls, (errors.MediaError, errors.OutputError)):
        try:
            return cls(error.path, f"{error.reason} (on farm worker {error.worker})", **extra)
        except TypeError:  # attributes of another release
            return cls(error.path, f"{error.reason} (on farm worker {error.worker})")
    try:
        return cls(f"{error.message} (on farm worker {error.worker})", **extra)
    except TypeError:  # an error whose constructor wants more than a message
        return errors.TransientError(f"{error.message} (on farm worker {error.worker})")
