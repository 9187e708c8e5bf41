"""Where things are: the folders a config names, resolved to absolute paths (platformdirs' defaults
where it names none), and the default config file's place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

from midframe.config._sections import Config

APP_NAME = "midframe"


@dataclass(frozen=True)
class Paths:
    """Every folder the daemon uses, resolved to absolute paths."""

    inbox: Path
    outbox: Path
    state_dir: Path
    done_dir: Path
    failed_dir: Path
    log_dir: Path
    cache_dir: Path

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"


def _expand(path: Path) -> Path:
    return Path(path).expanduser().absolute()


def resolve_paths(config: Config) -> Paths:
    inbox = _expand(config.inbox)
    daemon = config.daemon
    return Paths(
        inbox=inbox,
        outbox=_expand(config.outbox),
        state_dir=_expand(daemon.state_dir) if daemon.state_dir else Path(platformdirs.user_state_dir(APP_NAME)),
        done_dir=_expand(daemon.done_dir) if daemon.done_dir else inbox.parent / "done",
        failed_dir=_expand(daemon.failed_dir) if daemon.failed_dir else inbox.parent / "failed",
        log_dir=_expand(config.logging.dir) if config.logging.dir else Path(platformdirs.user_log_dir(APP_NAME)),
        cache_dir=Path(platformdirs.user_cache_dir(APP_NAME)),
    )


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.yaml"
