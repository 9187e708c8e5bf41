"""``midframe dashboard``: ask the running daemon for a one-time login link, then open or print it."""

from __future__ import annotations

import webbrowser
from collections.abc import Callable
from typing import Any


def open_dashboard(client: Any, *, print_only: bool, opener: Callable[[str], bool] = webbrowser.open,
                   out: Callable[[str], None] = print) -> int:
    """``client`` is a ControlClient (it holds the token). Returns the exit code."""
    answer = client.login_links()
    urls: list[str] = answer["urls"]
    if print_only:
        for url in urls:
            out(url)
        return 0
    minutes = max(1, int(answer.get("expires_s", 600)) // 60)
    opened = opener(urls[0])
    out(f"{'Opened' if opened else 'Open'} the dashboard: {urls[0]}")
    for url in urls[1:]:
        out(f"  or from another machine: {url}")
    out(f"The link logs one browser in; it works once, within {minutes} minutes.")
    if not opened:
        out("No browser could be started here: open the link in a browser on this machine.")
    return 0
