"""The configuration's schema: every section as a frozen pydantic model, its keys, defaults and checks,
profiles merged over the top-level sections, and the frame rates the config and the CLI accept
(``parse_fps``). Pure: no files, no platform folders."""

from __future__ import annotations

import ipaddress
import re
import shlex
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from midframe.engine import EngineConfig, OutputConfig, ResumeConfig
from midframe.engine import Section as _Section

VIDEO_EXTENSIONS = (
    "mp4", "mkv", "mov", "avi", "webm", "m4v", "mts", "m2ts", "wmv", "flv", "ts", "mpg",
)
# A profile's name is its folder's name in the inbox: plain, so it means the same folder everywhere.
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
PROFILE_SECTIONS = ("engine", "output")


class DaemonConfig(_Section):
    state_dir: Path | None = None
    done_dir: Path | None = None
    failed_dir: Path | None = None
    settle_seconds: float = Field(5.0, ge=0.0, le=3600.0)
    # A file that looks cut short (truncated, empty, no index yet) and changed less than this long ago
    # is a copy still arriving (a slow share, a paused download): settled again, not failed.
    stalled_copy_seconds: float = Field(60.0, ge=0.0, le=86400.0)
    rescan_seconds: float = Field(60.0, gt=0.0, le=86400.0)
    polling: bool = False
    recursive: bool = False
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    on_success: Literal["move", "keep", "delete"] = "move"
    max_attempts: int = Field(2, ge=1, le=100)
    api_port: int = Field(0, ge=0, le=65535)
    # The address the control API and the dashboard listen on; loopback unless opened to the network.
    api_host: str = "127.0.0.1"
    # The largest file the dashboard takes as an upload, in MB (0: no uploads).
    upload_max_mb: int = Field(4096, ge=0, le=16 * 1024 * 1024)
    # Extra room kept free on the outbox's disk beyond the output size estimate.
    min_free_mb: int = Field(512, ge=0)
    # Another daemon (another state dir) may watch the same inbox on purpose: warn instead of refusing.
    shared_inbox: bool = False
    # An ffmpeg child (decoder, encoder, muxer, probe) that midframe waits on and that makes no progress
    # for this long is ended and the job tried again (a stopped process, a network share that hangs).
    child_stall_seconds: float = Field(120.0, ge=1.0, le=3600.0)

    @field_validator("api_host")
    @classmethod
    def _api_host(cls, value: str) -> str:
        text = value.strip().removeprefix("[").removesuffix("]")
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            pass
        if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*", text):
            raise ValueError("must be an IP address (127.0.0.1, 0.0.0.0 for every network, ::) or a host name")
        return text.lower()

    @field_validator("extensions", mode="before")
    @classmethod
    def _extensions(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(str(ext).lstrip(".").lower() for ext in value)
        return value


class NotificationsConfig(_Section):
    # Desktop and tray bubbles, and the messages to ``urls``; after-job commands run either way.
    enabled: bool = True
    progress_interval_s: float = Field(60.0, ge=1.0)
    # Apprise URLs (ntfy://, tgram://, discord://, json://...) that get done, failed, paused and stalled news.
    urls: tuple[str, ...] = ()
    # Seconds one message may take to all of ``urls`` before it is given up.
    send_timeout_s: float = Field(30.0, gt=0.0, le=600.0)
    # Commands run after a job is done or failed (each a string of words or a list of them).
    on_done: tuple[tuple[str, ...], ...] = ()
    on_failed: tuple[tuple[str, ...], ...] = ()
    # Seconds an after-job command may run before it is killed.
    command_timeout_s: float = Field(60.0, gt=0.0, le=86400.0)

    @field_validator("urls", mode="before")
    @classmethod
    def _urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return value
        for number, url in enumerate(value, 1):
            # The value itself is never repeated here: a URL holds its service's token.
            if not isinstance(url, str) or not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://\S", url.strip()):
                raise ValueError(f"entry {number} is not an Apprise URL (scheme://..., e.g. ntfy://topic)")
        return tuple(url.strip() for url in value)

    @field_validator("on_done", "on_failed", mode="before")
    @classmethod
    def _commands(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            return value
        commands = []
        for number, command in enumerate(value, 1):
            if isinstance(command, str):
                try:
                    command = shlex.split(command)
                except ValueError as exc:
                    raise ValueError(f"command {number} cannot be split into words ({exc})") from None
            if not isinstance(command, (list, tuple)) or not command or not all(isinstance(w, str) for w in command):
                raise ValueError(f"command {number} must be a string or a list of words, not empty")
            commands.append(tuple(command))
        return tuple(commands)


class LoggingConfig(_Section):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    dir: Path | None = None


_SCHEDULER_PATTERN = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$")


class FarmConfig(_Section):
    """The render farm (midframe.farm): a Dask scheduler and the machines that work for it."""

    scheduler: str | None = None
    # On a farm worker: how the coordinator's folders appear on this machine ({"/mnt/nas": "Z:\\"}).
    path_map: dict[str, str] = {}
    # On a worker: resources it advertises beyond its slots; on the coordinator: what each segment needs.
    resources: dict[str, float] = {}
    max_jobs: int = Field(2, ge=1, le=64)
    fallback_local: bool = False

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        match = _SCHEDULER_PATTERN.match(value)
        if not match or not 0 < int(value.rsplit(":", 1)[1]) < 65536:
            raise ValueError("must be tcp://HOST:PORT, e.g. tcp://192.168.1.10:8786")
        return value

    @field_validator("path_map")
    @classmethod
    def _path_map(cls, value: dict[str, str]) -> dict[str, str]:
        for here, there in value.items():
            if not here.strip() or not there.strip():
                raise ValueError("maps a folder to a folder; neither side may be empty")
        return value

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name) or amount < 0:
                raise ValueError(f"{name}: {amount}: a resource is a name and a number >= 0, e.g. GPU: 1")
        return value


class Profile(_Section):
    """The settings of the inbox folder named after the profile: the top-level engine and output
    sections with the profile's own keys over them (merged before validation, see ``Config``)."""

    engine: EngineConfig = EngineConfig()
    output: OutputConfig = OutputConfig()


def _as_mapping(section: Any) -> Any:
    return section.model_dump(exclude_unset=True) if isinstance(section, BaseModel) else section


class Config(_Section):
    inbox: Path = Path("~/Videos/midframe/inbox")
    outbox: Path = Path("~/Videos/midframe/outbox")
    engine: EngineConfig = EngineConfig()
    output: OutputConfig = OutputConfig()
    daemon: DaemonConfig = DaemonConfig()
    resume: ResumeConfig = ResumeConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    logging: LoggingConfig = LoggingConfig()
    farm: FarmConfig = FarmConfig()
    profiles: dict[str, Profile] = {}

    @model_validator(mode="before")
    @classmethod
    def _merge_profiles(cls, data: Any) -> Any:
        """Each profile's engine and output become whole sections: the top level's keys, then the
        profile's. So a profile is validated like the rest, its errors name ``profiles.NAME.engine.KEY``,
        and what a key was set to (for an engine named rather than defaulted) carries over."""
        if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
            return data
        profiles = {}
        for name, profile in data["profiles"].items():
            if isinstance(profile, dict):
                profile = dict(profile)
                for section in PROFILE_SECTIONS:
                    top, own = _as_mapping(data.get(section, {})), _as_mapping(profile.get(section, {}))
                    if isinstance(top, dict) and isinstance(own, dict):
                        profile[section] = {**top, **own}
            profiles[name] = profile
        return {**data, "profiles": profiles}

    @field_validator("profiles")
    @classmethod
    def _profile_names(cls, value: dict[str, Profile]) -> dict[str, Profile]:
        seen: dict[str, str] = {}
        for name in value:
            if not _PROFILE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} cannot name a profile: its name is a folder of the inbox, made of "
                                 "letters, digits, - and _ (at most 64, not starting with - or _)")
            if name.lower() in seen:
                raise ValueError(f"{seen[name.lower()]!r} and {name!r} differ only in case: on Windows and macOS "
                                 "they are one folder")
            seen[name.lower()] = name
        return value

    def effective(self, profile: str | None) -> Config:
        """The config a file in ``inbox/<profile>/`` is converted with (None: one in the inbox itself).
        KeyError when there is no such profile."""
        if profile is None:
            return self
        chosen = self.profiles[profile]
        return self.model_copy(update={"engine": chosen.engine, "output": chosen.output})
