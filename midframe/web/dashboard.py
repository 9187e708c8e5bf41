"""The dashboard's routes on the control API's port (see :class:`midframe.api.control.WebRoutes`).

    GET  /  /app.js  /app.css  /favicon.svg   the page (no login needed to load it; it holds nothing)
    GET  /login?code=CODE                     trade a one-time code for the session cookie
    POST /dashboard/login                     (token only) a new code: {"urls": [login links], "expires_s"}
    POST /dashboard/logout
    GET  /dashboard/state                     everything the page draws (midframe.web.view)
    GET  /dashboard/settings                  the effective settings of the inbox and of every profile
    POST /dashboard/upload?name=N&folder=F    the file's bytes as the body, up to daemon.upload_max_mb

Pause, resume, stop, cancel, retry and move-to-front are the control API's own routes, which the page
calls with its cookie. Whether a request may come in at all is decided by the control API's Gate
before any of this runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

import midframe.web.assets as pages
from midframe.api.server import BodyIncomplete, Head, Request, Response, Stream, error
from midframe.config import Config, EngineConfig
from midframe.fs import folders
from midframe.web.sessions import Sessions, clear_cookie, cookie_name, session_of, set_cookie
from midframe.web.upload import UploadRefused, receive, safe_name, upload_folder
from midframe.web.view import dashboard_state, unseen_view

UPLOAD = ("POST", "/dashboard/upload")


class DashboardTarget(Protocol):
    def status(self) -> dict[str, Any]: ...
    def jobs(self) -> list[dict[str, Any]]: ...


def rate_rule(engine: EngineConfig) -> tuple[str, list[str]]:
    """Which of factor and target_fps decides the output's frames, in words, and the key not used."""
    if engine.mode == "slowmo":
        return (f"slow motion: factor {engine.factor} makes it {engine.factor} times longer at the source's rate",
                ["engine.target_fps"])
    if engine.target_fps is not None:
        return (f"target_fps {engine.target_fps} applies: every output frame at its time on the source's "
                "timeline; factor is not used", ["engine.factor"])
    return (f"factor {engine.factor} applies: {engine.factor} times the source's frames over the same time "
            "(target_fps is null)", ["engine.target_fps"])


def effective_settings(config: Config, inbox: Path) -> list[dict[str, Any]]:
    """What a file dropped in each folder is converted with: the inbox's, then each profile's; with
    ``applies``, which of factor and target_fps decides its frame rate, and ``unused``, the other."""
    rows = []
    for name in (None, *config.profiles):
        mine = config.effective(name)
        applies, unused = rate_rule(mine.engine)
        rows.append({"profile": name, "folder": str(inbox / name if name else inbox),
                     "engine": mine.engine.model_dump(mode="json"), "output": mine.output.model_dump(mode="json"),
                     "applies": applies, "unused": unused})
    return rows


def profile_names(config: Config) -> list[str]:
    return list(config.profiles)


