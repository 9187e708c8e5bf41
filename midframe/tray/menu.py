"""The tray menu as plain data (what to show for a view), and its translation into a pystray menu."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from midframe.tray.view import TrayView

Action = Literal[
    "pause", "resume", "open_inbox", "open_outbox", "open_log", "open_failed", "start_daemon", "stop_daemon",
    "quit",
]


@dataclass(frozen=True)
class Entry:
    text: str
    action: Action | None = None  # None: a disabled line of text
    default: bool = False  # what a left click on the icon does, where the backend has one

    @property
    def enabled(self) -> bool:
        return self.action is not None


SEPARATOR = None


def menu_entries(view: TrayView, *, quit_text: str = "Quit tray") -> list[Entry | None]:
    """The menu for ``view``, top to bottom; ``None`` is a separator."""
    entries: list[Entry | None] = [Entry(view.status_line), *([Entry(view.why_line)] if view.why_line else []),
                                   *([Entry(view.failed_line, "open_failed")] if view.failed_line else []),
                                   SEPARATOR]
    if view.state == "paused":
        entries.append(Entry("Resume", "resume"))
    elif view.online:
        entries.append(Entry("Pause", "pause"))
    entries += [
        Entry("Open inbox", "open_inbox"),
        Entry("Open outbox", "open_outbox", default=True),
        Entry("Open log", "open_log"),
        SEPARATOR,
        Entry("Stop daemon", "stop_daemon") if view.online else Entry("Start daemon", "start_daemon"),
        Entry(quit_text, "quit"),
    ]
    return entries


def build_menu(pystray: Any, entries: list[Entry | None], on_action: Callable[[Action], None]) -> Any:
    """A ``pystray.Menu`` for ``entries``; choosing an item calls ``on_action`` with its action."""

    def item(entry: Entry | None) -> Any:
        if entry is None:
            return pystray.Menu.SEPARATOR
        if entry.action is None:
            return pystray.MenuItem(entry.text, lambda _icon, _item: None, enabled=False)
        action = entry.action
        return pystray.MenuItem(entry.text, lambda _icon, _item: on_action(action), default=entry.default)

    return pystray.Menu(*(item(entry) for entry in entries))
