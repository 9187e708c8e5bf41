"""Browser logins: one-time codes (made for the holder of the token) traded for session cookies.

``midframe dashboard`` asks the daemon, with the token, for a code and opens
``http://HOST:PORT/login?code=CODE``; that page trades the code, once and within ``CODE_TTL_S``, for
a random session id in an HttpOnly, SameSite=Strict cookie. Both live only in the daemon's memory:
a restart (which also makes a new token) logs every browser out. Pure apart from the clock and the
random source, which are passed in.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

CODE_TTL_S = 600.0
SESSION_TTL_S = 7 * 24 * 3600.0
MAX_CODES = 16
MAX_SESSIONS = 64
COOKIE_PREFIX = "midframe_session_"


def cookie_name(port: int) -> str:
    """Cookies are shared by every port of a host: the port in the name keeps two daemons apart."""
    return f"{COOKIE_PREFIX}{port}"


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` request header."""
    for part in (header or "").split(";"):
        key, equals, value = part.strip().partition("=")
        if equals and key == name:
            return value
    return None


def set_cookie(name: str, value: str, *, max_age_s: float) -> str:
    return f"{name}={value}; Path=/; Max-Age={int(max_age_s)}; HttpOnly; SameSite=Strict"


def clear_cookie(name: str) -> str:
    return f"{name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"


class Sessions:
    """Thread-safe; the oldest code or session goes when there are too many."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 token: Callable[[int], str] = secrets.token_urlsafe,
                 code_ttl_s: float = CODE_TTL_S, session_ttl_s: float = SESSION_TTL_S) -> None:
        self._clock = clock
        self._token = token
        self.code_ttl_s = code_ttl_s
        self.session_ttl_s = session_ttl_s
        self._lock = threading.Lock()
        self._codes: OrderedDict[str, float] = OrderedDict()  # code -> expiry
        self._sessions: OrderedDict[str, float] = OrderedDict()  # session id -> expiry

    def new_code(self) -> str:
        code = self._token(32)
        with self._lock:
            self._forget_expired(self._codes)
            self._codes[code] = self._clock() + self.code_ttl_s
            while len(self._codes) > MAX_CODES:
                self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session id for a valid, unused code (which is used up by this); else None."""
        with self._lock:
            self._forget_expired(self._codes)
            found = next((known for known in self._codes if hmac.compare_digest(known, code)), None)
            if found is None:
                return None
            del self._codes[found]
            session = self._token(32)
            self._forget_expired(self._sessions)
            self._sessions[session] = self._clock() + self.session_ttl_s
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
            return session

    def valid(self, session: str | None) -> bool:
        if not session:
            return False
        with self._lock:
            self._forget_expired(self._sessions)
            return any(hmac.compare_digest(known, session) for known in self._sessions)

    def end(self, session: str | None) -> None:
        with self._lock:
            self._sessions.pop(session or "", None)

    def _forget_expired(self, table: OrderedDict[str, float]) -> None:
        now = self._clock()
        for key in [key for key, expiry in table.items() if expiry <= now]:
            del table[key]


def session_of(headers: Mapping[str, str], port: int) -> str | None:
    return cookie_value(headers.get("cookie"), cookie_name(port))