class Dashboard:
    open_routes = frozenset({*(("GET", path) for path in pages.FILES), ("GET", "/login")})
    token_routes = frozenset({("POST", "/dashboard/login")})

    def __init__(self, target: DashboardTarget, *, sessions: Sessions, config: Callable[[], Config], inbox: Path,
                 assets: dict[str, pages.Asset], free_bytes: Callable[[Path], int] = folders.free_bytes,
                 unseen: Callable[[], dict[str, Any]] = lambda: {"failed_unseen": 0, "failed_unseen_names": []},
                 ) -> None:
        self._target = target
        self._sessions = sessions
        self._config = config
        self._inbox = inbox
        self._assets = assets
        self._free_bytes = free_bytes
        self._unseen = unseen  # failures not yet seen (midframe.daemon.unseen)
        self._port = 0
        self._urls: tuple[str, ...] = ()

    def bind(self, *, port: int, urls: Sequence[str]) -> None:
        self._port = port
        self._urls = tuple(urls)

    @property
    def _cookie(self) -> str:
        return cookie_name(self._port)

    def has_session(self, head: Head) -> bool:
        return self._sessions.valid(session_of(head.headers, self._port))

    # --- ordinary requests ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        head = request.head
        route = (head.method, head.path)
        if head.method == "GET" and head.path in pages.FILES:
            return pages.serve(self._assets, head.path)
        if route == ("GET", "/login"):
            return self._login(head.query.get("code", [""])[0])
        if route == ("POST", "/dashboard/login"):
            code = self._sessions.new_code()
            return Response(HTTPStatus.OK, {"urls": [f"{url}/login?code={code}" for url in self._urls],
                                            "expires_s": int(self._sessions.code_ttl_s)})
        if route == ("POST", "/dashboard/logout"):
            self._sessions.end(session_of(head.headers, self._port))
            return Response(HTTPStatus.OK, {"logged_out": True}, (("Set-Cookie", clear_cookie(self._cookie)),))
        if route == ("GET", "/dashboard/state"):
            return Response(HTTPStatus.OK, self.state())
        if route == ("GET", "/dashboard/settings"):
            return Response(HTTPStatus.OK, effective_settings(self._config(), self._inbox))
        return None

    def state(self) -> dict[str, Any]:
        config = self._config()
        state = dashboard_state(self._target.status(), self._target.jobs(), folders=["", *profile_names(config)],
                                upload_max_bytes=config.daemon.upload_max_mb << 20)
        return {**state, "unseen": unseen_view(self._unseen())}

    def _login(self, code: str) -> Response:
        session = self._sessions.redeem(code) if code else None
        if session is None:
            return pages.html(HTTPStatus.FORBIDDEN, "This login link does not work",
                              "It has been used already, has expired, or belongs to an earlier start of the "
                              "daemon. Run <code>midframe dashboard</code> again for a new one.")
        logger.info("dashboard: a browser logged in")
        cookie = set_cookie(self._cookie, session, max_age_s=self._sessions.session_ttl_s)
        return pages.html(HTTPStatus.OK, "Logged in", 'Opening <a href="/">the dashboard</a>.',
                          ("Set-Cookie", cookie), refresh_to="/")

    # --- uploads ----------------------------------------------------------------------------------

    def stream(self, head: Head) -> Stream | Response | None:
        if (head.method, head.path) != UPLOAD:
            return None
        config = self._config()
        limit_mb = config.daemon.upload_max_mb
        if limit_mb == 0:
            return error(HTTPStatus.FORBIDDEN, "uploads are turned off here (daemon.upload_max_mb is 0)")
        try:
            name = safe_name(head.query.get("name", [""])[0], extensions=config.daemon.extensions)
            folder = upload_folder(self._inbox, head.query.get("folder", [""])[0], profiles=profile_names(config))
        except UploadRefused as exc:
            return error(exc.status, str(exc))
        return Stream(max_bytes=limit_mb << 20,
                      handle=lambda head, pieces: self._upload(head, pieces, folder=folder, name=name),
                      too_large=f"{name} is larger than the {limit_mb} MB uploads may have (daemon.upload_max_mb)")

    def _upload(self, head: Head, pieces: Iterator[bytes], *, folder: Path, name: str) -> Response:
        try:
            received = receive(pieces, folder=folder, name=name, length=head.content_length,
                               free_bytes=self._free_bytes)
        except UploadRefused as exc:
            return error(exc.status, str(exc))
        except BodyIncomplete:
            raise  # the client's doing, not the disk's: the server answers 400 "the body ended early"
        except OSError as exc:
            logger.warning("dashboard: could not save the upload {} in {}: {}", name, folder, exc.strerror or exc)
            return error(HTTPStatus.INSUFFICIENT_STORAGE, f"{name}: could not be saved: {exc.strerror or exc}")
        relative = received.path.relative_to(self._inbox).as_posix()
        logger.info("dashboard: received {} ({:.1f} MB)", relative, received.size / 1e6)
        return Response(HTTPStatus.OK, {"name": received.path.name, "folder": folder.relative_to(self._inbox).as_posix()
                                        if folder != self._inbox else "", "bytes": received.size})
