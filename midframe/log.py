"""loguru sinks: stderr for people, a rotating file in the log dir (owner-only) for later.

Every message goes through :func:`escape` (a loguru patcher), so a file name cannot forge log lines
(a newline in a name) or break a sink (bytes of a name that is not UTF-8, which Python hands over as
lone surrogates). Notification text uses the same function.

A traceback never shows the values of local variables (loguru's ``diagnose``): they hold file names,
the control API's token and the config, which have no place in a log a user may paste somewhere.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from loguru import logger

from midframe.errors import DaemonError

LOG_FILE_NAME = "midframe.log"

# Control characters (C0, DEL, C1), line and paragraph separators, bidirectional overrides (which can
# make a name read as something else), and surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` as one printable, encodable line: control characters, separators, bidi overrides and
    lone surrogates written as backslash escapes (a byte that is not UTF-8 as ``\\xNN``)."""
    return _UNSAFE.sub(_escaped, text)


def _escape_record(record: Any) -> None:
    record["message"] = escape(record["message"])


class SaidOnce:
    """A sink filter: a message bound with ``once=True`` (``logger.bind(once=True)``) passes the first
    time only, so a remark about this machine ("RIFE runs on the CPU") is not repeated for every job a
    daemon runs. One per sink: each sink keeps its own memory."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, record: Any) -> bool:
        if not record["extra"].get("once"):
            return True
        if record["message"] in self._seen:
            return False
        self._seen.add(record["message"])
        return True


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def configure_logging(*, level: str = "INFO", log_dir: Path | None = None, stderr: bool = True) -> None:
    """Replace loguru's sinks; DaemonError (one line) if the log dir cannot be written."""
    logger.remove()
    logger.configure(patcher=_escape_record)
    if stderr:
        # backtrace=False: a person gets Python's usual traceback, from where the error was caught.
        logger.add(sys.stderr, level=level, format="{time:HH:mm:ss} | {level: <7} | {message}",
                   backtrace=False, diagnose=False, filter=SaidOnce())
    if log_dir is not None:
        try:
            log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            for old in log_dir.glob(f"{Path(LOG_FILE_NAME).stem}*.log"):
                if os.name != "nt" and old.stat().st_mode & 0o077:
                    old.chmod(0o600)  # written by an older midframe with the umask's mode
            logger.add(
                log_dir / LOG_FILE_NAME,
                level=level,
                rotation="10 MB",
                retention=5,
                encoding="utf-8",
                errors="backslashreplace",  # a traceback quoting an undecodable name must not break the sink
                opener=_private_opener,
                filter=SaidOnce(),
                backtrace=True,  # the callers above the catching frame too: code lines only, no values
                diagnose=False,
                format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name}:{line} | {message}",
            )
        except OSError as exc:
            raise DaemonError(
                f"cannot write the log in {log_dir}: {exc.strerror or exc}; fix its permissions or set logging.dir"
            ) from None
