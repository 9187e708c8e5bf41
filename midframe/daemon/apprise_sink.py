"""News to ``notifications.urls``: done, failed, paused and stalled events sent with Apprise (ntfy,
Telegram, Discord, e-mail, a JSON webhook...), the same title and text as the desktop's bubble.

A URL carries its service's secret (a bot token, a webhook key, a password), so it is never written
out whole: log lines name it by its scheme only (``tgram://…``, :func:`redact`), and Apprise's own
messages come back through a callback and are logged with every configured URL redacted. Apprise is
imported at the first message, so a daemon without URLs never loads it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

from midframe.config import NotificationsConfig
from midframe.daemon.jobs.events import Event
from midframe.daemon.sinks import QueuedSink

# "stalled": the housekeeping loop emits it once per stall of the current job's ffmpeg child.
NEWS_KINDS = frozenset({"done", "failed", "paused", "stalled"})
_TYPES = {"done": "success", "failed": "failure", "paused": "warning", "stalled": "warning"}


def redact(url: str) -> str:
    """``tgram://…``: the scheme alone, which says which service without saying how to reach it."""
    found = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return f"{found.group(1).lower()}://…" if found else "(not a URL)"


def scrub(text: str, urls: Iterable[str]) -> str:
    """``text`` with each of ``urls`` (and the part after its scheme) replaced by its redacted form."""
    for url in sorted(urls, key=len, reverse=True):
        rest = url.split("://", 1)[-1]
        text = text.replace(url, redact(url))
        if len(rest) >= 4:
            text = text.replace(rest, "…")
    return text


def _apprise() -> Any:
    import apprise

    return apprise


class AppriseSender:
    """Sends one event to every URL of the current settings, each on its own so that a failure names
    the service it was; at most ``send_timeout_s`` per URL."""

    def __init__(self, settings: Callable[[], NotificationsConfig], *,
                 load: Callable[[], Any] = _apprise) -> None:
        self._settings = settings
        self._load = load
        self._refused: set[str] = set()  # URLs Apprise did not take, said once each

    def wanted(self, event: Event) -> bool:
        settings = self._settings()
        return event.kind in NEWS_KINDS and settings.enabled and bool(settings.urls)

    def deliver(self, event: Event) -> None:
        settings = self._settings()
        apprise = self._load()
        for url in settings.urls:
            sender = apprise.Apprise()
            if not sender.add(url):
                if url not in self._refused:
                    self._refused.add(url)
                    logger.warning("notifications.urls: {} is not a URL Apprise can send to; check its scheme "
                                   "and parts", redact(url))
                continue
            said: list[str] = []
            # The callback runs inside notify(), in this iteration, so binding the loop's `said` late is safe.
            result = sender.notify(body=event.body or event.title, title=event.title,
                                   notify_type=_TYPES.get(event.kind, "info"), timeout=settings.send_timeout_s,
                                   log_callback=lambda entry, _service: said.append(str(entry.message)))  # noqa: B023
            if result:
                logger.debug("sent {!r} to {}", event.title, redact(url))
            else:
                detail = scrub("; ".join(said), settings.urls) or "no answer"
                logger.warning("could not send {!r} to {}: {}", event.title, redact(url), detail)


def apprise_sink(settings: Callable[[], NotificationsConfig]) -> QueuedSink:
    """The Notifier's subscriber that sends news to ``notifications.urls`` from a thread of its own."""
    sender = AppriseSender(settings)
    return QueuedSink("midframe-apprise", sender.deliver, wanted=sender.wanted)
