"""Any Python ``str`` through SQLite, file names that are not valid UTF-8 included.

Python hands over such a name with each undecodable byte as a lone surrogate (``surrogateescape``),
which ``sqlite3`` refuses to encode. Here each surrogate is stored as U+FFFF (a noncharacter, reserved
for internal use) followed by a private-use character carrying its value, and U+FFFF itself is
doubled. Text with neither is stored as it is, so existing databases read the same.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from typing import Any

MARK = "\uffff"
_CARRIER = 0xE000  # U+E000..U+E7FF carry the surrogates U+D800..U+DFFF
_NEEDS_MARK = re.compile("[\ud800-\udfff\uffff]")
_MARKED = re.compile("\uffff([\uffff\ue000-\ue7ff])")


def _mark(match: re.Match[str]) -> str:
    char = match.group()
    return MARK + (MARK if char == MARK else chr(_CARRIER + ord(char) - 0xD800))


def _unmark(match: re.Match[str]) -> str:
    char = match.group(1)
    return MARK if char == MARK else chr(0xD800 + ord(char) - _CARRIER)


def to_db(text: str) -> str:
    return _NEEDS_MARK.sub(_mark, text) if _NEEDS_MARK.search(text) else text


def from_db(text: str) -> str:
    return _MARKED.sub(_unmark, text) if MARK in text else text


def _read_text(data: bytes) -> str:
    return from_db(data.decode("utf-8", "surrogateescape"))


def _parameters(parameters: Any) -> Any:
    if isinstance(parameters, Mapping):
        return {key: to_db(value) if isinstance(value, str) else value for key, value in parameters.items()}
    return tuple(to_db(value) if isinstance(value, str) else value for value in parameters)


class TextSafeConnection(sqlite3.Connection):
    """``sqlite3.connect(..., factory=TextSafeConnection)``: ``execute`` stores any str and reads it back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.text_factory = _read_text

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return super().execute(sql, _parameters(parameters))
