"""The dashboard's static files, shipped in the package (``midframe/web/static``): no build step, no CDN.

Only the names listed here are served, so no request path can reach any other file. Every page
answer carries headers that keep it from being framed by another site, sniffed as another type, or
from loading anything but its own scripts and styles.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from importlib import resources

from midframe.api.server import Response

FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}
PAGE_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Read once at start-up, so an upgrade of the package under a running daemon cannot mix versions."""
    folder = resources.files("midframe.web").joinpath("static")
    return {path: Asset(folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in FILES.items()}


def page(status: int, body: bytes, content_type: str, *headers: tuple[str, str]) -> Response:
    return Response(status, headers=(*PAGE_HEADERS, *headers), body=body, content_type=content_type)


def html(status: int, title: str, text: str, *headers: tuple[str, str], refresh_to: str | None = None) -> Response:
    """A small page of plain text (no user input is ever put into it)."""
    refresh = f'<meta http-equiv="refresh" content="0; url={refresh_to}">' if refresh_to else ""
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}<title>{title}</title>'
            f'<link rel="stylesheet" href="/app.css"></head><body class="notice"><main><h1>{title}</h1>'
            f'<p>{text}</p></main></body></html>')
    return page(status, body.encode(), "text/html; charset=utf-8", *headers)


def serve(assets: dict[str, Asset], path: str) -> Response:
    asset = assets.get(path)
    if asset is None:
        return html(HTTPStatus.NOT_FOUND, "Not found", "There is no such page.")
    return page(HTTPStatus.OK, asset.body, asset.content_type)
