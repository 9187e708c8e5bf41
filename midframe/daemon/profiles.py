"""The inbox's profile folders: ``inbox/NAME/`` for every profile NAME in the config.

A file that arrives in one is converted with that profile's settings (``Config.effective``); its
output, and its source afterwards, keep the folder (``outbox/NAME/``, ``done/NAME/``), as sub-folders
do in recursive mode. The folders are made at start-up; a profile added by a reload gets its folder
at the next start.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from midframe.errors import DaemonError


def profile_of(relpath: str, profiles: Iterable[str]) -> str | None:
    """The profile of a file at ``relpath`` in the inbox: its first folder's, if that is a profile."""
    parts = PurePosixPath(relpath).parts
    return parts[0] if len(parts) > 1 and parts[0] in set(profiles) else None


def make_profile_folders(inbox: Path, profiles: Iterable[str], *, reserved: Iterable[Path]) -> list[Path]:
    """Create ``inbox/NAME`` for every profile; DaemonError when one is a folder midframe uses for
    something else (an outbox, done or failed folder inside the inbox) or a file is in the way."""
    taken = {Path(folder).absolute() for folder in reserved}
    made = []
    for name in profiles:
        folder = inbox / name
        if folder.absolute() in taken:
            raise DaemonError(f"profiles.{name}: {folder} is also one of midframe's own folders; rename the profile")
        try:
            folder.mkdir(exist_ok=True)
        except FileExistsError:
            raise DaemonError(f"profiles.{name}: {folder} is a file, not a folder; move it away") from None
        except OSError as exc:
            raise DaemonError(f"profiles.{name}: cannot create {folder}: {exc.strerror or exc}") from None
        made.append(folder)
    return made
