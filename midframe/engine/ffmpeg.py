"""Finding the ffmpeg binaries and running them with stderr always drained, and never for ever.

An ffmpeg child whose stderr is a pipe nobody reads blocks once the pipe's buffer fills (about
64 KiB of log lines), and with it every pipe to and from it. ``FFmpegProcess`` drains stderr on a
thread into a short ring buffer of lines, so errors can be reported and nothing ever hangs.

Every child has a progress deadline (``midframe.engine.children``): while midframe waits on it (a
read from the decoder, a write to the encoder, a one-shot command's end) and it makes no progress
for ``stall_s`` (``daemon.child_stall_seconds``), its process group is killed and the wait ends in
``ChildFailed(stalled=True)``; a child that dies by a signal (the OOM killer, a ``kill -9``) is a
``ChildFailed`` with ``signal`` too. Neither is a verdict on the input: the job is tried again. A
one-shot command (``run``: a probe, a packet scan, a trial encode, the final join) also has a time
limit in all: a fixed one for small work, or one that grows with the bytes it must read
(:func:`timeout_for_bytes`), never above :data:`MAX_TIMEOUT_S`.

Every child gets its own process group (a new session on POSIX, ``CREATE_NEW_PROCESS_GROUP`` on
Windows), so a Ctrl-C on the terminal reaches midframe, which then stops its children itself.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, cast

from midframe.engine.children import Child, Children, child_failure
from midframe.errors import ChildFailed, ConfigError, TransientError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

ENV_FFMPEG = "MIDFRAME_FFMPEG"
ENV_FFPROBE = "MIDFRAME_FFPROBE"
# ffmpeg's own log level for every command; -nostats keeps the progress line away.
QUIET = ("-hide_banner", "-nostdin", "-nostats")

# Time limits of one-shot commands. The slowest source we wait for reads at READ_BYTES_PER_S (a busy
# network share); a local disk is 10-50x faster, so a healthy command ends far inside its limit.
DEFAULT_TIMEOUT_S = 120.0
READ_BYTES_PER_S = 20e6
MAX_TIMEOUT_S = 25 * 60.0  # below the watchdog's stuck bound (liveness.STUCK_AFTER_S, 30 min)


def timeout_for_bytes(nbytes: int, *, base_s: float = 60.0) -> float:
    """The limit of a command that reads ``nbytes`` once (a packet scan, a join): ``base_s`` plus the
    bytes at the slowest rate we wait for, at most :data:`MAX_TIMEOUT_S`."""
    return min(base_s + max(nbytes, 0) / READ_BYTES_PER_S, MAX_TIMEOUT_S)


def process_group_options(platform: str = sys.platform) -> dict[str, Any]:
    """Popen options that put a child in a process group of its own, away from the console's Ctrl-C."""
    if platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


@dataclass(frozen=True)
class FFmpeg:
    """The binaries midframe runs: ``ffprobe`` is None where only ffmpeg exists (imageio-ffmpeg)."""

    ffmpeg: str
    ffprobe: str | None
    # The job's children (their progress deadline, and a stop that ends them); None: each child
    # has a deadline of its own at the default bound.
    children: Children | None = field(default=None, compare=False, repr=False)

    def watched_by(self, children: Children) -> FFmpeg:
        """The same binaries, with every child started through them tracked by ``children``."""
        return replace(self, children=children)

    def run(self, cmd: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, name: str | None = None) -> Completed:
        """:func:`run` with this job's children."""
        return run(cmd, timeout=timeout, children=self.children, name=name)

    @property
    def version(self) -> tuple[int, int]:
        return ffmpeg_version(self.ffmpeg)

    def fps_mode(self, mode: str = "passthrough") -> list[str]:
        """``-fps_mode`` (ffmpeg >= 5.1) or the older ``-vsync`` it replaced."""
        return ["-fps_mode", mode] if self.version >= (5, 1) else ["-vsync", mode]


def _executable(candidate: str | os.PathLike[str]) -> str | None:
    path = Path(candidate).expanduser()
    if path.is_dir():
        path = path / ("ffmpeg.exe" if os.name == "nt" else "ffmpeg")
    if path.is_file() and os.access(path, os.X_OK):
        return str(path.absolute())
    return shutil.which(str(candidate))


