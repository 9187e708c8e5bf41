"""Where the running daemon keeps its control files, whatever the config file holds now.

A daemon that starts records its state dir in a small pointer file in the platform's state dir
(``platformdirs.user_state_dir("midframe")/running.json``: ``{"state_dir", "pid", "config"}``),
written atomically, and removes it when it stops, if the file is still its own. Clients (the CLI's
control commands, the tray) then look in this order: the state dir of a readable config, else the one
the running daemon recorded, else the default; and say which one they used when it is not the
config's. So a syntax error in the config never locks the user out of ``midframe status`` or
``midframe stop`` of the daemon still running on the last good config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import platformdirs

from midframe.config import APP_NAME, Config, load_config, resolve_paths
from midframe.errors import ConfigError
from midframe.fs.safe_write import atomic_write

POINTER_FILE = "running.json"
Source = Literal["config", "recorded", "default"]


def pointer_path() -> Path:
    return Path(platformdirs.user_state_dir(APP_NAME)) / POINTER_FILE


@dataclass(frozen=True)
class Recorded:
    """What a running daemon wrote into the pointer file."""

    state_dir: Path
    pid: int | None
    config: Path | None


def record(pointer: Path, *, state_dir: Path, config_path: Path | None, pid: int | None = None) -> None:
    """Write the pointer atomically (a reader sees the old file or the new one, never half of one)."""
    data = {"state_dir": str(state_dir), "pid": os.getpid() if pid is None else pid,
            "config": str(config_path) if config_path is not None else None}
    pointer.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(pointer, json.dumps(data) + "\n")


def read_recorded(pointer: Path) -> Recorded | None:
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
        state_dir = Path(data["state_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    pid = data.get("pid")
    config = data.get("config")
    return Recorded(state_dir, pid if isinstance(pid, int) else None, Path(config) if config else None)


def forget(pointer: Path, *, state_dir: Path, pid: int | None = None) -> None:
    """Remove the pointer if it is still ours (another daemon may have started since)."""
    found = read_recorded(pointer)
    if found is not None and found.pid == (os.getpid() if pid is None else pid) and found.state_dir == state_dir:
        pointer.unlink(missing_ok=True)


@dataclass(frozen=True)
class Location:
    state_dir: Path
    source: Source
    note: str | None = None  # one line for stderr when the state dir is not the config's

    @property
    def recorded(self) -> bool:
        return self.source == "recorded"


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"


def locate_state_dir(
    config_path: Path | None, *, pointer: Path, load: Callable[[Path | None], Config] = load_config
) -> Location:
    """The state dir to talk to: a readable config's, else the running daemon's record, else the default."""
    try:
        return Location(resolve_paths(load(config_path)).state_dir, "config")
    except ConfigError as exc:
        problem = _first_line(str(exc))
    found = read_recorded(pointer)
    if found is not None:
        by = f" (pid {found.pid})" if found.pid else ""
        return Location(found.state_dir, "recorded",
                        f"midframe: {problem}; using the state dir {found.state_dir} recorded by the running daemon{by}")
    default = resolve_paths(Config()).state_dir
    return Location(default, "default", f"midframe: {problem}; no running daemon recorded its state dir, "
                                        f"so using the default {default}")


def hint_for_missing_daemon(location: Location, *, pointer: Path) -> str | None:
    """When no daemon answers at ``location``: a sentence naming the one that recorded itself elsewhere."""
    found = read_recorded(pointer)
    if found is None or found.state_dir == location.state_dir:
        return None
    started = f" (started with --config {found.config})" if found.config else ""
    return f"a midframe daemon{started} recorded the state dir {found.state_dir}"


def _same_file(a: Path, b: Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def config_pickup(target: Path, *, pointer: Path, alive: Callable[[int], bool]) -> str:
    """Whether the running daemon (the one that recorded itself) will read the config file ``target``,
    as a sentence for `midframe config init`."""
    found = read_recorded(pointer)
    if found is None or (found.pid is not None and not alive(found.pid)):
        return "no midframe daemon is running; `midframe run` reads this file when it starts"
    who = f"the running midframe daemon (pid {found.pid})" if found.pid else "the running midframe daemon"
    if found.config is None:
        return (f"{who} was started without a config file and does not read this one; restart it "
                "(`midframe stop`, then `midframe run`) to use it")
    if not _same_file(found.config, target):
        return f"{who} reads {found.config}, not this file; restart it with --config {target} to use this one"
    return (f"{who} reads this file: a saved edit applies from its next job on (folders, watcher and port "
            "settings after a restart)")
