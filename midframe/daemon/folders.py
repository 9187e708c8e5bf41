"""The daemon's folders, checked before it starts: each its own, none inside another, each writable.

An outbox equal to the inbox, or inside it, would convert every output again (``a.50fps.100fps...``);
a done or failed folder inside the inbox would feed its files back; the state dir inside the inbox
would be scanned. So inbox, outbox, done_dir, failed_dir and state_dir must be five different folders,
none inside another (done_dir only counts with ``on_success: move``). The defaults pass: done and
failed beside the inbox, the state dir in the platform's state folder. Each of inbox, outbox, done_dir
and failed_dir must be writable, or creatable where it does not exist yet (the state dir has its own
check, ``statedir.prepare_state_dir``). What is wrong is said in one line naming the config keys
(``ConfigError``), and the daemon does not start.

:func:`layout_problem` is pure; :func:`check_folders` adds the file system (real paths, write tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from itertools import combinations
from pathlib import Path

from midframe.config import Config, Paths
from midframe.daemon.jobs.settings_check import folders_of, write_problem
from midframe.errors import ConfigError

STATE = "daemon.state_dir"


def _why(keys: tuple[str, str]) -> str:
    if "inbox" in keys:
        return "what midframe puts there would be taken for new videos and converted again"
    return "midframe keeps different files in each"


def _inside(inner: Path, outer: Path) -> bool:
    return inner != outer and outer in inner.parents


def layout_problem(folders: Mapping[str, Path]) -> str | None:
    """The first pair of ``folders`` (config key -> real, absolute path) that is one folder or one inside
    the other, in words; None when all are apart."""
    for (key_a, a), (key_b, b) in combinations(folders.items(), 2):
        if a == b:
            return (f"{key_a} and {key_b} are the same folder ({a}), and {_why((key_a, key_b))}; give each its "
                    f"own folder, e.g. {a / 'inbox'} and {a / 'outbox'}")
        for (key_in, inner), (key_out, outer) in (((key_a, a), (key_b, b)), ((key_b, b), (key_a, a))):
            if _inside(inner, outer):
                return (f"{key_in} ({inner}) is inside {key_out} ({outer}), and {_why((key_in, key_out))}; put "
                        f"them side by side, e.g. {key_in}: {outer.parent / inner.name}")
    return None


def real_path(path: Path) -> Path:
    """``path`` with symbolic links resolved as far as it exists, in the file system's case on Windows."""
    return Path(os.path.normcase(os.path.realpath(os.path.abspath(path))))


def folders_used(paths: Paths, config: Config) -> dict[str, Path]:
    folders = folders_of(paths)
    if config.daemon.on_success != "move":
        del folders["daemon.done_dir"]
    return folders


def check_folders(paths: Paths, config: Config, *,
                  writable: Callable[[Path], str | None] = write_problem) -> None:
    """``ConfigError`` in one line if the folders overlap or one cannot be written (or created)."""
    folders = folders_used(paths, config)
    problem = layout_problem({key: real_path(folder) for key, folder in folders.items()})
    if problem is not None:
        raise ConfigError(problem)
    for key, folder in folders.items():
        if key == STATE:
            continue
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{key} ({folder}) is a file, not a folder; choose a folder", key=key)
        why = writable(folder)
        if why is not None:
            where = folder if folder.exists() else f"{folder}, or the folder it would be made in,"
            raise ConfigError(f"{key} ({where}) cannot be written ({why}); make it writable for the user "
                              "midframe runs as, or choose another folder", key=key)