def _sibling_ffprobe(ffmpeg: str) -> str | None:
    folder = Path(ffmpeg).parent
    for name in ("ffprobe.exe", "ffprobe") if os.name == "nt" else ("ffprobe",):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_ffmpeg(configured: str | None = None, *, environ: dict[str, str] | None = None) -> FFmpeg:
    """The ffmpeg to use: ``configured``, then ``$MIDFRAME_FFMPEG``, then PATH, then imageio-ffmpeg's.

    ffprobe is looked for beside the chosen ffmpeg, then in ``$MIDFRAME_FFPROBE``, then on PATH when
    ffmpeg itself came from PATH (a bundled ffmpeg has no ffprobe; probe falls back to ffmpeg alone).
    """
    env = os.environ if environ is None else environ
    for origin, candidate in (("configured", configured), (ENV_FFMPEG, env.get(ENV_FFMPEG))):
        if candidate:
            found = _executable(candidate)
            if found is None:
                raise ConfigError(f"ffmpeg ({origin}) = {candidate!r}: no such executable", key="ffmpeg")
            return FFmpeg(found, _sibling_ffprobe(found) or _probe_from_env(env))
    on_path = shutil.which("ffmpeg")
    if on_path:
        return FFmpeg(on_path, _sibling_ffprobe(on_path) or _probe_from_env(env) or shutil.which("ffprobe"))
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        bundled = None
    if bundled and _executable(bundled):  # $IMAGEIO_FFMPEG_EXE is handed back unchecked
        return FFmpeg(bundled, _probe_from_env(env))
    raise ConfigError(
        "ffmpeg not found: install it (apt install ffmpeg), put it on PATH, set MIDFRAME_FFMPEG, "
        "or pip install imageio-ffmpeg", key="ffmpeg"
    )


def _probe_from_env(env: dict[str, str] | os._Environ[str]) -> str | None:
    value = env.get(ENV_FFPROBE)
    return _executable(value) if value else None


@functools.lru_cache(maxsize=8)
def ffmpeg_version(executable: str) -> tuple[int, int]:
    """(major, minor) of an ffmpeg binary; a git build without a release number counts as new."""
    try:
        first = subprocess.run(
            [executable, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return (99, 0)
    match = re.search(r"version\s+n?(\d+)\.(\d+)", first)
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


_PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer (default 64 KiB): fewer context switches per frame."""
    if fcntl is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError:
        pass


def _lower_priority(pid: int, increment: int) -> None:
    """Run child ``pid`` ``increment`` nice levels below this process. Set on its main thread right
    after it starts, before it has read any input: the threads it starts later (an encoder's) inherit it."""
    if not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + increment))
    except OSError:  # gone already, or not allowed: it runs at our priority
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's whole process group (it leads one: see process_group_options); a stopped
    child dies of it too."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        pass


class FFmpegProcess:
    """One ffmpeg child: stdin/stdout as asked, stderr drained on a thread into the last lines.

    The child runs in its own process group, so a Ctrl-C on the terminal reaches midframe (which
    then stops cleanly) and not ffmpeg directly. Reads and writes through ``read_into`` and
    ``write`` are waits that the child's progress deadline judges (``children``); ``failure()`` says
    afterwards whether it died by a signal or was killed for making no progress.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        stdin: bool = False,
        stdout: bool = False,
        keep_lines: int = 40,
        on_line: Callable[[str], None] | None = None,
        name: str = "ffmpeg",
        children: Children | None = None,
        title: str | None = None,
        nice: int = 0,
    ) -> None:
        self.cmd = list(cmd)
        self.title = title or Path(self.cmd[0]).name
        self._tail: deque[str] = deque(maxlen=keep_lines)
        self._on_line = on_line
        self._proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            bufsize=0,
            **process_group_options(),
        )
        if nice:
            _lower_priority(self._proc.pid, nice)
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                _widen_pipe(pipe.fileno())
        self.children = children or Children()
        self.child: Child = self.children.track(name=self.title, pid=self._proc.pid,
                                                kill=lambda: _kill_group(self._proc))
        self._drain = threading.Thread(target=self._read_stderr, name=f"{name}-stderr", daemon=True)
        self._drain.start()

    @property
    def stdin(self) -> IO[bytes]:
        assert self._proc.stdin is not None
        return self._proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self._proc.stdout is not None
        return self._proc.stdout

    @property
    def pid(self) -> int:
        return self._proc.pid

    def read_into(self, view: memoryview) -> int:
        """One ``readinto`` from stdout, as a wait on the child; 0 at its end (or once it is killed)."""
        with self.child.waiting():
            try:
                n = cast(io.RawIOBase, self.stdout).readinto(view) or 0  # bufsize=0: a raw FileIO
            except (OSError, ValueError):
                n = 0
        self.child.moved(n)
        return n

    def write(self, data: memoryview) -> None:
        """Write all of ``data`` to stdin, as a wait on the child; raises OSError once it is gone."""
        with self.child.waiting():
            self.stdin.write(data)
        self.child.moved(len(data))

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        for raw in iter(stream.readline, b""):
            self.child.moved()
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            self._tail.append(line)
            if self._on_line is not None:
                self._on_line(line)
        stream.close()

    def stderr_tail(self, lines: int = 6) -> str:
        return "\n".join(list(self._tail)[-lines:])

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit (a wait the progress deadline judges) and for the stderr thread to have read
        everything; returns the exit code."""
        with self.child.waiting():
            code = self._proc.wait(timeout)
        self._drain.join(timeout=10)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:
                    pass
        self.children.untrack(self.child)
        return code

    def failure(self) -> Exception | None:
        """Once it ended: ``Aborted`` when its job's stop ended it, ``ChildFailed`` when it was killed
        for making no progress or died by a signal (or crashed, on Windows), else None (its exit code
        and stderr say the rest)."""
        return child_failure(self.child, self._proc.returncode, children=self.children, title=self.title)

    def kill(self) -> None:
        """End the child now (idempotent) and reap it."""
        _kill_group(self._proc)
        try:
            self.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str

    def tail(self, lines: int = 6) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-lines:])


def run(cmd: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT_S, children: Children | None = None,
        name: str | None = None) -> Completed:
    """Run a command to completion, both outputs captured (communicate drains them: no hang).

    Past ``timeout`` seconds the command is killed and :class:`TransientError` says which one hung;
    killed for making no progress, or dead by a signal, it is a :class:`ChildFailed`; ended by its
    job's stop, ``Aborted``.
    """
    title = name or Path(cmd[0]).name
    children = children or Children()
    proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **process_group_options())
    child = children.track(name=title, pid=proc.pid, kill=lambda: _kill_group(proc))
    try:
        with child.waiting():
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                try:
                    proc.communicate(timeout=30)
                except subprocess.TimeoutExpired:  # unkillable for now (stuck in the kernel): do not wait on
                    pass
                if child.killed is None:
                    raise TransientError(f"{title} did not finish within {timeout:.0f} s and was stopped: "
                                         f"{describe_command(cmd)}") from None
                stdout, stderr = b"", b""
    except BaseException:  # a second Ctrl-C: the child is in a session of its own, nobody else ends it
        _kill_group(proc)
        raise
    finally:
        children.untrack(child)
    failed = child_failure(child, proc.returncode, children=children, title=title)
    if failed is not None:
        if isinstance(failed, ChildFailed):
            failed.args = (f"{failed}: {describe_command(cmd)}",)
        raise failed
    return Completed(proc.returncode, stdout, stderr.decode("utf-8", "replace"))


def describe_command(cmd: Sequence[str], *, limit: int = 300) -> str:
    """The command as a shell line, the program by its name only, cut to ``limit`` characters."""
    text = shlex.join([Path(cmd[0]).name, *map(str, cmd[1:])])
    return text if len(text) <= limit else text[: limit - 1] + "…"


DISK_FULL_MARKERS = ("No space left on device", "Disk quota exceeded")


def looks_like_disk_full(text: str) -> bool:
    return any(marker in text for marker in DISK_FULL_MARKERS)
